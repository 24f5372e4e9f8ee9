"""The town hall's desk for residents without a phone or an e-mail (issue 15 §1), on the staff's
"Printed resident cards" page: register a resident (name, ID seen), print their card (PDF),
reprint, replace, lock and unlock it, and print a balance slip.

Every response that shows a PIN or a resident's card is `Cache-Control: no-store`. Rights and
rules live in backend/merchants/town_hall.py (and card_issue.py, cards.py).
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, url_for

from backend.accounts.roles import STAFF, current_user, require_town_role
from backend.accounts.services import account_service
from backend.core.db import get_db, utcnow
from backend.core.errors import AppError
from backend.merchants import cards, proxies, town_hall
from backend.merchants.services import merchant_service
from backend.points.services import points_service
from backend.regions.models import Town
from backend.regions.services import town_by_slug

bp = Blueprint("town_hall_pages", __name__)

SLIP_ACTS = 30  # the newest payments by proxies on the balance slip

# The two PDF pages import backend.merchants.card_print themselves: it loads reportlab (about 55
# ms of CPU) and registers its Japanese font, at the start of every web process otherwise.


def _no_store(resp: Response) -> Response:
    resp.headers["Cache-Control"] = "no-store"  # PINs and residents' cards stay off disks
    return resp


def _login() -> Response:
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))  # type: ignore[return-value]


def cards_page(
    town: Town,
    *,
    error: AppError | None = None,
    issued: dict[str, Any] | None = None,
    email: str = "",
    form: dict[str, str] | None = None,
) -> Response:
    """The "Printed resident cards" page: the forms, the town's cards, and what was just
    issued (code and PIN, shown on this response only)."""
    user = current_user()
    query = request.args.get("q", "")
    resp = Response(
        render_template(
            "merchants/cards.html",
            town=town,
            issued=issued,
            email="" if issued else email,
            form=form or {},
            error=error and error.translated(),
            error_field=error.details.get("field") if error else None,
            # The resident already holds this town's card: offer to replace it, explicitly.
            offer_replace=error is not None and error.code == "card_exists",
            cards=town_hall.town_cards(get_db().session(), user, town, query),
            query=query,
            list_max=town_hall.LIST_MAX,
            id_kinds=town_hall.ID_KINDS,
            request_key=uuid.uuid4().hex,
        ),
        status=error.status if error else 200,
    )
    return _no_store(resp)


@bp.route("/towns/<slug>/cards", methods=["GET", "POST"])
def resident_cards(slug: str) -> Response:
    """Issue a printed card: the card code and PIN are shown on this response only. The same
    page registers residents without an e-mail and lists the town's cards (town_hall_pages)."""
    user = current_user()
    if user is None:
        return _login()
    svc = merchant_service()
    town = town_by_slug(slug)
    require_town_role(user, town.id, STAFF)
    email = request.form.get("email", "")
    replace = request.form.get("replace") == "1"
    if request.method == "GET":
        return cards_page(town)
    try:
        card, pin = svc.issue_card_by_email(user, town, email, replace=replace)
    except AppError as exc:
        get_db().session.rollback()
        return cards_page(town, error=exc, email=email)
    issued = {
        "code": card.card_code,
        "pin": pin,
        "email": email.strip().lower(),
        "card_id": card.id,
        "replaced": replace,
    }
    return cards_page(town, issued=issued)


@bp.post("/towns/<slug>/cards/residents")
def register_resident(slug: str) -> Response:
    user = current_user()
    if user is None:
        return _login()
    town = town_by_slug(slug)
    require_town_role(user, town.id, STAFF)
    form = {k: request.form.get(k, "") for k in ("name", "name_kana", "id_kind")}
    try:
        done = town_hall.register_resident(
            get_db().session(),
            account_service().vault,
            user,
            town,
            name=form["name"],
            name_kana=form["name_kana"],
            id_seen=request.form.get("id_seen") == "1",
            id_kind=form["id_kind"],
            request_key=request.form.get("request_key"),
            now=utcnow(),
        )
    except AppError as exc:
        get_db().session.rollback()
        return cards_page(town, error=exc, form=form)
    issued = {
        "code": done.card.card_code,
        "pin": done.pin,
        "name": done.user.display_name,
        "card_id": done.card.id,
        "registered": True,
    }
    return cards_page(town, issued=issued)


@bp.get("/towns/<slug>/cards/<int:card_id>/card.pdf")
def card_pdf(slug: str, card_id: int) -> Response:
    """The card to print (or reprint: the same code); never the PIN."""
    from backend.merchants import card_print  # with reportlab, when a PDF is asked for

    user = current_user()
    if user is None:
        return _login()
    town = town_by_slug(slug)
    session = get_db().session()
    card = town_hall.town_card(session, user, town, card_id)
    holder, _ = town_hall.card_holder(session, card)
    body = card_print.card_pdf(town.name_ja, holder.display_name, card.card_code)
    return _pdf(body, f"card-{card.card_code}.pdf")


@bp.get("/towns/<slug>/cards/<int:card_id>/balance.pdf")
def balance_slip(slug: str, card_id: int) -> Response:
    """The resident's balance slip: spendable points per expiry date, the family proxies and
    the payments they made, in Japan time."""
    from backend.merchants import card_print  # with reportlab, when a PDF is asked for

    user = current_user()
    if user is None:
        return _login()
    town = town_by_slug(slug)
    session = get_db().session()
    card = town_hall.town_card(session, user, town, card_id)
    holder, address = town_hall.card_holder(session, card)
    balance, lots = 0, []
    if address is not None:
        summary = points_service().summary(town, address)
        balance = summary.confirmed
        lots = [card_print.SlipLot(lot.remaining, lot.last_day) for lot in summary.lots]
    # The family proxies and what they paid: the resident sees every act done for them.
    linked = [
        card_print.SlipProxy(
            row.proxy_name,
            card_print.RELATION_JA.get(row.link.relation, ""),
            int(row.link.per_payment_limit),
            int(row.link.daily_limit),
            row.link.created_at,
            row.link.ended_at,
        )
        for row in proxies.links_of(session, town.id, holder.id)
    ]
    acts = [
        card_print.SlipAct(
            a.at,
            a.shop.name_ja,
            int(a.charge.amount),
            a.proxy_name,
            card_print.STATE_JA.get(a.charge.status, a.charge.status),
        )
        for a in proxies.proxy_acts(session, holder.id, town.id, limit=SLIP_ACTS)
    ]
    body = card_print.balance_slip_pdf(
        town.name_ja,
        holder.display_name,
        card.card_code,
        balance,
        lots,
        utcnow(),
        proxies=linked,
        acts=acts,
    )
    return _pdf(body, f"balance-{card.card_code}.pdf")


def _pdf(body: bytes, name: str) -> Response:
    resp = Response(body, mimetype="application/pdf")
    # inline: the browser's viewer opens it, and its print button prints it at the desk
    resp.headers["Content-Disposition"] = f'inline; filename="{name}"'
    return _no_store(resp)


@bp.post("/towns/<slug>/cards/<int:card_id>/lock")
def lock_card(slug: str, card_id: int) -> Response:
    user = current_user()
    if user is None:
        return _login()
    town = town_by_slug(slug)
    try:
        town_hall.lock_card(get_db().session(), user, town, card_id, utcnow())
    except AppError as exc:
        get_db().session.rollback()
        return cards_page(town, error=exc)
    return redirect(url_for("town_hall_pages.resident_cards", slug=slug, notice="locked"))  # type: ignore[return-value]


@bp.post("/towns/<slug>/cards/<int:card_id>/unlock")
def unlock_card(slug: str, card_id: int) -> Response:
    user = current_user()
    if user is None:
        return _login()
    town = town_by_slug(slug)
    session = get_db().session()
    try:
        card = town_hall.town_card(session, user, town, card_id)
        cards.unlock_card(session, user, card.id)
    except AppError as exc:
        session.rollback()
        return cards_page(town, error=exc)
    return redirect(url_for("town_hall_pages.resident_cards", slug=slug, notice="unlocked"))  # type: ignore[return-value]


@bp.post("/towns/<slug>/cards/<int:card_id>/replace")
def replace_card(slug: str, card_id: int) -> Response:
    """A new code and PIN for a lost card: the old code stops working at every shop."""
    user = current_user()
    if user is None:
        return _login()
    town = town_by_slug(slug)
    session = get_db().session()
    try:
        card, pin = town_hall.replace_card(
            session, user, town, card_id, request.form.get("card_code"), utcnow()
        )
        holder, _ = town_hall.card_holder(session, card)
    except AppError as exc:
        session.rollback()
        return cards_page(town, error=exc)
    issued = {
        "code": card.card_code,
        "pin": pin,
        "name": holder.display_name or holder.email or "",
        "card_id": card.id,
        "replaced": True,
    }
    return cards_page(town, issued=issued)
