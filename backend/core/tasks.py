"""Platform tasks: the beat heartbeat, a round-trip probe and the embedded broker's purge."""

from __future__ import annotations

from celery import shared_task
from sqlalchemy import select

from backend.core.broker import purge_consumed
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


@shared_task(name="core.purge_broker")
def purge_broker() -> int:
    """Delete messages the embedded broker already delivered (kombu never does)."""
    from flask import current_app

    return purge_consumed(current_app.extensions["settings"].celery_broker_url)
