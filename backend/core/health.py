"""GET /healthz: 200 when the database, the broker and the chain answer; 503 naming what is down."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, current_app, jsonify
from sqlalchemy import select

from backend.chain.gateway import ChainUnavailable
from backend.core.db import get_db
from backend.core.errors import error_body
from backend.core.models import Heartbeat

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


def _check_db() -> dict[str, Any]:
    db = get_db()
    db.ping()
    beat = db.session.scalar(select(Heartbeat).where(Heartbeat.name == "worker"))
    return {
        "ok": True,
        "dialect": db.engine.dialect.name,
        "worker_seen_at": beat.seen_at.isoformat() if beat else None,
    }


def _check_broker() -> dict[str, Any]:
    celery = current_app.extensions["celery"]
    with celery.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=3)
        return {"ok": True, "transport": conn.transport_cls}


def _check_chain() -> dict[str, Any]:
    st = current_app.extensions["chain"].status()
    return {
        "ok": True,
        "chain_id": st.chain_id,
        "head_block": st.head_block,
        "contracts_deployed": st.contracts_deployed,
    }


@bp.get("/healthz")
def healthz():
    checks = {"db": _check_db, "broker": _check_broker, "chain": _check_chain}
    body: dict[str, Any] = {}
    down = []
    for name, check in checks.items():
        try:
            body[name] = check()
        except ChainUnavailable as exc:
            body[name] = {"ok": False, "reason": str(exc)}
            down.append(name)
        except Exception as exc:  # any failure of a dependency means "down", never a 500
            log.warning("healthz: %s is down: %s", name, type(exc).__name__)
            body[name] = {"ok": False, "reason": type(exc).__name__}
            down.append(name)
    if down:
        body.update(error_body("unavailable", f"down: {', '.join(down)}", {"down": down}))
        body["status"] = "down"
        return jsonify(body), 503
    body["status"] = "ok"
    return jsonify(body), 200
