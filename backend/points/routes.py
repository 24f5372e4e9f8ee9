"""Points JSON API: the signed-in user's balance, lots (with expiry) and history per town."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from backend.accounts.roles import require_user
from backend.points.services import PointsSummary, points_service

bp = Blueprint("points", __name__)


def summary_json(s: PointsSummary) -> dict[str, Any]:
    return {
        "town": s.town.slug,
        "address": s.address,
        "confirmed": s.confirmed,
        "pending_in": s.pending_in,
        "pending_out": s.pending_out,
        "available": s.available,
        "lots": [
            {
                "programme_id": lot.programme_id,
                "reason": lot.reason,
                "amount": lot.amount,
                "remaining": lot.remaining,
                "expires_at": lot.expires_at.isoformat() if lot.expires_at else None,
                "last_day": lot.last_day.isoformat() if lot.last_day else None,
            }
            for lot in s.lots
        ],
        "history": [
            {
                "kind": h.kind,
                "amount": h.amount,
                "at": h.at.isoformat(),
                "reason": h.reason,
                "pending": h.pending,
            }
            for h in s.history
        ],
    }


@bp.get("/api/points")
def my_points() -> Response:
    """The signed-in user's points in every town (401 when signed out)."""
    user = require_user()
    return jsonify(towns=[summary_json(s) for s in points_service().summaries_for(user)])
