"""The points page (balance, lots with their expiry, history) and "my code" (a rotating QR a
shop scans to take a payment)."""

from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template, request, url_for

from backend.accounts.roles import current_user, current_user_id
from backend.claims.services import claim_service
from backend.core.db import get_db
from backend.merchants import proxies
from backend.merchants.customer_codes import CODE_TTL, charges_of
from backend.merchants.services import merchant_service
from backend.points import programmes
from backend.points.services import points_service
from backend.premium.services import offer_service
from webui.shared import cached_page, qr_svg

bp = Blueprint("points_pages", __name__)


@bp.app_context_processor
def _inject_programmes() -> dict[str, object]:
    """Templates label a lot by its programme kind (backend/points/programmes.py)."""
    return {"programme_by_reason": programmes.by_reason}


@bp.get("/points")
def points():
    if current_user_id() is None:
        return redirect(url_for("auth.login", next=request.path))
    return cached_page("points.index", lambda _holes: _points_page())


def _points_page() -> str:
    user = current_user()
    assert user is not None  # noqa: S101 - signed in (checked before the cache)
    summaries = points_service().summaries_for(user)
    offers = offer_service()
    session = get_db().session()
    charges = charges_of(session, user)
    return render_template(
        "points/index.html",
        # Family proxies: who may pay for this person (and what they paid), whom they help.
        my_proxies=proxies.my_proxies(session, user),
        proxy_names=proxies.proxy_names(session, [c for c, _m in charges]),
        helping=bool(proxies.links_helping(session, user)),
        summaries=summaries,
        arriving=claim_service().arriving(user),
        charges=charges,
        points_towns=merchant_service().points_towns([c for c, _m in charges]),
        shops=merchant_service().shops_by_tx([h.tx_id for s in summaries for h in s.history]),
        selling={s.town.id for s in summaries if offers.quote(s.town, user) is not None},
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
