"""Buying points with a premium (プレミアム付ポイント): the town's buy page, the purchase's status
page, and the built-in test provider's checkout (TEST MODE, local test chains only). Babel
domain `premium`.

The rules (limits, the once-only issue, refunds) are in backend/premium/purchases.py; these
pages only read the form and show the answer. A refusal re-renders the buy page with the error
and its 4xx status, having changed nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for

from backend.accounts.roles import current_user
from backend.core.db import get_db
from backend.core.errors import AppError, NotFound
from backend.premium.models import PENDING_PAYMENT
from backend.premium.services import (
    offer_service,
    on_test_chain,
    payment_provider,
    purchase_service,
)
from backend.regions.services import town_by_slug
from backend.shop.services import card_payment_service

bp = Blueprint("premium", __name__)


def _login() -> Any:
    return redirect(url_for("auth.login", next=request.path))


def _buy_page(slug: str, error: AppError | None = None, chosen: str = "") -> Any:
    town = town_by_slug(slug)
    user = current_user()
    quote = offer_service().quote(town, user)
    return render_template(
        "premium/buy.html",
        town=town,
        quote=quote,
        purchases=purchase_service().purchases_of(user, town) if user else [],
        error=error and error.translated(),
        chosen=chosen,
        request_key=uuid.uuid4().hex,
        test_mode=payment_provider().test_mode,
    ), (error.status if error else 200)


@bp.get("/towns/<slug>/points/buy")
def buy(slug: str) -> Any:
    if current_user() is None:
        return _login()
    return _buy_page(slug)


@bp.post("/towns/<slug>/points/buy")
def checkout(slug: str) -> Any:
    user = current_user()
    if user is None:
        return _login()
    town = town_by_slug(slug)
    yen = request.form.get("yen", "")
    try:
        placed = purchase_service().checkout(user, town, yen, request.form.get("idempotency_key"))
    except AppError as exc:
        get_db().session.rollback()
        return _buy_page(slug, exc, chosen=yen)
    return redirect(placed.redirect_url)


@bp.get("/points/purchases/<public_id>")
def purchase(public_id: str) -> Any:
    user = current_user()
    if user is None:
        return _login()
    p = purchase_service().get(user, public_id)
    town = purchase_service().town_of(p)
    return render_template("premium/purchase.html", purchase=p, town=town)


@bp.post("/points/purchases/<public_id>/pay")
def resume(public_id: str) -> Any:
    user = current_user()
    if user is None:
        return _login()
    return redirect(purchase_service().resume_checkout(user, public_id))


@bp.post("/points/purchases/<public_id>/cancel")
def cancel(public_id: str) -> Any:
    user = current_user()
    if user is None:
        return _login()
    purchase_service().cancel(user, public_id)
    return redirect(url_for(".purchase", public_id=public_id))


@bp.route("/points/buy/test-checkout/<public_id>", methods=["GET", "POST"])
def test_checkout(public_id: str) -> Any:
    provider = payment_provider()
    if provider.name != "test" or not on_test_chain():
        # The free test checkout exists only on local test chains (issue 11 §5).
        raise NotFound("There is no such page.")
    user = current_user()
    if user is None:
        return _login()
    p = purchase_service().get(user, public_id)
    if request.method == "POST":
        choice = request.form.get("choice")
        if choice in ("paid", "declined") and p.status == PENDING_PAYMENT:
            # What the provider would send: a signed webhook, through the same verification.
            payload, headers = provider.signed_event(p.public_id, choice, int(p.yen))  # type: ignore[attr-defined]
            card_payment_service().handle_webhook(provider, payload, headers)
        return redirect(url_for(".purchase", public_id=public_id))
    return render_template(
        "premium/test_checkout.html", purchase=p, town=purchase_service().town_of(p)
    )
