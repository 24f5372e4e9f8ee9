"""The committed ABI/bytecode artifacts are exactly what the sources compile to."""

from __future__ import annotations

import json

import pytest

from scripts.compile_contracts import OUT, TEST_OUT, committed, compile_all


@pytest.mark.heavy  # compiles every contract when the cache is cold (scripts/compile_contracts.py)
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


def _fake_solc(runs: list[dict]):
    """A stand-in for solc, for the cache's logic only: the real compile is checked by the test
    above whenever the cache is cold (CI, a fresh clone). Records its input and answers with an
    output derived from the sources."""

    def compile_standard(standard_input, **_kwargs):
        runs.append(standard_input)
        return {
            "contracts": {
                name: {
                    "Tiny": {
                        "abi": [],
                        "evm": {
                            "bytecode": {"object": src["content"].encode().hex()},
                            "deployedBytecode": {"object": "00"},
                        },
                    }
                }
                for name, src in standard_input["sources"].items()
            }
        }

    return compile_standard


def test_a_compile_of_unchanged_inputs_is_read_from_the_cache(tmp_path, monkeypatch):
    """The compiler runs once for one set of inputs and its output is read back after; a
    changed source or a changed imported OpenZeppelin file compiles afresh."""
    from scripts import compile_contracts as cc

    oz = tmp_path / "openzeppelin"
    oz.mkdir()
    (oz / "ERC20.sol").write_text("// v1\n")
    source = {"contracts/test/Tiny.sol": {"content": "contract Tiny { uint256 n = 1; }"}}
    runs: list[dict] = []
    monkeypatch.setattr(cc, "cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setattr(cc, "OPENZEPPELIN", oz)
    monkeypatch.setattr(cc, "sources", lambda: dict(source))
    monkeypatch.setattr(cc, "ensure_compiler", lambda: None)
    monkeypatch.setattr(cc.solcx, "compile_standard", _fake_solc(runs))

    first = cc.compile_all()
    assert len(runs) == 1 and list(first) == [TEST_OUT / "Tiny.json"]
    assert cc.compile_all() == first and len(runs) == 1  # the same inputs: read back
    source["contracts/test/Tiny.sol"] = {"content": "contract Tiny { uint256 n = 2; }"}
    second = cc.compile_all()
    assert len(runs) == 2 and second != first  # a changed source compiles afresh
    (oz / "ERC20.sol").write_text("// v2\n")  # an OpenZeppelin upgrade
    assert cc.compile_all() == second and len(runs) == 3
    assert not list((tmp_path / "cache").glob("*.tmp"))  # written whole, then renamed
    # A damaged file is compiled again, not read.
    (kept,) = [p for p in (tmp_path / "cache").glob("*.json") if cc.input_key(runs[-1]) in p.name]
    kept.write_text('{"contracts": ')
    assert cc.compile_all() == second and len(runs) == 4
