"""The staff console's points sale (/towns/<slug>/admin/premium): the town's offer of points
bought with a premium (rate, unit, limits, the paid programme, on/off) and this month's sales.
Babel domain `console_premium`.

The rules and the rights (town staff) are in backend/premium/offers.py; a refused form is shown
again with the error and its 4xx status, and nothing is saved.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for

from backend.accounts.roles import current_user
from backend.core.db import get_db
from backend.core.errors import AppError
from backend.points.programmes import MAX_PAID_DAYS
from backend.premium.offers import DEFAULTS
from backend.premium.services import offer_service
from backend.regions.services import town_by_slug

bp = Blueprint("console_premium", __name__)

FIELDS = (
    "programme_id",
    "premium_percent",
    "unit_yen",
    "max_yen_per_purchase",
    "person_month_yen",
    "town_month_yen",
    "active",
)


def _page(slug: str, error: AppError | None = None, form: dict[str, str] | None = None) -> Any:
    town = town_by_slug(slug)
    svc = offer_service()
    offer = svc.for_staff(current_user(), town)
    if form is None:
        source: dict[str, Any] = (
            {f: getattr(offer, f) for f in FIELDS} if offer else {**DEFAULTS, "active": False}
        )
        form = {k: ("" if v is None else str(v)) for k, v in source.items() if k != "active"}
        form["active"] = "1" if source.get("active") else ""
    return render_template(
        "console/premium/offer.html",
        town=town,
        offer=offer,
        programmes=svc.paid_programmes(town),
        sold=svc.month_sales(town),
        max_days=MAX_PAID_DAYS,
        form=form,
        error=error and error.translated(),
        error_field=error.details.get("field") if error else None,
        notice=request.args.get("notice"),
    ), (error.status if error else 200)


@bp.get("/towns/<slug>/admin/premium")
def offer(slug: str) -> Any:
    if current_user() is None:
        return redirect(url_for("auth.login", next=request.path))
    return _page(slug)


@bp.post("/towns/<slug>/admin/premium")
def save(slug: str) -> Any:
    if current_user() is None:
        return redirect(url_for("auth.login", next=request.path))
    town = town_by_slug(slug)
    form = {f: request.form.get(f, "") for f in FIELDS}
    try:
        offer_service().save(current_user(), town, form)
    except AppError as exc:
        get_db().session.rollback()
        return _page(slug, exc, form)
    return redirect(url_for(".offer", slug=slug, notice="saved"))
