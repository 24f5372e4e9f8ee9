"""scripts/services.sh starts PostgreSQL and Redis with data dirs of its own when nothing
answers on their ports (a machine without running services), and stops only what it started."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from bench.processes import free_port

ROOT = Path(__file__).resolve().parents[2]


def _run(action: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "scripts/services.sh", action],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.heavy  # PostgreSQL and Redis
def test_starts_servers_where_none_answer_and_stops_only_those(tmp_path):
    pg_port, redis_port = free_port(), free_port()
    state = tmp_path / "services"
    # PostgreSQL runs as the postgres user: its folder must not sit in a private tmp_path.
    pg_dir = Path(tempfile.mkdtemp(prefix="furusato-pg-test-", dir="/tmp"))
    pg_dir.chmod(0o755)
    env = {
        **os.environ,
        "FURUSATO_SERVICES_DIR": str(state),
        "FURUSATO_PG_DIR": str(pg_dir),
        "PG_PORT": str(pg_port),
        "REDIS_PORT": str(redis_port),
    }
    try:
        started = _run("ensure", env)
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"started PostgreSQL on 127.0.0.1:{pg_port}" in started.stdout
        assert f"started Redis on 127.0.0.1:{redis_port}" in started.stdout
        engine = sa.create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{pg_port}/postgres")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
        engine.dispose()
        assert redis.Redis(port=redis_port).ping()
        # A second ensure finds them answering and starts nothing.
        again = _run("ensure", env)
        assert again.returncode == 0 and "started" not in again.stdout
    finally:
        stopped = _run("stop", env)
        shutil.rmtree(pg_dir, ignore_errors=True)
    assert stopped.returncode == 0, stopped.stderr
    assert (
        subprocess.run(
            ["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(pg_port)], check=False
        ).returncode
        != 0
    )
    try:
        redis.Redis(port=redis_port, socket_connect_timeout=1).ping()
        raise AssertionError("Redis still answers after stop")
    except redis.exceptions.ConnectionError:
        pass
