"""`make run` with RPC_URL set (a real chain): no anvil, nothing deployed, no demo data. The
plan of one-off steps is checked directly (fast); the run itself is checked up to the point where
it would load demo data, by running scripts/run.py against the session's anvil with a command
stub that records every step and then stops it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from scripts import run

ROOT = Path(__file__).resolve().parents[2]


def test_own_chain_deploys_migrates_and_loads_the_demo():
    steps = run.setup_steps("python", own_chain=True)
    assert [title for title, _ in steps] == [
        "deploying contracts (only what is missing)",
        "migrating the database",
        "loading demo data",
    ]
    assert steps[0][1][1:] == ("-m", "backend.deploy", "--demo")
    assert steps[2][1][1:] == ("scripts/demo_data.py",)


def test_a_real_chain_only_migrates():
    steps = run.setup_steps("python", own_chain=False)
    assert [title for title, _ in steps] == ["migrating the database"]
    assert [cmd[1:] for _, cmd in steps] == [("upgrade", "heads")]


STUB = """
import json, subprocess, sys
from scripts import run
seen = []
def record(cmd, **kw):
    seen.append(list(cmd))
    return subprocess.CompletedProcess(cmd, 0)
run.subprocess.run = record
run.prepare_embedded = lambda url: (_ for _ in ()).throw(SystemExit(json.dumps(seen)))
run.start_anvil = lambda *a, **k: (_ for _ in ()).throw(AssertionError("anvil started"))
sys.exit(run.main())
"""


def test_make_run_with_rpc_url_starts_no_anvil_and_loads_no_demo(tmp_path, anvil):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(
        RPC_URL=anvil.url,
        INSTANCE_PATH=str(tmp_path / "instance"),
        DEPLOYMENTS_DIR=str(tmp_path / "deployments"),
        PYTHONPATH=str(ROOT),
    )
    out = subprocess.run(
        [sys.executable, "-c", STUB],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.REAL_CHAIN_NOTE in out.stdout, out.stdout + out.stderr
    assert "loading demo data" not in out.stdout and "deploying" not in out.stdout
    # every one-off command it ran before starting the platform: the migration only
    (cmd,) = json.loads(out.stderr.strip().splitlines()[-1])
    assert cmd[1:] == ["upgrade", "heads"], out.stderr
