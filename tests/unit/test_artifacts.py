"""The committed ABI/bytecode artifacts are exactly what the sources compile to."""

from __future__ import annotations

import json

from scripts.compile_contracts import OUT, compile_all


def test_committed_artifacts_match_the_sources():
    fresh = compile_all()
    committed = {p.name: p.read_text() for p in OUT.glob("*.json")}
    assert sorted(committed) == sorted(fresh), "run `make contracts`"
    for name, text in fresh.items():
        assert committed[name] == text, f"{name} is stale: run `make contracts`"


def test_artifacts_say_they_are_generated_and_carry_bytecode():
    for path in OUT.glob("*.json"):
        data = json.loads(path.read_text())
        assert data["_generated"].startswith("GENERATED")
        assert data["abi"] is not None
        assert data["bytecode"].startswith("0x")
