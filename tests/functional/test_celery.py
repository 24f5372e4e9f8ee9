"""A real Celery worker on Redis runs tasks inside the Flask app context."""

from __future__ import annotations

from sqlalchemy import select

from backend.core.db import get_db
from backend.core.models import Heartbeat
from backend.core.tasks import echo, record_heartbeat


def test_task_round_trip_through_redis(app, celery_worker):
    celery = app.extensions["celery"]
    assert celery.conf.broker_url.startswith("redis://")
    result = echo.apply_async(({"town": "更別村", "n": 3},))
    # The worker sees the same database as the app: the task ran in the app context.
    assert result.get(timeout=20) == {
        "payload": {"town": "更別村", "n": 3},
        "dialect": "postgresql",
    }


def test_beat_heartbeat_task_writes_through_the_worker(app, celery_worker):
    seen = record_heartbeat.delay("worker").get(timeout=20)
    with app.app_context():
        row = get_db().session.scalar(select(Heartbeat).where(Heartbeat.name == "worker"))
        assert row is not None and row.seen_at.isoformat() == seen
