"""The console's partner towns (issue 13 §3): /towns/<slug>/admin/partners (propose, approve,
each town's setPartner queued -> confirmed, the town's yen per point: in force this month, the
change waiting for next month, its history) and
/towns/<slug>/admin/clearing (the monthly statement with each partner town, four-eyes approval,
the bank reference, CSV). Staff of either town see a statement; the rules live in
PartnerService. Forms carry csrf_token and a one-time request key; a repeated submit changes
nothing (every step is a compare-and-set on the row's state).
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, url_for

from backend.accounts.roles import STAFF, current_user, require_town_role
from backend.core.db import get_db
from backend.core.errors import AppError
from backend.partners.services import MAX_RATE, parse_month, partner_service
from backend.regions.services import town_by_slug

bp = Blueprint("console_partners", __name__)


def _login() -> Response:
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def _partners(slug: str, error: AppError | None = None):  # type: ignore[no-untyped-def]
    svc = partner_service()
    town = town_by_slug(slug)
    user = current_user()
    views = svc.partnerships(user, town)
    context: dict[str, Any] = {
        "town": town,
        "views": views,
        "candidates": svc.candidates(user, town),
        "rates": svc.rates(user, town),
        "max_rate": MAX_RATE,
        "key": uuid.uuid4().hex,
        "error": error and error.translated(),
        "notice": request.args.get("notice"),
    }
    return render_template("console/partners.html", **context), (error.status if error else 200)


@bp.get("/towns/<slug>/admin/partners")
def partners(slug: str):
    if current_user() is None:
        return _login()
    return _partners(slug)


@bp.post("/towns/<slug>/admin/partners")
def propose(slug: str):
    if current_user() is None:
        return _login()
    try:
        partner_service().propose(current_user(), town_by_slug(slug), request.form.get("town"))
    except AppError as exc:
        get_db().session.rollback()
        return _partners(slug, exc)
    return redirect(url_for(".partners", slug=slug, notice="proposed"), code=303)


@bp.post("/towns/<slug>/admin/partners/<int:partnership_id>/approve")
def approve(slug: str, partnership_id: int):
    if current_user() is None:
        return _login()
    try:
        partner_service().approve(current_user(), town_by_slug(slug), partnership_id)
    except AppError as exc:
        get_db().session.rollback()
        return _partners(slug, exc)
    return redirect(url_for(".partners", slug=slug, notice="approved"), code=303)


@bp.post("/towns/<slug>/admin/partners/<int:partnership_id>/end")
def end(slug: str, partnership_id: int):
    if current_user() is None:
        return _login()
    try:
        partner_service().end(current_user(), town_by_slug(slug), partnership_id)
    except AppError as exc:
        get_db().session.rollback()
        return _partners(slug, exc)
    return redirect(url_for(".partners", slug=slug, notice="ended"), code=303)


@bp.post("/towns/<slug>/admin/partners/rate")
def set_rate(slug: str):
    if current_user() is None:
        return _login()
    try:
        pending = partner_service().set_rate(
            current_user(), town_by_slug(slug), request.form.get("rate")
        )
    except AppError as exc:
        get_db().session.rollback()
        return _partners(slug, exc)
    notice = "rate" if pending is not None else "rate_kept"
    return redirect(url_for(".partners", slug=slug, notice=notice), code=303)


# ---------------------------------------------------------------------- clearing


def _clearing(slug: str, month: object, error: AppError | None = None):  # type: ignore[no-untyped-def]
    svc = partner_service()
    town = town_by_slug(slug)
    user = current_user()
    require_town_role(user, town.id, STAFF)
    try:
        statements = svc.statements(user, town, month)
    except AppError as exc:  # a malformed month: this month's statements, with the error
        error = error or exc
        statements = svc.statements(user, town, None)
    current = svc.current_month()
    try:
        shown = parse_month(month, current)
    except AppError:
        shown = current
    return render_template(
        "console/clearing.html",
        town=town,
        statements=statements,
        month=shown,
        current_month=current,
        me=user,
        key=uuid.uuid4().hex,
        error=error and error.translated(),
        notice=request.args.get("notice"),
    ), (error.status if error else 200)


@bp.get("/towns/<slug>/admin/clearing")
def clearing(slug: str):
    if current_user() is None:
        return _login()
    return _clearing(slug, request.args.get("month"))


def _partner_town(partner: str):  # type: ignore[no-untyped-def]
    return partner_service().town_by_slug(partner)


@bp.get("/towns/<slug>/admin/clearing/<partner>/<month>.csv")
def clearing_csv(slug: str, partner: str, month: str):
    name, text = partner_service().statement_csv(
        current_user(), town_by_slug(slug), _partner_town(partner), month
    )
    return Response(
        "\ufeff" + text,  # a BOM so spreadsheet software reads UTF-8
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.post("/towns/<slug>/admin/clearing/<partner>/<month>/approve")
def approve_clearing(slug: str, partner: str, month: str):
    if current_user() is None:
        return _login()
    try:
        partner_service().approve_clearing(
            current_user(), town_by_slug(slug), _partner_town(partner), month
        )
    except AppError as exc:
        get_db().session.rollback()
        return _clearing(slug, month, exc)
    return redirect(url_for(".clearing", slug=slug, month=month, notice="approved"), code=303)


@bp.post("/towns/<slug>/admin/clearing/<partner>/<month>/settle")
def settle_clearing(slug: str, partner: str, month: str):
    if current_user() is None:
        return _login()
    try:
        partner_service().settle_clearing(
            current_user(),
            town_by_slug(slug),
            _partner_town(partner),
            month,
            request.form.get("bank_reference"),
        )
    except AppError as exc:
        get_db().session.rollback()
        return _clearing(slug, month, exc)
    return redirect(url_for(".clearing", slug=slug, month=month, notice="settled"), code=303)
