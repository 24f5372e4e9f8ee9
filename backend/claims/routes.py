"""Claims JSON API: what a town holds for people who have not claimed it yet (town staff), and
what the signed-in person claimed that is on its way. Registers the claim wallets' keys for
master-key rotation."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from backend.accounts.errors import AuthenticationRequired
from backend.accounts.roles import current_user
from backend.chain.api import register_key_store
from backend.claims.services import claim_key_store, claim_service
from backend.core.db import get_db
from backend.core.errors import N_
from backend.regions.services import town_by_slug

bp = Blueprint("claims", __name__)


@bp.record_once
def _register_key_store(state: Any) -> None:
    # Master-key rotation re-wraps the claim wallets' keys too.
    register_key_store(state.app, lambda: claim_key_store(get_db().session()))


@bp.get("/api/towns/<slug>/claims")
def waiting(slug: str) -> Response:
    w = claim_service().waiting(current_user(), town_by_slug(slug))
    return jsonify(
        waiting={
            "claims": w.claims,
            "people": w.people,
            "points": w.points,
            "lapsed_points": w.lapsed_points,
            "stuck_people": w.stuck_people,
            "stuck_points": w.stuck_points,
        }
    )


@bp.get("/api/me/claims")
def arriving() -> Response:
    user = current_user()
    if user is None:
        raise AuthenticationRequired(N_("Please sign in."))
    return jsonify(
        arriving=[{"town": a.town.slug, "points": a.points} for a in claim_service().arriving(user)]
    )
