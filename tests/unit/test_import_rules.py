"""The import rules of docs/architecture.md (import-linter contracts in pyproject.toml) hold, so
`make test` fails on a broken rule as `make lint` does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _lint_imports(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "lint-imports"
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [str(exe), "--no-cache", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_every_import_contract_is_kept():
    done = _lint_imports()
    assert done.returncode == 0, done.stdout + done.stderr
    assert " 0 broken" in done.stdout


def test_a_domain_importing_the_chain_past_its_front_door_breaks_a_contract(tmp_path):
    for pkg in ("backend", "backend/chain", "backend/points", "webui"):
        (tmp_path / pkg).mkdir(parents=True, exist_ok=True)
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "backend/chain/api.py").write_text("from backend.chain import outbox\n")
    (tmp_path / "backend/chain/outbox.py").write_text("")
    (tmp_path / "backend/points/ok.py").write_text("from backend.chain import api\n")
    (tmp_path / "backend/points/bad.py").write_text("from backend.chain.outbox import x\n")
    (tmp_path / ".importlinter").write_text(
        "[importlinter]\nroot_packages =\n    backend\n    webui\n\n"
        "[importlinter:contract:front-door]\nname = front door\ntype = forbidden\n"
        "source_modules =\n    backend.points\nforbidden_modules =\n    backend.chain\n"
        "allow_indirect_imports = true\nignore_imports =\n    backend.** -> backend.chain.api\n"
    )
    done = _lint_imports("--config", str(tmp_path / ".importlinter"), cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "backend.points.bad -> backend.chain.outbox" in done.stdout
    assert "backend.points.ok" not in done.stdout


def test_every_page_module_is_under_the_pages_independence_rule():
    """A page module left out of the list could import another page unnoticed (five were)."""
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (pages,) = [c for c in contracts["contracts"] if c["name"].startswith("pages import no other")]
    listed = set(pages["modules"])
    on_disk = {f"webui.{p.stem}" for p in (ROOT / "webui").glob("*_pages.py")}
    assert on_disk - listed == set()
