"""The committed ABI/bytecode artifacts are exactly what the sources compile to."""

from __future__ import annotations

import json

import pytest

from scripts.compile_contracts import OUT, TEST_OUT, committed, compile_all


@pytest.mark.heavy  # compiles every contract (about a minute)
def test_committed_artifacts_match_the_sources():
    fresh = compile_all()
    on_disk = committed()
    assert sorted(on_disk) == sorted(fresh), "run `make contracts`"
    for path, text in fresh.items():
        assert on_disk[path] == text, f"{path.name} is stale: run `make contracts`"


def test_test_contracts_are_not_shipped_with_the_app():
    """contracts/test/ (mocks, plain tokens) compile into tests/abi/, never into the app's ABIs."""
    for path, text in committed().items():
        from_tests = json.loads(text)["sourceName"].startswith("contracts/test/")
        assert (path.parent == TEST_OUT) == from_tests, path
        assert (path.parent == OUT) != from_tests, path


def test_artifacts_say_they_are_generated_and_carry_bytecode():
    for path in committed():
        data = json.loads(path.read_text())
        assert data["_generated"].startswith("GENERATED")
        assert data["abi"] is not None
        assert data["bytecode"].startswith("0x")
