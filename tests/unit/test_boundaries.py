"""Only backend.chain may import web3, eth_account or eth_abi (ARCHITECTURE rule 2)."""

from __future__ import annotations

from scripts.check_imports import violations


def test_only_backend_chain_imports_web3():
    assert violations() == []


def test_the_check_catches_a_violation(tmp_path):
    pkg = tmp_path / "backend" / "points"
    pkg.mkdir(parents=True)
    (pkg / "services.py").write_text("from eth_account import Account\nimport web3.exceptions\n")
    (tmp_path / "backend" / "chain").mkdir()
    (tmp_path / "backend" / "chain" / "ok.py").write_text("import web3\n")
    found = violations(tmp_path)
    assert sorted(v.module for v in found) == ["eth_account", "web3.exceptions"]
    assert all(v.path.endswith("backend/points/services.py") for v in found)
