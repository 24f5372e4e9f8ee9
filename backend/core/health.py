"""GET /healthz: 200 when the database, the broker and the chain answer; 503 naming what is down.

The database and broker checks are core's own; the app factory registers the others (the
chain's) with `register_check`, so core knows no domain and no chain.

The checks run at once, each in its own thread, and the answer comes within the
`health_timeout` setting (0.5 s) whatever a dependency does: a check still running then is
reported down ("timeout"). A stalled broker or node thus shows as down in about a second
instead of after its own connection timeouts and retries (issue 11 §7).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from backend.core.db import get_db
from backend.core.errors import error_body
from backend.core.models import Heartbeat

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)

# The broker's own connect timeout, as a share of the health timeout: its check then ends by
# itself (and says why) just before the deadline would report it as a bare "timeout".
BROKER_SHARE = 0.8
_CHECKS = "health_checks"

Check = Callable[[], dict[str, Any]]


def register_check(app: Flask, name: str, check: Check) -> None:
    """Add `name` to /healthz: `check()` returns {"ok": True, ...} or {"ok": False, "reason":
    ...}; any exception it raises reports the part down (by the exception's type)."""
    app.extensions.setdefault(_CHECKS, {})[name] = check


def _check_db(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    with Session(engine) as s:
        beat = s.scalar(select(Heartbeat).where(Heartbeat.name == "worker"))
    return {
        "ok": True,
        "dialect": engine.dialect.name,
        "worker_seen_at": beat.seen_at.isoformat() if beat else None,
    }


def _check_broker(celery: Any, timeout: float) -> dict[str, Any]:
    with celery.connection_for_write() as conn:
        conn.ensure_connection(max_retries=0, timeout=timeout)
        return {"ok": True, "transport": conn.transport_cls, "url": conn.as_uri()}


def _broker_name(celery: Any) -> dict[str, Any]:
    """Which broker, even when it is down (no connection is made; the password is masked)."""
    conn = celery.connection_for_write()
    try:
        return {"transport": conn.transport_cls, "url": conn.as_uri()}
    finally:
        conn.release()


def _run_all(checks: dict[str, Check], timeout: float) -> dict[str, Any]:
    results: dict[str, Any] = {}
    threads = []
    for name, check in checks.items():

        def run(name: str = name, check: Check = check) -> None:
            try:
                results[name] = check()
            except Exception as exc:  # any failure of a dependency means "down", never a 500
                log.warning("healthz: %s is down: %s", name, type(exc).__name__)
                results[name] = {"ok": False, "reason": type(exc).__name__}

        t = threading.Thread(target=run, name=f"healthz-{name}", daemon=True)
        t.start()
        threads.append(t)
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return {name: dict(results.get(name) or {"ok": False, "reason": "timeout"}) for name in checks}


@bp.get("/healthz")
def healthz():
    engine = get_db().engine
    celery = current_app.extensions["celery"]
    timeout = current_app.extensions["settings"].health_timeout
    body: dict[str, Any] = _run_all(
        {
            "db": lambda: _check_db(engine),
            "broker": lambda: _check_broker(celery, timeout * BROKER_SHARE),
            **current_app.extensions.get(_CHECKS, {}),
        },
        timeout,
    )
    body["broker"] = {**_broker_name(celery), **body["broker"]}
    down = [name for name, result in body.items() if not result["ok"]]
    if down:
        body.update(error_body("unavailable", f"down: {', '.join(down)}", {"down": down}))
        body["status"] = "down"
        return jsonify(body), 503
    body["status"] = "ok"
    return jsonify(body), 200
