"""The peer indexer's project (bench/peer/subsquid) is consistent with itself and with
bench/peer.py: pinned versions, the lock file, the table schema and the environment. Offline:
it reads files only (the benchmark itself is `make bench-peer`, never part of `make test`)."""

from __future__ import annotations

import json
import re

from bench.peer import PEER_DIR, ROOT, peer_env

PINNED = {"@subsquid/evm-processor": "1.27.3", "@subsquid/typeorm-store": "1.5.1"}


def _package() -> dict:
    return json.loads((PEER_DIR / "package.json").read_text())


def _lock() -> dict:
    return json.loads((PEER_DIR / "package-lock.json").read_text())


def test_every_dependency_is_pinned_to_one_version():
    pkg = _package()
    deps = {**pkg["dependencies"], **pkg["devDependencies"]}
    loose = {name: v for name, v in deps.items() if not re.fullmatch(r"\d+\.\d+\.\d+", v)}
    assert loose == {}
    for name, version in PINNED.items():
        assert deps[name] == version


def test_the_lock_file_matches_package_json():
    pkg, lock = _package(), _lock()
    root = lock["packages"][""]
    assert root["dependencies"] == pkg["dependencies"]
    assert root["devDependencies"] == pkg["devDependencies"]
    for name, version in {**pkg["dependencies"], **pkg["devDependencies"]}.items():
        entry = lock["packages"][f"node_modules/{name}"]
        assert entry["version"] == version, name
        assert entry["integrity"].startswith("sha512-"), name


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def test_schema_sql_has_a_column_for_every_entity_field():
    schema = (PEER_DIR / "schema.sql").read_text()
    tables = {
        m["table"]: set(
            re.findall(r'"(\w+)" (?:character varying|integer|text|numeric)', m["cols"])
        )
        for m in re.finditer(r'CREATE TABLE "(?P<table>\w+)" \((?P<cols>.*)\);', schema)
    }
    models = sorted((PEER_DIR / "src" / "model").glob("*.model.ts"))
    assert [m.name for m in models] == ["account.model.ts", "transfer.model.ts"]
    for model in models:
        source = model.read_text()
        entity = _snake(re.search(r"export class (\w+)", source)[1])
        fields = {_snake(f) for f in re.findall(r"^\s+(\w+)!:", source, re.M)}
        assert tables[entity] == fields, entity
    assert (
        'UNIQUE INDEX "IDX_transfer_tx_hash_log_index" ON "transfer" ("tx_hash", "log_index")'
        in (schema)
    )


def test_the_bench_sets_every_variable_the_squid_reads():
    main = (PEER_DIR / "src" / "main.ts").read_text()
    read = set(re.findall(r"env\('(\w+)'\)", main)) | set(re.findall(r"process\.env\.(\w+)", main))
    assert read == {"RPC_URL", "TOKEN", "FROM_BLOCK", "FINALITY", "HEAD_POLL_MS"}
    env = peer_env(
        "postgresql+psycopg://postgres@127.0.0.1:5432/db_x", "http://n", "0xT", 7, 20, 200
    )
    assert read <= env.keys()
    # @subsquid/typeorm-config takes DB_URL with a plain postgresql:// scheme
    assert env["DB_URL"] == "postgresql://postgres@127.0.0.1:5432/db_x"
    assert (env["FROM_BLOCK"], env["FINALITY"], env["HEAD_POLL_MS"]) == ("7", "20", "200")


def test_installed_and_built_files_are_not_tracked():
    ignored = set((ROOT / ".gitignore").read_text().splitlines())
    assert "node_modules" in ignored  # no slash: node_modules at any depth
    assert "/bench/peer/subsquid/lib/" in ignored
