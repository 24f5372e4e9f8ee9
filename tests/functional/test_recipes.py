"""The README's recipes work as written (issue 11 §8), and the docs agree with the code.

The "local anvil + PostgreSQL + Redis" block is read from README.md and run by bash, as an
operator would paste it: it creates the database, sets the secrets, migrates, deploys, loads the
demo data (which needs MASTER_KEY on a server database) and starts web, worker and beat. The test
changes only names that must not collide with other runs on this machine: the database name and
the Redis database numbers. `make run` is `make setup` (tested by test_make_run.py) followed by
scripts/run.py; here bash runs scripts/run.py, so the shared virtualenv is left alone.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from backend.chain.custody import parse_master_key
from bench.processes import free_port
from tests.conftest import PG_ADMIN_URL, _drop_pg_database

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
OPERATIONS = (ROOT / "docs" / "operations.md").read_text()


def recipe(name: str) -> str:
    m = re.search(rf"<!-- recipe: {name} -->\s*```bash\n(.*?)```", README, re.S)
    assert m, f"no recipe {name} in README.md"
    return m.group(1)


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - our local server
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


@pytest.mark.heavy  # the whole platform
def test_local_servers_recipe_runs_on_a_fresh_postgresql_database_and_redis(tmp_path):
    block = recipe("local-servers")
    # What the recipe must contain, or a new operator fails the way issue 11 §8 describes.
    assert "MASTER_KEY=" in block and "SECRET_KEY=" in block
    assert "postgresql+psycopg://" in block and "redis://" in block and "RPC_URL" not in block

    db = f"furusato_recipe_{uuid.uuid4().hex[:8]}"
    script = re.sub(r"(5432/|DATABASE )furusato\b", rf"\g<1>{db}", block)
    assert script.count(db) == 2, script
    script = re.sub(r"6379/([01])\b", lambda m: f"6379/{11 + int(m.group(1))}", script)
    assert "6379/11" in script and "6379/12" in script, script
    prelude = 'make() { [ "$1" = run ] && exec .venv/bin/python scripts/run.py; return 1; }\n'
    port, anvil_port = free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "RPC_URL")
        and not k.endswith("_KEY")
    }
    env.update(
        PORT=str(port),
        ANVIL_PORT=str(anvil_port),
        INSTANCE_PATH=str(tmp_path / "instance"),
        DEPLOYMENTS_DIR=str(tmp_path / "deployments"),
    )
    log = tmp_path / "recipe.log"
    out = open(log, "wb")  # noqa: SIM115 - the child writes to it until it exits
    proc = subprocess.Popen(
        ["bash", "-euc", prelude + script],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        health: dict = {}
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            try:
                status, health = _get(f"http://127.0.0.1:{port}/healthz")
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            raise AssertionError("not healthy within 180 s:\n" + log.read_text())
        assert health["db"]["dialect"] == "postgresql", health
        assert health["broker"]["transport"] == "redis", health
        assert "loading demo data" in log.read_text()
        # The demo data was loaded into PostgreSQL (the crash of issue 11 §8 was right there):
        # its staff account exists with a built-in wallet, verified.
        url = sa.make_url(PG_ADMIN_URL).set(database=db)
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT u.email_verified_at IS NOT NULL, count(a.id) FROM users u"
                    " JOIN addresses a ON a.user_id = u.id AND a.kind = 'custodial'"
                    " WHERE u.email = 'staff@sarabetsu.example' GROUP BY u.id"
                )
            ).one()
            heads = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        engine.dispose()
        assert tuple(row) == (True, 1)
        assert len(heads) == 1
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
        proc.wait(60)
        out.close()
        _drop_pg_database(db)
    assert "stopped: no process left running" in log.read_text(), log.read_text()


def test_master_key_format_in_the_docs_is_what_generate_key_prints():
    line = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-m", "backend.chain.custody", "generate-key"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ).stdout.strip()
    key_id, _, secret = line.partition(":")
    assert re.fullmatch(r"[A-Za-z0-9+/]{43}=", secret), "generate-key prints base64 of 32 bytes"
    assert parse_master_key(line)  # the settings accept it
    for doc in (README, OPERATIONS):
        assert "<key_id>:<base64 of 32 bytes>" in doc
        assert "generate-key" in doc
        assert "<key_id>:<64 hex>`" not in doc


def test_migration_command_is_the_same_everywhere():
    for doc in (README, OPERATIONS):
        commands = re.findall(r"alembic upgrade (\w+)", doc)
        assert commands and set(commands) == {"heads"}, commands
    assert '"upgrade", "heads"' in (ROOT / "scripts" / "run.py").read_text()


def test_every_web_host_must_share_secret_key(make_app, deployed):
    # Why the docs say so: a session cookie from one host is nobody on a host with another key.
    from tests.accounts.conftest import MASTER_KEY, Api

    one = make_app(master_key=MASTER_KEY)
    api = Api(one.test_client())
    assert api.signup("fan@example.com").status_code == 201
    cookie = api.client.get_cookie("session").value
    same = one.extensions["settings"].secret_key
    for key, expected in ((same, 200), ("another-secret", 401)):
        other = make_app(master_key=MASTER_KEY, secret_key=key)
        client = other.test_client()
        client.set_cookie("session", cookie)
        assert client.get("/api/accounts/me").status_code == expected
    for doc in (README, OPERATIONS):
        text = " ".join(doc.split())
        assert re.search(
            r"every web host[^.]{0,60}SECRET_KEY|SECRET_KEY[^.]{0,80}every web host", text, re.I
        )
