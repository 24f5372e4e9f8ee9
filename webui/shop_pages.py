"""The shop's pages: a town's shop, checkout (test card), order status, my collection and the
venue's ticket check-in. Pages call the services; no business rule lives here."""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, redirect, render_template, request, url_for
from flask_babel import get_locale
from markupsafe import Markup

from backend.accounts.roles import (
    VERIFIER,
    current_user,
    current_user_id,
    has_town_role,
    require_town_role,
)
from backend.core.db import get_db
from backend.core.errors import N_, AppError, NotFound
from backend.shop.errors import TicketRefused
from backend.shop.images import qr_svg
from backend.shop.models import Order
from backend.shop.services import (
    card_payment_service,
    checkin_service,
    gift_service,
    on_test_chain,
    order_service,
    payment_provider,
    shop_service,
    wallet_order_service,
    yen_currency,
)
from webui.shared import cached_page, yen_name

bp = Blueprint("shop", __name__)


def _locale() -> str:
    return str(get_locale() or "ja")


def _int(value: object) -> object:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return value


def _render_shop(
    slug: str,
    error: AppError | None = None,
    notice: str = "",
    status: int = 200,
    request_key: str | None = None,
):
    shop = shop_service()
    town = shop.town(slug)
    user = current_user()
    message = ""
    if error is not None:
        try:
            message = error.translated()
        except (KeyError, ValueError, TypeError):
            message = error.message
    orders = wallet_order_service()
    wallets = orders.wallets(user)
    test_mode = on_test_chain()
    yen_holder = wallets["builtin"] or wallets["wallet"]
    body = render_template(
        "shop/town.html",
        wallet=wallets["wallet"],
        builtin=wallets["builtin"],
        test_yen=orders.indexed_yen_balance(yen_holder) if test_mode and user else None,
        town=town,
        collections=shop.shop(town, _locale()),
        user=user,
        error=message,
        notice=notice,
        request_key=request_key or uuid.uuid4().hex,
        test_mode=test_mode,
        yen=yen_currency(),
        card_test_mode=payment_provider().test_mode,
        is_verifier=has_town_role(user, town.id, VERIFIER),
    )
    return body, status


@bp.get("/towns/<slug>")
def town(slug: str):
    notice = request.args.get("notice", "")
    return cached_page(
        "shop.town", lambda holes: _render_shop(slug, notice=notice, request_key=holes.key)[0]
    )


@bp.post("/towns/<slug>/buy")
def buy(slug: str):
    user = current_user()
    if user is None:
        return redirect(url_for("auth.login", next=url_for("shop.town", slug=slug)))
    try:
        placed = order_service().place(
            user,
            _int(request.form.get("listing_id")),
            _int(request.form.get("quantity")),
            request.form.get("idempotency_key"),
        )
    except AppError as exc:
        get_db().session.rollback()
        return _render_shop(slug, error=exc, status=exc.status)
    return redirect(placed.redirect_url)


@bp.post("/towns/<slug>/faucet")
def faucet(slug: str):
    user = current_user()
    if user is None:
        return redirect(url_for("auth.login", next=url_for("shop.town", slug=slug)))
    try:
        wallet_order_service().faucet(user)
    except AppError as exc:
        get_db().session.rollback()
        return _render_shop(slug, error=exc, status=exc.status)
    return redirect(url_for("shop.town", slug=slug, notice="faucet"))


@bp.get("/shop/orders/<public_id>")
def order(public_id: str):
    user = current_user()
    if user is None:
        return redirect(url_for("auth.login", next=request.path))
    o = order_service().get(user, public_id)
    return _no_store(render_template("shop/order.html", order=o, listing=o.listing, yen=_yen([o])))


def _yen(orders: list[Order]) -> str:
    # The yen token's name only when an order was paid with it (it may ask the chain).
    return yen_name() if any(o.payment_kind == "stablecoin" for o in orders) else ""


def _no_store(body: str) -> Response:
    # An order's state moves on its own: going Back must fetch it again, never show the
    # "processing" the browser kept (issue 15 §7).
    resp = Response(body)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/shop/orders/<public_id>/receipt")
def receipt(public_id: str):
    """The printable receipt (領収書) of a completed order; someone else's is not found."""
    user = current_user()
    if user is None:
        return redirect(url_for("auth.login", next=request.path))
    o = order_service().get(user, public_id)
    if o.status != "completed":
        raise NotFound(N_("There is no receipt for this order yet."))
    return _no_store(
        render_template("shop/receipt.html", order=o, buyer=user.display_name, yen=_yen([o]))
    )


@bp.get("/me/purchases")
def purchases():
    """The person's orders, newest first (linked from /me)."""
    user = current_user()
    if user is None:
        return redirect(url_for("auth.login", next=request.path))
    orders = order_service().my_orders(user, limit=200)
    return _no_store(render_template("shop/purchases.html", orders=orders, yen=_yen(orders)))


@bp.route("/shop/test-checkout/<public_id>", methods=["GET", "POST"])
def test_checkout(public_id: str):
    provider = payment_provider()
    if provider.name != "test" or not on_test_chain():
        # The free test checkout exists only on local test chains (issue 11 §5).
        raise NotFound("There is no such page.")
    user = current_user()
    if user is None:
        return redirect(url_for("auth.login", next=request.path))
    o = order_service().get(user, public_id)
    if request.method == "POST":
        choice = request.form.get("choice")
        if choice in ("paid", "declined") and o.status == "pending_payment":
            payload, headers = provider.signed_event(o.public_id, choice, int(o.amount))  # type: ignore[attr-defined]
            card_payment_service().handle_webhook(provider, payload, headers)
        return redirect(url_for("shop.order", public_id=public_id))
    return render_template("shop/test_checkout.html", order=o, listing=o.listing)


@bp.get("/my/collection")
def my_collection():
    if current_user_id() is None:
        return redirect(url_for("auth.login", next=request.path))
    return cached_page("shop.my_collection", lambda _holes: _my_collection())


def _my_collection() -> str:
    user = current_user()
    assert user is not None  # noqa: S101 - signed in (checked before the cache)
    items = shop_service().my_collection(user, _locale())
    for item in items:
        item["qr"] = Markup(qr_svg(item["ticket_code"]))  # noqa: S704 - SVG we generate
    orders = order_service().my_orders(user)
    gifts = gift_service()
    built_in = {a.lower() for a in shop_service().addresses(user)} - {
        w.lower() for w in gifts.own_wallets(user)
    }
    for item in items:  # only a card in the built-in wallet can be given from here
        item["giveable"] = item["holder"].lower() in built_in and not item["collection"].soulbound
    return render_template(
        "shop/my_collection.html", items=items, orders=orders, gifts=gifts.in_flight(user)
    )


@bp.route("/towns/<slug>/checkin", methods=["GET", "POST"])
def checkin(slug: str):
    shop = shop_service()
    town = shop.town(slug)
    user = current_user()
    if user is None:
        return redirect(url_for("auth.login", next=request.path))
    svc = checkin_service(shop)
    code = (request.form.get("code") or request.args.get("code") or "").strip()
    ticket, error, done, status, refusal = None, "", None, 200, ""
    try:
        if request.method == "POST" and request.form.get("perk_id"):
            done = svc.check_in(
                user,
                town,
                code,
                _int(request.form.get("perk_id")),
                request.form.get("idempotency_key"),
                _locale(),
            )
        if code:
            ticket = svc.lookup(user, town, code, _locale())
        else:
            require_town_role(user, town.id, VERIFIER)
    except AppError as exc:
        get_db().session.rollback()

        try:
            error = exc.translated()
        except (KeyError, ValueError, TypeError):
            error = exc.message
        status = exc.status
        if exc.status in (401, 403):
            raise
        # A refused ticket is a big NG at the venue (shop/checkin.html), with its reason.
        refusal = exc.code if isinstance(exc, TicketRefused) else ""
    return Response(
        render_template(
            "shop/checkin.html",
            town=town,
            code=code,
            ticket=ticket,
            error=error,
            done=done,
            refusal=refusal,
            request_key=uuid.uuid4().hex,
        ),
        status=status,
    )
