"""Platform tasks: the beat heartbeat and a round-trip probe."""

from __future__ import annotations

from celery import shared_task
from sqlalchemy import select

from backend.core.db import get_db, utcnow
from backend.core.models import Heartbeat


@shared_task(name="core.record_heartbeat")
def record_heartbeat(name: str = "worker") -> str:
    """Store when the worker last ran a beat-scheduled task (shown by /healthz)."""
    session = get_db().session
    now = utcnow()
    beat = session.scalar(select(Heartbeat).where(Heartbeat.name == name))
    if beat is None:
        session.add(Heartbeat(name=name, seen_at=now))
    else:
        beat.seen_at = now
    session.commit()
    return now.isoformat()


@shared_task(name="core.echo")
def echo(payload: dict[str, object]) -> dict[str, object]:
    """Return the payload with the database dialect the worker's app context sees."""
    return {"payload": payload, "dialect": get_db().engine.dialect.name}
