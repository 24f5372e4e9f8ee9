"""The town's people as JSON, for scripts and tests: /api/towns/<slug>/people (the console's
People page does the same through the same service, backend/accounts/town_people.py).

GET lists everyone per role (town staff and admins); POST appoints and POST .../remove removes,
by e-mail (the town's admin only). A repeated request answers 200 with "changed": false and
writes nothing; a first appointment answers 201.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from backend.accounts.roles import current_user
from backend.accounts.town_people import Change, Person, town_people_service
from backend.core.errors import json_object
from backend.regions.services import town_by_slug

bp = Blueprint("town_people", __name__)


def person_json(p: Person) -> dict[str, Any]:
    return {"user_id": p.user_id, "email": p.email, "display_name": p.display_name}


def change_json(c: Change) -> dict[str, Any]:
    return {"user_id": c.user_id, "email": c.email, "role": c.role, "changed": c.changed}


@bp.get("/api/towns/<slug>/people")
def people(slug: str) -> Response:
    rows = town_people_service().people(current_user(), town_by_slug(slug))
    return jsonify(roles={role: [person_json(p) for p in ps] for role, ps in rows.items()})


@bp.post("/api/towns/<slug>/people")
def appoint(slug: str) -> tuple[Response, int]:
    data = json_object()
    c = town_people_service().grant(
        current_user(),
        town_by_slug(slug),
        data.get("email"),
        data.get("role"),
        data.get("idempotency_key"),
    )
    return jsonify(change=change_json(c)), 201 if c.changed else 200


@bp.post("/api/towns/<slug>/people/remove")
def remove(slug: str) -> Response:
    data = json_object()
    c = town_people_service().revoke(
        current_user(),
        town_by_slug(slug),
        data.get("email"),
        data.get("role"),
        data.get("idempotency_key"),
    )
    return jsonify(change=change_json(c))
