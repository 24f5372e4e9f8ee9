"""The points page (balance, lots with their expiry, history) and "my code" (a rotating QR a
shop scans to take a payment)."""

from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template, request, url_for

from backend.accounts.roles import current_user
from backend.core.db import get_db
from backend.merchants.customer_codes import CODE_TTL, charges_of
from backend.merchants.services import merchant_service
from backend.points import programmes
from backend.points.services import points_service
from webui.shared import qr_svg

bp = Blueprint("points_pages", __name__)


@bp.app_context_processor
def _inject_programmes() -> dict[str, object]:
    """Templates label a lot by its programme kind (backend/points/programmes.py)."""
    return {"programme_by_reason": programmes.by_reason}


@bp.get("/points")
def points():
    user = current_user()
    if user is None:
        return redirect(url_for("auth.login", next=request.path))
    summaries = points_service().summaries_for(user)
    charges = charges_of(get_db().session(), user)
    return render_template(
        "points/index.html",
        summaries=summaries,
        charges=charges,
        points_towns=merchant_service().points_towns([c for c, _m in charges]),
    )


@bp.get("/points/code")
def my_code():
    user = current_user()
    if user is None:
        return redirect(url_for("auth.login", next=request.path))
    # A new single-use code on every visit; it expires in CODE_TTL, so the page refreshes then.
    code, _expires = merchant_service().issue_customer_code(user)
    resp = Response(
        render_template(
            "points/code.html", code=code, qr=qr_svg(code), refresh=int(CODE_TTL.total_seconds())
        )
    )
    resp.headers["Cache-Control"] = "no-store"
    return resp
