"""The staff console's points settings: programmes (/towns/<slug>/admin/programmes), the
transfer policy (/towns/<slug>/admin/transfer-policy), and the grants whose issue failed on
chain, which staff send again (/towns/<slug>/admin/failed-grants: backend/points/
grant_failures.py). Babel domain `console_points`.

The rules and the rights (town staff) are in backend/points/town_settings.py; a change that goes
on chain shows "Processing…" until its outbox call is confirmed (static/js/console_points.js
polls the JSON API). Every form carries the CSRF token and a one-time key.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, url_for

from backend.accounts.roles import current_user
from backend.core.db import get_db
from backend.core.errors import AppError
from backend.points.grant_failures import RetryReport
from backend.points.programmes import EXPIRY_PRESETS, PRESETS, WELCOME, expiry_choices
from backend.points.services import grant_retries
from backend.points.town_settings import MERCHANTS_ONLY, OPEN, town_settings_service
from backend.regions.services import town_by_slug

bp = Blueprint("console_points", __name__)

FIELDS = (
    "kind",
    "name_ja",
    "name_en",
    "welcome_amount",
    "cap_per_person_day",
    "cap_per_town_day",
    "expiry_days",
    "active",
)


def _login() -> Response:
    return redirect(url_for("auth.login", next=request.path))


def _form() -> dict[str, str]:
    return {f: request.form.get(f, "") for f in FIELDS}


def _programmes_page(
    slug: str,
    error: AppError | None = None,
    form: dict[str, str] | None = None,
    failed_pid: int | None = None,
):
    town = town_by_slug(slug)
    views = town_settings_service().programmes(current_user(), town)
    return render_template(
        "console/points/programmes.html",
        town=town,
        programmes=views,
        kinds=[p for p in PRESETS if p is not WELCOME],
        kind_labels={p.name: p.label for p in PRESETS},
        expiry_presets=EXPIRY_PRESETS,
        paid_presets=expiry_choices(paid=True),
        error=error and error.translated(),
        error_field=error.details.get("field") if error else None,
        form=form or {},
        failed_pid=failed_pid,
        notice=request.args.get("notice"),
        request_key=uuid.uuid4().hex,
        poll_url=url_for("points.town_programmes", slug=town.slug),
    ), (error.status if error else 200)


@bp.get("/towns/<slug>/admin/programmes")
def programmes(slug: str) -> Any:
    if current_user() is None:
        return _login()
    return _programmes_page(slug)


@bp.post("/towns/<slug>/admin/programmes")
def create_programme(slug: str) -> Any:
    if current_user() is None:
        return _login()
    town = town_by_slug(slug)
    form = _form()
    try:
        town_settings_service().create_programme(
            current_user(), town, form, request.form.get("idempotency_key")
        )
    except AppError as exc:
        get_db().session.rollback()
        return _programmes_page(slug, exc, form)
    return redirect(url_for(".programmes", slug=slug, notice="created"))


@bp.post("/towns/<slug>/admin/programmes/<int:programme_id>")
def update_programme(slug: str, programme_id: int) -> Any:
    if current_user() is None:
        return _login()
    town = town_by_slug(slug)
    form = _form()
    try:
        town_settings_service().update_programme(
            current_user(), town, programme_id, form, request.form.get("idempotency_key")
        )
    except AppError as exc:
        get_db().session.rollback()
        return _programmes_page(slug, exc, form, failed_pid=programme_id)
    return redirect(url_for(".programmes", slug=slug, notice="saved"))


def _policy_page(slug: str, error: AppError | None = None):
    town = town_by_slug(slug)
    view = town_settings_service().transfer_policy(current_user(), town)
    return render_template(
        "console/points/transfer_policy.html",
        town=town,
        policy=view,
        policies=(OPEN, MERCHANTS_ONLY),
        error=error and error.translated(),
        notice=request.args.get("notice"),
        request_key=uuid.uuid4().hex,
        poll_url=url_for("points.transfer_policy", slug=town.slug),
    ), (error.status if error else 200)


@bp.get("/towns/<slug>/admin/transfer-policy")
def transfer_policy(slug: str) -> Any:
    if current_user() is None:
        return _login()
    return _policy_page(slug)


@bp.post("/towns/<slug>/admin/transfer-policy")
def set_transfer_policy(slug: str) -> Any:
    if current_user() is None:
        return _login()
    town = town_by_slug(slug)
    try:
        town_settings_service().set_transfer_policy(
            current_user(), town, request.form.get("policy"), request.form.get("idempotency_key")
        )
    except AppError as exc:
        get_db().session.rollback()
        return _policy_page(slug, exc)
    return redirect(url_for(".transfer_policy", slug=slug, notice="queued"))


# ---------------------------------------------------------------------- failed grants


def _failed_page(
    slug: str, error: AppError | None = None, report: RetryReport | None = None
) -> tuple[str, int]:
    town = town_by_slug(slug)
    svc = grant_retries()
    rows = svc.failed(current_user(), town)
    return render_template(
        "console/points/failed_grants.html",
        town=town,
        rows=rows,
        total=svc.count_failed(current_user(), town),
        error=error and error.translated(),
        report=report,
        notice=request.args.get("notice"),
    ), (error.status if error else 200)


@bp.get("/towns/<slug>/admin/failed-grants")
def failed_grants(slug: str) -> Any:
    if current_user() is None:
        return _login()
    return _failed_page(slug)


@bp.post("/towns/<slug>/admin/failed-grants/<int:grant_id>")
def retry_grant(slug: str, grant_id: int) -> Any:
    if current_user() is None:
        return _login()
    town = town_by_slug(slug)
    try:
        _grant, queued = grant_retries().retry(current_user(), town, grant_id)
    except AppError as exc:
        get_db().session.rollback()
        return _failed_page(slug, exc)
    # "already": someone sent it first, or the points arrived after all: nothing was queued.
    return redirect(url_for(".failed_grants", slug=slug, notice="sent" if queued else "already"))


@bp.post("/towns/<slug>/admin/failed-grants/all")
def retry_all_grants(slug: str) -> Any:
    if current_user() is None:
        return _login()
    town = town_by_slug(slug)
    try:
        report = grant_retries().retry_all(current_user(), town)
    except AppError as exc:
        get_db().session.rollback()
        return _failed_page(slug, exc)
    return _failed_page(slug, report=report)
