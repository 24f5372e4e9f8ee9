"""Money pages (issue 11 §1-§3, ADR 0009): the PIN pad for printed cards, and the town staff's
card unlock and bank-transfer file.

The PIN pad is its own page: the resident types the PIN into a masked field that posts straight
to the server, and the answer is always a redirect (303) to a page without the PIN, so the shop's
desk page never holds it, the browser's history and form restore cannot bring it back, and the
responses are not stored (no-store). The shop learns "paid", "wrong PIN (n left)" or "locked".
"""

from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template, request, url_for

from backend.accounts.roles import STAFF, current_user, require_town_role
from backend.core.db import get_db
from backend.core.errors import N_, AppError, InvalidInput
from backend.merchants import bank_transfer, cards
from backend.merchants.models import Charge
from backend.merchants.services import merchant_service
from backend.regions.services import town_by_slug
from webui.shared import settlements_page

bp = Blueprint("money_pages", __name__)


def _no_store(resp: Response) -> Response:
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"  # the pad's token stays out of Referer
    return resp


def _login() -> Response:
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))  # type: ignore[return-value]


@bp.get("/pin-pad/<token>")
def pin_pad(token: str) -> Response:
    user = current_user()
    if user is None:
        return _login()
    svc = merchant_service()
    pad = cards.pad_session(svc.session, token)
    merchant = svc.require_staff(user, pad.merchant_id)
    charge = svc.session.get(Charge, pad.charge_id)
    left = request.args.get("left", "")
    status = 200
    error = request.args.get("error", "")
    return _no_store(
        Response(
            render_template(
                "money/pin_pad.html",
                merchant=merchant,
                charge=charge,
                token=token,
                error=error,
                left=int(left) if left.isdigit() else None,
            ),
            status=status,
        )
    )


@bp.post("/pin-pad/<token>")
def pin_pad_submit(token: str) -> Response:
    """Always a redirect: the PIN is never rendered back, whatever happens."""
    user = current_user()
    if user is None:
        return _login()
    svc = merchant_service()
    pad = cards.pad_session(svc.session, token)
    try:
        charge = svc.submit_pin(user, token, request.form.get("pin"))
    except AppError as exc:
        get_db().session.rollback()
        args: dict[str, object] = {"token": token, "error": exc.code}
        if "left" in exc.details:
            args["left"] = exc.details["left"]
        return _no_store(redirect(url_for(".pin_pad", **args), code=303))  # type: ignore[arg-type]
    return _no_store(
        redirect(  # type: ignore[arg-type]
            url_for("merchants_pages.charge", merchant_id=pad.merchant_id, charge_id=charge.id),
            code=303,
        )
    )


@bp.post("/towns/<slug>/cards/unlock")
def unlock_card(slug: str) -> Response:
    user = current_user()
    if user is None:
        return _login()
    town = town_by_slug(slug)
    require_town_role(user, town.id, STAFF)
    session = get_db().session()
    try:
        card = cards.card_by_code(session, request.form.get("card_code"))
        if card.town_id != town.id:
            raise InvalidInput(N_("There is no card with this code."), field="card_code")
        cards.unlock_card(session, user, card.id)
    except AppError as exc:
        session.rollback()
        return redirect(url_for("town_hall_pages.resident_cards", slug=slug, error=exc.code))  # type: ignore[return-value]
    return redirect(url_for("town_hall_pages.resident_cards", slug=slug, notice="unlocked"))  # type: ignore[return-value]


@bp.post("/towns/<slug>/settlements/transfer-file")
def transfer_file(slug: str) -> Response:
    user = current_user()
    if user is None:
        return _login()
    town = town_by_slug(slug)
    session = get_db().session()
    try:
        name, body = bank_transfer.transfer_file(
            session, user, town, None, request.form.get("transfer_date")
        )
    except AppError as exc:
        session.rollback()
        return settlements_page(slug, exc)  # type: ignore[no-any-return]
    return _no_store(
        Response(
            body,
            headers={
                "Content-Type": "text/plain; charset=Shift_JIS",
                "Content-Disposition": f'attachment; filename="{name}"',
            },
        )
    )
