"""The staff console's People and Audit log sections:

- /towns/<slug>/admin/people: everyone with a role in the town and every shop's staff; the
  town's admin appoints and removes admins, staff, venue staff, data staff (TownPeopleService)
  and shop staff (MerchantService) by e-mail. Town staff see the lists without the forms.
- /towns/<slug>/admin/audit: the town's audit rows, filtered, newest first, 50 a page; data
  staff export them as CSV (/towns/<slug>/admin/audit.csv; 403 for anyone else).

Forms carry csrf_token and a one-time request key, so a double submit has one effect. Rights
and rules live in the services; an error is shown on the page with its 4xx status.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, url_for

from backend.accounts.roles import current_user
from backend.accounts.town_audit import AuditFilters, parse_filters, town_audit_service
from backend.accounts.town_people import MANAGED_ROLES, town_people_service
from backend.core.db import get_db
from backend.core.errors import AppError
from backend.merchants.services import merchant_service
from backend.regions.models import Town
from backend.regions.services import town_by_slug

bp = Blueprint("console_people", __name__)


def _login() -> Response:
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def _people(
    town: Town, error: AppError | None = None, form: dict[str, str] | None = None
) -> tuple[str, int]:
    user = current_user()
    people = town_people_service()
    by_role = people.people(user, town)  # town STAFF and admins (403 otherwise)
    shops = merchant_service()
    rows = shops.town_merchants(user, town)
    context: dict[str, Any] = {
        "town": town,
        "roles": MANAGED_ROLES,
        "people": by_role,
        "shops": rows,
        "shop_staff": {m.id: shops.staff_of(m) for m in rows},
        "is_admin": people.is_admin(user, town),
        "key": uuid.uuid4().hex,
        "error": error and error.translated(),
        "error_field": error.details.get("field") if error else None,
        "form": form or {},
        "notice": request.args.get("notice"),
    }
    return render_template("console/people.html", **context), (error.status if error else 200)


@bp.get("/towns/<slug>/admin/people")
def people(slug: str):
    if current_user() is None:
        return _login()
    return _people(town_by_slug(slug))


def _form() -> dict[str, str]:
    return {k: request.form.get(k, "") for k in ("email", "role", "merchant_id")}


@bp.post("/towns/<slug>/admin/people/appoint")
def appoint(slug: str):
    if current_user() is None:
        return _login()
    town = town_by_slug(slug)
    form = _form()
    try:
        town_people_service().grant(
            current_user(), town, form["email"], form["role"], request.form.get("key")
        )
    except AppError as exc:
        get_db().session.rollback()
        return _people(town, exc, form)
    return redirect(url_for(".people", slug=slug, notice="appointed"), code=303)


@bp.post("/towns/<slug>/admin/people/remove")
def remove(slug: str):
    if current_user() is None:
        return _login()
    town = town_by_slug(slug)
    form = _form()
    try:
        town_people_service().revoke(
            current_user(), town, form["email"], form["role"], request.form.get("key")
        )
    except AppError as exc:
        get_db().session.rollback()
        return _people(town, exc)
    return redirect(url_for(".people", slug=slug, notice="removed"), code=303)


@bp.post("/towns/<slug>/admin/people/shops/<int:merchant_id>/appoint")
def appoint_shop_staff(slug: str, merchant_id: int):
    if current_user() is None:
        return _login()
    town = town_by_slug(slug)
    form = {**_form(), "merchant_id": str(merchant_id)}
    svc = merchant_service()
    try:
        # Town staff or the admin (STAFF accepts ADMIN), checked by the service; audited once.
        shop = svc.shop_of_town(town, merchant_id)
        svc.add_staff_by_email(current_user(), shop.id, form["email"])
    except AppError as exc:
        get_db().session.rollback()
        return _people(town, exc, form)
    return redirect(url_for(".people", slug=slug, notice="appointed"), code=303)


@bp.post("/towns/<slug>/admin/people/shops/<int:merchant_id>/remove")
def remove_shop_staff(slug: str, merchant_id: int):
    if current_user() is None:
        return _login()
    town = town_by_slug(slug)
    svc = merchant_service()
    try:
        shop = svc.shop_of_town(town, merchant_id)
        svc.remove_staff_by_email(current_user(), shop.id, request.form.get("email", ""))
    except AppError as exc:
        get_db().session.rollback()
        return _people(town, exc)
    return redirect(url_for(".people", slug=slug, notice="removed"), code=303)


# ---------------------------------------------------------------------- the audit log


@bp.get("/towns/<slug>/admin/audit")
def audit(slug: str):
    user = current_user()
    if user is None:
        return _login()
    town = town_by_slug(slug)
    svc = town_audit_service()
    error: AppError | None = None
    try:
        filters = parse_filters(request.args)
        result = svc.page(user, town, filters, request.args.get("page"))
    except AppError as exc:
        if exc.status in (401, 403, 404):
            raise
        error, filters = exc, AuditFilters()
        result = svc.page(user, town, filters)
    args = {k: v for k, v in filters.as_dict().items() if v}
    return render_template(
        "console/audit.html",
        town=town,
        result=result,
        filters=filters.as_dict(),
        args=args,
        can_export=svc.can_export(user, town),
        error=error and error.translated(),
        error_field=error.details.get("field") if error else None,
    ), (error.status if error else 200)


@bp.get("/towns/<slug>/admin/audit.csv")
def audit_csv(slug: str):
    user = current_user()
    if user is None:
        return _login()
    name, text = town_audit_service().export_csv(
        user, town_by_slug(slug), parse_filters(request.args)
    )
    resp = Response(
        "\ufeff" + text,  # a BOM so spreadsheet software reads UTF-8
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
    resp.headers["Cache-Control"] = "no-store"  # personal data: not kept by caches
    return resp
