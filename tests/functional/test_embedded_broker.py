"""Issue 11 §7: the embedded broker (kombu's SQLAlchemy transport on SQLite) holds under
concurrent use. Separate producer processes (as web workers and beat are) publish at once while
a real worker consumes; every message is delivered, none twice, and the purge empties what kombu
keeps of delivered messages. The app database is PostgreSQL and SQLite in turn."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from flask import Flask

from backend.config import Settings
from backend.core.broker import embedded_path, purge_consumed
from backend.core.db import get_db
from backend.core.models import Heartbeat

PRODUCERS = 3
PER_PRODUCER = 60

PRODUCER = textwrap.dedent(
    """
    import sys
    from celery import Celery

    url, queue, tag, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    app = Celery("producer", broker=url)
    for i in range(n):
        app.send_task("core.record_heartbeat", args=[f"{tag}-{i}"], queue=queue)
    """
)


def _rows(path: Path, where: str) -> int:
    con = sqlite3.connect(path)
    try:
        return int(con.execute(f"SELECT count(*) FROM kombu_message WHERE {where}").fetchone()[0])  # noqa: S608
    finally:
        con.close()


def test_default_broker_is_embedded_sqlite_under_the_instance(tmp_path: Path) -> None:
    s = Settings(instance_path=tmp_path)
    assert s.celery_broker_url == f"sqla+sqlite:///{tmp_path.resolve()}/broker.db"
    assert embedded_path(s.celery_broker_url) == tmp_path.resolve() / "broker.db"
    assert Settings(
        instance_path=tmp_path, celery_broker_url="redis://x:1/0"
    ).celery_broker_url == ("redis://x:1/0")


def test_concurrent_producers_every_task_runs_once_then_purged(
    make_app: Callable[..., Flask], any_db_url: str, tmp_path: Path
) -> None:
    instance = tmp_path / "instance"
    url = Settings(instance_path=instance).celery_broker_url
    app = make_app(
        database_url=any_db_url,
        instance_path=instance,
        celery_broker_url=url,
        celery_result_backend=f"db+sqlite:///{tmp_path}/results.db",
    )
    db_file = embedded_path(url)
    con = sqlite3.connect(db_file)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()
    celery = app.extensions["celery"]
    assert celery.conf.beat_schedule["core.purge_broker"]["task"] == "core.purge_broker"
    queue = celery.conf.task_default_queue
    expected = {f"p{p}-{i}" for p in range(PRODUCERS) for i in range(PER_PRODUCER)}

    from celery.contrib.testing.worker import start_worker

    with start_worker(
        celery,
        pool="solo",
        perform_ping_check=False,
        loglevel="WARNING",
        queues=[queue],
        shutdown_timeout=10,
    ):
        producers = [
            subprocess.Popen(
                [sys.executable, "-c", PRODUCER, url, queue, f"p{p}", str(PER_PRODUCER)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for p in range(PRODUCERS)
        ]
        for proc in producers:
            out, _ = proc.communicate(timeout=120)
            assert proc.returncode == 0, out.decode()
        deadline = time.monotonic() + 120
        seen: set[str] = set()
        while time.monotonic() < deadline:
            with app.app_context():
                seen = set(get_db().session.scalars(sa.select(Heartbeat.name)).all())
                get_db().session.remove()
            if expected <= seen:
                break
            time.sleep(0.2)
    assert expected <= seen, f"{len(expected - seen)} tasks never ran"
    total = PRODUCERS * PER_PRODUCER
    # Every message was delivered exactly once: all are marked consumed, none is left waiting.
    assert _rows(db_file, "visible = 0") == total
    assert _rows(db_file, "visible = 1") == 0
    assert purge_consumed(url) == total
    assert _rows(db_file, "1 = 1") == 0
