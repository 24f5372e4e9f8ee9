"""Fail when anything outside backend/chain imports web3, eth_account or eth_abi.

Usage: python scripts/check_imports.py   (exit 1 and a list of offending imports)
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("web3", "eth_account", "eth_abi")


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    module: str


def violations(root: Path = ROOT) -> list[Violation]:
    found = []
    for folder in ("backend", "webui"):
        for path in sorted((root / folder).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel.startswith("backend/chain/"):
                continue
            tree = ast.parse(path.read_text(), filename=rel)
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                for name in names:
                    if name.split(".")[0] in FORBIDDEN:
                        found.append(Violation(rel, node.lineno, name))
    return found


if __name__ == "__main__":
    bad = violations()
    for v in bad:
        print(f"{v.path}:{v.line}: imports {v.module} (only backend/chain may)")
    print("import boundary: ok" if not bad else f"import boundary: {len(bad)} violation(s)")
    sys.exit(1 if bad else 0)
