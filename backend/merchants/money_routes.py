"""Money-path JSON API (issue 11 §1-§3, ADR 0009): single-use customer codes, the customer's
charges, the PIN pad, card unlock, the town's limits, settlement approval (four eyes), shops'
bank accounts and the 全銀協 transfer file.

Endpoint names are stable (rate limits key on them): money.issue_customer_code and
money.pin_pad_submit are the ones a guesser would hammer.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from sqlalchemy.orm import Session

from backend.accounts.roles import STAFF, current_user, require_town_role, require_user
from backend.core.db import get_db
from backend.core.errors import json_object
from backend.merchants import bank_transfer, cards, limits
from backend.merchants.customer_codes import charges_of
from backend.merchants.models import MerchantBankAccount
from backend.merchants.routes import charge_json, settlement_json, town_by_slug
from backend.merchants.services import merchant_service

bp = Blueprint("money", __name__)


@bp.post("/api/me/customer-codes")
def issue_customer_code() -> tuple[Response, int]:
    """A new single-use code for the signed-in customer (shown as a QR to one shop)."""
    code, expires = merchant_service().issue_customer_code(require_user())
    return jsonify(code=code, expires_at=expires.isoformat()), 201


@bp.get("/api/me/charges")
def my_charges() -> Response:
    """Every charge taken from the signed-in customer, newest first, the moment it is taken
    (also while it is being paid on chain), with the shop and how it was paid."""
    rows = charges_of(get_db().session(), require_user())
    return jsonify(charges=[charge_json(c, m) for c, m in rows])


@bp.post("/api/pin-pad/<token>")
def pin_pad_submit(token: str) -> Response:
    """The resident's PIN from the pad; answers the charge (paid/paying) or wrong PIN/locked."""
    data = json_object()
    c = merchant_service().submit_pin(current_user(), token, data.get("pin"))
    return jsonify(charge=charge_json(c))


@bp.post("/api/cards/<int:card_id>/unlock")
def unlock_card(card_id: int) -> Response:
    card = cards.unlock_card(get_db().session(), current_user(), card_id)
    return jsonify(card={"id": card.id, "card_code": card.card_code, "locked": False})


@bp.get("/api/towns/<slug>/money-settings")
def money_settings(slug: str) -> Response:
    town = town_by_slug(slug)
    require_town_role(current_user(), town.id, STAFF)
    return _settings_json(get_db().session(), town.id)


@bp.post("/api/towns/<slug>/money-settings")
def set_money_settings(slug: str) -> tuple[Response, int]:
    """200 when everything asked for applies; 202 when a raise of a four-eyes amount waits for
    a second member of staff (in "pending"; the rest applied)."""
    town = town_by_slug(slug)
    user = require_town_role(current_user(), town.id, STAFF)
    session = get_db().session()
    waiting = limits.set_town_limits(session, town.id, user.id, json_object())
    session.commit()
    return _settings_json(session, town.id), 202 if waiting else 200


def _settings_json(session: Session, town_id: int) -> Response:
    return jsonify(
        settings=limits.town_limits(session, town_id),
        pending=limits.pending_raises(session, town_id),
    )


@bp.post("/api/towns/<slug>/bank-account")
def set_town_bank_account(slug: str) -> Response:
    town = town_by_slug(slug)
    bank_transfer.set_originator(get_db().session(), current_user(), town, json_object())
    return jsonify(ok=True)


def _account_json(a: MerchantBankAccount | None) -> dict[str, Any] | None:
    if a is None:
        return None
    return {
        "bank_code": a.bank_code,
        "bank_name": a.bank_name,
        "branch_code": a.branch_code,
        "branch_name": a.branch_name,
        "account_type": a.account_type,
        "account_number": a.account_number,
        "holder_name": a.holder_name,
    }


@bp.get("/api/merchants/<int:merchant_id>/bank-account")
def bank_account(merchant_id: int) -> Response:
    """Town staff only: the shop's own staff do not see it here either."""
    session = get_db().session()
    m = merchant_service().merchant(merchant_id)
    require_town_role(current_user(), m.town_id, STAFF)
    return jsonify(bank_account=_account_json(session.get(MerchantBankAccount, m.id)))


@bp.post("/api/merchants/<int:merchant_id>/bank-account")
def set_bank_account(merchant_id: int) -> Response:
    m = merchant_service().merchant(merchant_id)
    row = bank_transfer.set_bank_account(get_db().session(), current_user(), m, json_object())
    return jsonify(bank_account=_account_json(row))


@bp.post("/api/settlements/<int:settlement_id>/approve")
def approve_settlement(settlement_id: int) -> Response:
    s = merchant_service().approve(current_user(), settlement_id)
    return jsonify(settlement=settlement_json(s))


@bp.post("/api/towns/<slug>/settlements/transfer-file")
def transfer_file(slug: str) -> Response:
    """The 全銀協 総合振込 file (Shift_JIS, 120-byte records) for approved settlements."""
    data = json_object()
    name, body = bank_transfer.transfer_file(
        get_db().session(),
        current_user(),
        town_by_slug(slug),
        data.get("settlement_ids"),
        data.get("transfer_date"),
    )
    return Response(
        body,
        mimetype="text/plain",
        headers={
            "Content-Type": "text/plain; charset=Shift_JIS",
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )
