"""/api/v1: the issuing API of the town's other services (issue 14 §2).

Authenticated by `Authorization: Bearer <key>` only: this blueprint never reads the session
(a signed-in browser's cookie authenticates nothing here) and is exempt from CSRF, which
protects cookie-authenticated requests; a key is not sent by a browser on its own. Rate limits
per key are in backend/core/limits.py. Errors use the platform's JSON shape with their codes.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from backend.core.errors import json_object
from backend.integrations import budgets
from backend.integrations.issuances import api_issuing_service
from backend.integrations.models import ServiceAccount
from backend.integrations.services import service_account_service

bp = Blueprint("integrations", __name__, url_prefix="/api/v1")


@bp.record_once
def _exempt_from_csrf(state: Any) -> None:
    csrf = state.app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(bp)


@bp.after_request
def _challenge(resp: Response) -> Response:
    if resp.status_code == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="furusato"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _service() -> ServiceAccount:
    """The calling service, from its key; InvalidApiKey (401) otherwise. Checked inside each
    view, not in before_request: the rate limits wrap the views, so a wrong key is counted
    (per client address) too."""
    if "service_account" not in g:
        account, key = service_account_service().authenticate(request.headers.get("Authorization"))
        g.service_account, g.service_key = account, key
    return g.service_account  # type: ignore[no-any-return]


@bp.get("/service")
def service() -> Response:
    """The calling service: its names, programmes, cap, budgets and what is left of them."""
    account = _service()
    svc = service_account_service()
    used = budgets.usage(svc.session, account, svc._now())
    daily, monthly = int(account.daily_budget), account.monthly_budget
    return jsonify(
        id=account.id,
        name_ja=account.name_ja,
        name_en=account.name_en,
        programmes=account.programme_ids,
        cap_per_issuance=int(account.cap_per_issuance) if account.cap_per_issuance else None,
        daily_budget=daily,
        daily_left=max(daily - used.day_used, 0),
        monthly_budget=int(monthly) if monthly is not None else None,
        monthly_left=max(int(monthly) - used.month_used, 0) if monthly is not None else None,
    )


@bp.post("/issuances")
def create_issuance() -> tuple[Response, int]:
    view = api_issuing_service().issue(_service(), json_object())
    return jsonify(view.json()), 202


@bp.post("/issuances/batch")
def create_batch() -> tuple[Response, int]:
    views = api_issuing_service().issue_batch(_service(), json_object())
    return jsonify(issuances=[v.json() for v in views]), 202


@bp.get("/issuances/<int:issuance_id>")
def get_issuance(issuance_id: int) -> Response:
    return jsonify(api_issuing_service().get(_service(), issuance_id).json())


@bp.get("/issuances")
def list_issuances() -> Response:
    views = api_issuing_service().page(
        _service(),
        status=request.args.get("status"),
        after=request.args.get("after"),
        limit=request.args.get("limit"),
    )
    return jsonify(issuances=[v.json() for v in views])
