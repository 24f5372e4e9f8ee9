"""The staff console's Residents section (/towns/<slug>/admin/residents, issue 15 §3).

Town staff find a person by the e-mail of their account or the customer code on their phone,
record that they saw an official ID and type the name, birth date and address from it (hashed
by ResidencyService and never stored), and the town's ResidentPass is queued for them. The list
shows every resident and its pass; staff revoke a pass when the person moves away (a reason is
required). Rights and rules live in ResidencyService; an error is shown with its 4xx status.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, url_for

from backend.accounts.roles import current_user
from backend.core.db import get_db
from backend.core.errors import AppError
from backend.regions.models import Town
from backend.regions.services import town_by_slug
from backend.residency.services import residency_service

bp = Blueprint("console_residents", __name__)


def _login() -> Response:
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def _page(
    town: Town,
    *,
    query: str = "",
    person_id: object = None,
    error: AppError | None = None,
    status: int | None = None,
) -> tuple[str, int]:
    user = current_user()
    svc = residency_service()
    rows = svc.residents(user, town)  # town STAFF (403 otherwise)
    person = None
    search_error: AppError | None = None
    try:
        if person_id:
            person = svc.person(user, town, person_id)
        elif query:
            person = svc.find_person(user, town, query)
    except AppError as exc:
        search_error = exc
    shown = error or search_error
    context: dict[str, Any] = {
        "town": town,
        "rows": rows,
        "accounts": svc.accounts(rows),
        "reasons": svc.failure_reasons(rows),
        "query": query,
        "person": person,
        "person_row": svc.resident_of(town, person) if person is not None else None,
        "error": shown.translated() if shown else None,
        "error_field": shown.details.get("field") if shown else None,
        "notice": request.args.get("notice"),
    }
    code = status or (shown.status if shown else 200)
    return render_template("console/residents.html", **context), code


@bp.get("/towns/<slug>/admin/residents")
def residents(slug: str):
    if current_user() is None:
        return _login()
    return _page(town_by_slug(slug), query=request.args.get("q", "").strip()[:254])


@bp.post("/towns/<slug>/admin/residents/verify")
def verify(slug: str):
    if current_user() is None:
        return _login()
    town = town_by_slug(slug)
    svc = residency_service()
    person_id = request.form.get("user_id")
    try:
        person = svc.person(current_user(), town, person_id)
        svc.verify_in_person(
            current_user(),
            town,
            person,
            saw_id=request.form.get("saw_id"),
            name=request.form.get("name"),
            birth_date=request.form.get("birth_date"),
            address=request.form.get("address"),
        )
    except AppError as exc:
        get_db().session.rollback()
        return _page(town, person_id=person_id, error=exc)
    return redirect(url_for(".residents", slug=slug, notice="issued"), code=303)


@bp.post("/towns/<slug>/admin/residents/<int:resident_id>/revoke")
def revoke(slug: str, resident_id: int):
    if current_user() is None:
        return _login()
    town = town_by_slug(slug)
    try:
        residency_service().revoke(current_user(), town, resident_id, request.form.get("reason"))
    except AppError as exc:
        get_db().session.rollback()
        return _page(town, error=exc)
    return redirect(url_for(".residents", slug=slug, notice="revoked"), code=303)
