"""Merchants JSON API: registration, charges, paying, customer codes, sales, redemption,
settlement. POSTs need the X-CSRFToken header; errors use the shared JSON error shape."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for
from flask_babel import get_locale

from backend.accounts.roles import current_user, current_user_id
from backend.chain.api import register_key_store
from backend.core.db import get_db
from backend.core.errors import json_object
from backend.core.page_cache import cached_json
from backend.merchants.keystore import merchant_key_store
from backend.merchants.models import Charge, Merchant, Settlement
from backend.merchants.services import merchant_service
from backend.regions.services import town_by_slug

bp = Blueprint("merchants", __name__)


@bp.record_once
def _register_key_store(state: Any) -> None:
    # Master-key rotation re-wraps the merchants' custodial keys too.

    register_key_store(state.app, lambda: merchant_key_store(get_db().session()))


def merchant_json(m: Merchant) -> dict[str, Any]:
    return {
        "id": m.id,
        "town_id": m.town_id,
        "name_ja": m.name_ja,
        "name_en": m.name_en,
        "address": m.address,
        "status": m.status,
    }


def charge_json(c: Charge, merchant: Merchant | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": c.id,
        "code": c.code,
        "merchant_id": c.merchant_id,
        "amount": int(c.amount),
        "status": c.status,
        "method": c.method,
        "expires_at": c.expires_at.isoformat(),
        "paid_at": c.paid_at.isoformat() if c.paid_at else None,
        "tx_hash": c.tx_hash,
        "points_town_id": c.points_town_id,
    }
    if merchant is not None:
        out["shop"] = merchant.name(str(get_locale()))
    return out


def settlement_json(s: Settlement) -> dict[str, Any]:
    return {
        "id": s.id,
        "merchant_id": s.merchant_id,
        "amount": int(s.amount),
        "status": s.status,
        "ref": s.ref,
        "tx_hash": s.tx_hash,
        "bank_reference": s.bank_reference,
        "settled_at": s.settled_at.isoformat() if s.settled_at else None,
        "approved_by": s.approved_by,
        "second_approved_by": s.second_approved_by,
        "failure_reason": s.failure_reason,
    }


@bp.post("/api/towns/<slug>/merchants")
def register(slug: str) -> tuple[Response, int]:
    data = json_object()
    m = merchant_service().register_merchant(
        current_user(), town_by_slug(slug), data.get("name_ja"), data.get("name_en")
    )
    return jsonify(merchant=merchant_json(m)), 201


@bp.get("/api/towns/<slug>/merchants")
def town_merchants(slug: str) -> Response:
    rows = merchant_service().town_merchants(current_user(), town_by_slug(slug))
    return jsonify(merchants=[merchant_json(m) for m in rows])


@bp.get("/api/merchants/<int:merchant_id>")
def merchant(merchant_id: int) -> Response:
    svc = merchant_service()
    m = svc.require_staff(current_user(), merchant_id)
    confirmed, available = svc.balance(m)
    return jsonify(merchant=merchant_json(m), balance=confirmed, available=available)


@bp.post("/api/merchants/<int:merchant_id>/charges")
def create_charge(merchant_id: int) -> tuple[Response, int]:
    data = json_object()
    c = merchant_service().create_charge(
        current_user(), merchant_id, data.get("amount"), data.get("idempotency_key")
    )
    return jsonify(charge=charge_json(c)), 201


@bp.get("/api/merchants/<int:merchant_id>/charges/<int:charge_id>")
def charge_status(merchant_id: int, charge_id: int) -> Response:
    c = merchant_service().charge_status(current_user(), merchant_id, charge_id)
    return jsonify(charge=charge_json(c))


@bp.post("/api/merchants/<int:merchant_id>/charges/<int:charge_id>/cancel")
def cancel_charge(merchant_id: int, charge_id: int) -> Response:
    """The shop's staff cancel a pending charge (again: the same cancelled charge)."""
    c = merchant_service().cancel_charge(current_user(), merchant_id, charge_id)
    return jsonify(charge=charge_json(c))


@bp.post("/api/merchants/<int:merchant_id>/charge-customer")
def charge_customer(merchant_id: int) -> tuple[Response, int]:
    """A customer's single-use code pays at once (201); a printed card's charge waits for the
    resident's PIN on the PIN pad (202, with the pad's URL). The shop never sends a PIN."""
    data = json_object()
    c, token = merchant_service().charge_customer(
        current_user(),
        merchant_id,
        data.get("amount"),
        data.get("customer_code"),
        data.get("idempotency_key"),
        pin=data.get("pin"),
    )
    if token is not None:
        return jsonify(
            charge=charge_json(c),
            pin_pad_url=url_for("money_pages.pin_pad", token=token),
            pin_pad_token=token,
        ), 202
    return jsonify(charge=charge_json(c)), 201


@bp.get("/api/pay/<code>")
def charge_for_customer(code: str) -> Response:
    svc = merchant_service()
    c = svc.charge_by_code(code)
    return jsonify(charge=charge_json(c, svc.merchant(c.merchant_id)))


@bp.post("/api/pay/<code>")
def pay(code: str) -> Response:
    svc = merchant_service()
    data = request.get_json(silent=True) if request.content_length else None
    town = data.get("points_town") if isinstance(data, dict) else None
    c = svc.pay_charge(current_user(), code, town)
    return jsonify(charge=charge_json(c, svc.merchant(c.merchant_id)))


@bp.get("/api/merchants/<int:merchant_id>/sales")
def sales(merchant_id: int) -> Response:
    """The shop's sales (staff only), kept by the page cache until the data changes."""

    def build() -> dict[str, Any]:
        # 401/403/404 are raised here: nothing is cached then.
        rows = merchant_service().sales(current_user(), merchant_id)
        return {
            "sales": [
                {
                    "amount": int(e.amount),
                    "at": e.recorded_at.isoformat(),
                    "tx_hash": e.tx_hash,
                    "charge_code": c.code if c else None,
                }
                for e, c in rows
            ]
        }

    return cached_json(
        get_db().session(),
        "merchants.sales",
        build,
        user_id=current_user_id(),
        locale=str(get_locale() or "ja"),
    )


@bp.post("/api/merchants/<int:merchant_id>/redeem")
def redeem(merchant_id: int) -> tuple[Response, int]:
    data = json_object()
    s = merchant_service().redeem(
        current_user(), merchant_id, data.get("amount"), data.get("idempotency_key")
    )
    return jsonify(settlement=settlement_json(s)), 201


@bp.get("/api/merchants/<int:merchant_id>/settlements")
def merchant_settlements(merchant_id: int) -> Response:
    svc = merchant_service()
    m = svc.require_staff(current_user(), merchant_id)
    return jsonify(settlements=[settlement_json(s) for s in svc.settlements_of(m)])


@bp.get("/api/towns/<slug>/settlements")
def settlement_queue(slug: str) -> Response:
    rows = merchant_service().settlement_queue(current_user(), town_by_slug(slug))
    return jsonify(settlements=[settlement_json(s) for s in rows])


@bp.post("/api/settlements/<int:settlement_id>/settle")
def settle(settlement_id: int) -> Response:
    data = json_object()
    s = merchant_service().settle(current_user(), settlement_id, data.get("bank_reference"))
    return jsonify(settlement=settlement_json(s))


# ---------------------------------------------------------------------- the town's shop staff


def _shop_staff_json(svc: Any, m: Merchant) -> dict[str, Any]:
    return {
        **merchant_json(m),
        "staff": [{"user_id": u.id, "email": u.email} for u in svc.staff_of(m)],
    }


@bp.get("/api/towns/<slug>/people/shops")
def town_shop_staff(slug: str) -> Response:
    svc = merchant_service()
    rows = svc.town_merchants(current_user(), town_by_slug(slug))
    return jsonify(shops=[_shop_staff_json(svc, m) for m in rows])


@bp.post("/api/towns/<slug>/people/shops/<int:merchant_id>")
def add_shop_staff(slug: str, merchant_id: int) -> tuple[Response, int]:
    data = json_object()
    svc = merchant_service()
    m = svc.shop_of_town(town_by_slug(slug), merchant_id)
    svc.add_staff_by_email(current_user(), m.id, data.get("email"))
    return jsonify(shop=_shop_staff_json(svc, m)), 201


@bp.post("/api/towns/<slug>/people/shops/<int:merchant_id>/remove")
def remove_shop_staff(slug: str, merchant_id: int) -> Response:
    data = json_object()
    svc = merchant_service()
    m = svc.shop_of_town(town_by_slug(slug), merchant_id)
    changed = svc.remove_staff_by_email(current_user(), m.id, data.get("email"))
    return jsonify(shop=_shop_staff_json(svc, m), changed=changed)
