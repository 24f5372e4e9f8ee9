"""Copy Safe 1.4.1's Hardhat artifacts (abi + bytecode) into backend/chain/safe_abi/.

    python scripts/vendor_safe.py [--check]

The town guardian is a Safe multisig deployed from `@safe-global/safe-contracts` 1.4.1 exactly as
published (no recompiling: the audited bytecode). Runtime reads the vendored JSON, so web, worker
and deploy do not need node_modules. `--check` exits 1 when the vendored files differ from the
npm package (run after bumping the package).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "node_modules" / "@safe-global" / "safe-contracts"
OUT = ROOT / "backend" / "chain" / "safe_abi"
VERSION = "1.4.1"
ARTIFACTS = {
    "SafeL2": "SafeL2.sol/SafeL2.json",
    "SafeProxyFactory": "proxies/SafeProxyFactory.sol/SafeProxyFactory.json",
    "SafeProxy": "proxies/SafeProxy.sol/SafeProxy.json",
    "CompatibilityFallbackHandler": (
        "handler/CompatibilityFallbackHandler.sol/CompatibilityFallbackHandler.json"
    ),
}


def vendored() -> dict[str, str]:
    version = json.loads((PACKAGE / "package.json").read_text())["version"]
    if version != VERSION:
        raise SystemExit(f"@safe-global/safe-contracts is {version}, expected {VERSION}")
    out = {}
    for name, rel in ARTIFACTS.items():
        art = json.loads((PACKAGE / "build" / "artifacts" / "contracts" / rel).read_text())
        doc = {
            "contractName": name,
            "source": f"@safe-global/safe-contracts@{VERSION}/{rel}",
            "abi": art["abi"],
            "bytecode": art["bytecode"],
        }
        out[f"{name}.json"] = json.dumps(doc, indent=1, sort_keys=True) + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    files = vendored()
    if args.check:
        stale = [
            n
            for n, text in files.items()
            if not (OUT / n).exists() or (OUT / n).read_text() != text
        ]
        print("safe_abi: ok" if not stale else f"safe_abi stale: {', '.join(stale)}")
        return 1 if stale else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (OUT / name).write_text(text)
    print(f"vendored {len(files)} Safe {VERSION} artifacts into {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
