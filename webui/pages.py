"""Server-rendered pages. They call services and models; no business rule lives here."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, abort, make_response, redirect, render_template, request
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from backend.core.db import get_db
from backend.core.i18n import LANG_COOKIE, LOCALES
from backend.regions.models import Town
from backend.shop.categories import CATEGORIES
from backend.shop.models import Collection
from webui.times import jst, jst_date

bp = Blueprint("pages", __name__)
# Japan time on every page (issue 15 §7): the one pair of filters, for the whole app.
bp.add_app_template_filter(jst, "jst")
bp.add_app_template_filter(jst_date, "jst_date")


# The collections' category labels, from the one list (backend/shop/categories.py).
CATEGORY_LABELS = {c.key: _l(c.label) for c in CATEGORIES}  # marked with N_ there


@bp.app_context_processor
def _inject_locale() -> dict[str, object]:
    return {"locale": str(get_locale()), "locales": LOCALES, "category_labels": CATEGORY_LABELS}


@bp.get("/")
def landing():
    session = get_db().session
    rows = session.execute(
        select(Town, func.count(Collection.id))
        .outerjoin(Collection, Collection.town_id == Town.id)
        .group_by(Town.id)
        .order_by(Town.id)
    ).all()
    return render_template("landing.html", towns=rows)


def _safe_next(target: str | None) -> str:
    # Only same-site relative paths: an open redirect would help phishing.
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


@bp.get("/lang/<code>")
def set_language(code: str):
    if code not in LOCALES:
        abort(404)
    resp = make_response(redirect(_safe_next(request.args.get("next"))))
    resp.set_cookie(LANG_COOKIE, code, max_age=365 * 24 * 3600, samesite="Lax", httponly=True)
    return resp
