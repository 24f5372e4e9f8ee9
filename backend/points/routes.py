"""Points JSON API: the signed-in user's balance, lots (with expiry) and history per town; the
town staff's programmes and transfer policy (backend/points/town_settings.py)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from backend.accounts.roles import current_user, require_user
from backend.core.errors import json_object
from backend.points.models import PointsSettingChange
from backend.points.services import PointsSummary, points_service
from backend.points.town_settings import PolicyView, ProgrammeView, town_settings_service
from backend.regions.services import town_by_slug

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


# ---------------------------------------------------------------------- town staff: settings


def programme_json(v: ProgrammeView) -> dict[str, Any]:
    r = v.row
    return {
        "programme_id": r.programme_id,
        "kind": r.kind,
        "paid": v.paid,
        "name_ja": r.name_ja,
        "name_en": r.name_en,
        "welcome_amount": r.welcome_amount,
        "cap_per_person_day": r.cap_per_person_day,
        "cap_per_town_day": r.cap_per_town_day,
        "expiry_days": r.expiry_days,
        "active": r.active,
        "status": v.status,
        "on_chain": {"expiry_days": v.on_chain[0], "active": v.on_chain[1]} if v.on_chain else None,
        "drift": v.drift,
    }


def change_json(c: PointsSettingChange, status: str) -> dict[str, Any]:
    return {
        "id": c.id,
        "setting": c.setting,
        "programme_id": c.programme_id,
        "expiry_days": c.expiry_days,
        "active": c.active,
        "policy": c.policy,
        "status": status,
    }


def _policy_json(v: PolicyView) -> dict[str, Any]:
    return {
        "on_chain": v.on_chain,
        "shown": v.shown,
        "last_change": change_json(v.last_change, v.status or "") if v.last_change else None,
    }


@bp.get("/api/towns/<slug>/programmes")
def town_programmes(slug: str) -> Response:
    """The town's programmes with the state of their last change on chain (town staff)."""
    views = town_settings_service().programmes(current_user(), town_by_slug(slug))
    return jsonify(programmes=[programme_json(v) for v in views])


@bp.post("/api/towns/<slug>/programmes")
def create_programme(slug: str) -> tuple[Response, int]:
    data = json_object()
    svc = town_settings_service()
    town = town_by_slug(slug)
    c = svc.create_programme(current_user(), town, data, data.get("idempotency_key"))
    view = svc.programme(current_user(), town, int(c.programme_id or 0))
    return jsonify(programme=programme_json(view), change=change_json(c, svc.change_status(c))), 201


@bp.put("/api/towns/<slug>/programmes/<int:programme_id>")
def update_programme(slug: str, programme_id: int) -> Response:
    data = json_object()
    svc = town_settings_service()
    town = town_by_slug(slug)
    c = svc.update_programme(current_user(), town, programme_id, data, data.get("idempotency_key"))
    view = svc.programme(current_user(), town, programme_id)
    return jsonify(programme=programme_json(view), change=change_json(c, svc.change_status(c)))


@bp.get("/api/towns/<slug>/transfer-policy")
def transfer_policy(slug: str) -> Response:
    view = town_settings_service().transfer_policy(current_user(), town_by_slug(slug))
    return jsonify(transfer_policy=_policy_json(view))


@bp.put("/api/towns/<slug>/transfer-policy")
def set_transfer_policy(slug: str) -> Response:
    data = json_object()
    svc = town_settings_service()
    town = town_by_slug(slug)
    svc.set_transfer_policy(current_user(), town, data.get("policy"), data.get("idempotency_key"))
    return jsonify(transfer_policy=_policy_json(svc.transfer_policy(current_user(), town)))
