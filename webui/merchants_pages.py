"""Merchant pages: the shop's desk (charge by QR, take a customer's code or card, sales,
redeem, statement), the customer's /pay/<code> page, and the town staff's pages: the
settlement queue and shops (register, add staff). Printed resident cards: town_hall_pages.py.

Forms carry csrf_token and a one-time request key, so a double submit has one effect.
Business rules and rights live in MerchantService; errors are shown on the page.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import (
    Blueprint,
    Response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext

from backend.accounts.roles import current_user, current_user_id
from backend.core.db import get_db
from backend.core.errors import N_, AppError
from backend.merchants import proxies
from backend.merchants.errors import MerchantNotFound
from backend.merchants.services import merchant_service
from backend.regions.services import town_by_slug
from webui.shared import cached_page, qr_svg, settlements_page

bp = Blueprint("merchants_pages", __name__)


def _login() -> Response:
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def _key() -> str:
    return uuid.uuid4().hex


@bp.get("/merchants")
def index():
    user = current_user()
    if user is None:
        return _login()
    return render_template("merchants/index.html", merchants=merchant_service().merchants_of(user))


def _desk(
    merchant_id: int,
    error: AppError | None = None,
    notice: str | None = None,
    key: str | None = None,
):
    user = current_user()
    svc = merchant_service()
    m = svc.require_staff(user, merchant_id)
    confirmed, available = svc.balance(m)
    context: dict[str, Any] = {
        "merchant": m,
        "balance": confirmed,
        "available": available,
        "sales": (sales := svc.sales(user, m.id)[:50]),
        "partner_sales": (partner := svc.partner_sales(m)[-50:][::-1]),
        "points_towns": svc.points_towns(partner),
        "customers": svc.customers_of([c for _e, c in sales] + partner),
        "paying": svc.pending_charges(m),
        "settlements": svc.settlements_of(m),
        "key": key or _key(),
        "error": error and error.translated(),
        "notice": notice,
    }
    return render_template("merchants/desk.html", **context), (error.status if error else 200)


@bp.get("/merchants/<int:merchant_id>")
def desk(merchant_id: int):
    if current_user_id() is None:
        return _login()
    notice = request.args.get("notice")
    return cached_page(
        "merchants.desk", lambda holes: _desk(merchant_id, notice=notice, key=holes.key)[0]
    )


@bp.post("/merchants/<int:merchant_id>/charges")
def create_charge(merchant_id: int):
    if current_user() is None:
        return _login()
    try:
        c = merchant_service().create_charge(
            current_user(), merchant_id, request.form.get("amount"), request.form.get("key")
        )
    except AppError as exc:
        return _desk(merchant_id, exc)
    return redirect(url_for(".charge", merchant_id=merchant_id, charge_id=c.id))


@bp.post("/merchants/<int:merchant_id>/charge-customer")
def charge_customer(merchant_id: int):
    if current_user() is None:
        return _login()
    try:
        c, pad_token = merchant_service().charge_customer(
            current_user(),
            merchant_id,
            request.form.get("amount"),
            request.form.get("customer_code"),
            request.form.get("key"),
        )
    except AppError as exc:
        get_db().session.rollback()
        return _desk(merchant_id, exc)
    if pad_token is not None:  # a printed card: the resident types the PIN on the pad
        return redirect(url_for("money_pages.pin_pad", token=pad_token), code=303)
    return redirect(url_for(".charge", merchant_id=merchant_id, charge_id=c.id))


@bp.get("/merchants/<int:merchant_id>/charges/<int:charge_id>")
def charge(merchant_id: int, charge_id: int):
    if current_user() is None:
        return _login()
    return _charge_page(merchant_id, charge_id)


def _charge_page(merchant_id: int, charge_id: int, error: AppError | None = None):
    svc = merchant_service()
    c = svc.charge_status(current_user(), merchant_id, charge_id)
    pay_url = url_for(".pay", code=c.code, _external=True)
    return render_template(
        "merchants/charge.html",
        merchant=svc.merchant(merchant_id),
        charge=c,
        pay_url=pay_url,
        qr=qr_svg(pay_url) if c.method == "qr" else None,
        paid_with=svc.points_town_of(c) if c.points_town_id != c.town_id else None,
        poll_url=url_for("merchants.charge_status", merchant_id=merchant_id, charge_id=c.id),
        error=error and error.translated(),
    ), (error.status if error else 200)


@bp.post("/merchants/<int:merchant_id>/charges/<int:charge_id>/cancel")
def cancel_charge(merchant_id: int, charge_id: int):
    if current_user() is None:
        return _login()
    try:
        merchant_service().cancel_charge(current_user(), merchant_id, charge_id)
    except AppError as exc:
        get_db().session.rollback()
        return _charge_page(merchant_id, charge_id, exc)
    return redirect(url_for(".charge", merchant_id=merchant_id, charge_id=charge_id), code=303)


@bp.post("/merchants/<int:merchant_id>/redeem")
def redeem(merchant_id: int):
    """Two steps: the desk's form shows the amount and the yen it becomes to confirm (nothing
    sent); only the confirmation's form (confirm=1) burns the points."""
    if current_user() is None:
        return _login()
    svc = merchant_service()
    try:
        if request.form.get("confirm") != "1":
            points, yen = svc.redeem_quote(current_user(), merchant_id, request.form.get("amount"))
            return render_template(
                "merchants/redeem_confirm.html",
                merchant=svc.merchant(merchant_id),
                points=points,
                yen=yen,
                key=request.form.get("key", ""),
            )
        svc.redeem(current_user(), merchant_id, request.form.get("amount"), request.form.get("key"))
    except AppError as exc:
        get_db().session.rollback()
        return _desk(merchant_id, exc)
    return redirect(url_for(".desk", merchant_id=merchant_id, notice="redeem"))


@bp.get("/merchants/<int:merchant_id>/statement.csv")
def statement(merchant_id: int):
    name, text = merchant_service().statement_csv(
        current_user(), merchant_id, request.args.get("from"), request.args.get("to"), gettext
    )
    return Response(
        "\ufeff" + text,  # a BOM so spreadsheet software reads UTF-8
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.route("/pay/<code>", methods=["GET", "POST"])
def pay(code: str):
    user = current_user()
    if user is None:
        return _login()
    svc = merchant_service()
    error = None
    c = svc.charge_by_code(code)
    if request.method == "POST":
        try:
            c = svc.pay_charge(user, code, request.form.get("points_town"))
        except AppError as exc:
            get_db().session.rollback()
            error = exc
            c = svc.charge_by_code(code)
    return render_template(
        "merchants/pay.html",
        charge=c,
        merchant=svc.merchant(c.merchant_id),
        options=svc.payment_options(user, c) if c.status == "pending" else [],
        paid_with=svc.points_town_of(c),
        mine=c.payer_user_id == user.id,
        # The signed-in person may be a family proxy of residents of the shop's town.
        proxy_for=proxies.links_in_town(svc.session, user, c.town_id)
        if c.status == "pending" and c.method == "qr"
        else [],
        error=error and error.translated(),
        poll_url=url_for("merchants.charge_for_customer", code=c.code),
    ), (error.status if error else 200)


@bp.get("/towns/<slug>/settlements")
def settlements(slug: str, error: AppError | None = None):
    return settlements_page(slug, error)


@bp.post("/settlements/<int:settlement_id>/approve")
def approve(settlement_id: int):
    if current_user() is None:
        return _login()
    slug = request.form.get("town", "")
    try:
        merchant_service().approve(current_user(), settlement_id)
    except AppError as exc:
        get_db().session.rollback()
        return settlements(slug, exc)
    return redirect(url_for(".settlements", slug=slug))


@bp.post("/settlements/<int:settlement_id>/settle")
def settle(settlement_id: int):
    if current_user() is None:
        return _login()
    slug = request.form.get("town", "")
    try:
        merchant_service().settle(current_user(), settlement_id, request.form.get("bank_reference"))
    except AppError as exc:
        return settlements(slug, exc)
    return redirect(url_for(".settlements", slug=slug))


# ---------------------------------------------------------------------- town staff: shops


def _shops(slug: str, error: AppError | None = None, form: dict[str, str] | None = None):
    svc = merchant_service()
    town = town_by_slug(slug)
    rows = svc.town_merchants(current_user(), town)
    return render_template(
        "merchants/shops.html",
        town=town,
        merchants=rows,
        staff={m.id: svc.staff_of(m) for m in rows},
        failures=svc.registration_failures(rows),
        error=error and error.translated(),
        error_field=error.details.get("field") if error else None,
        form=form or {},
        notice=request.args.get("notice"),
        poll_url=url_for("merchants.town_merchants", slug=town.slug),
    ), (error.status if error else 200)


@bp.get("/towns/<slug>/shops")
def shops(slug: str):
    if current_user() is None:
        return _login()
    return _shops(slug)


@bp.post("/towns/<slug>/shops")
def register_shop(slug: str):
    if current_user() is None:
        return _login()
    town = town_by_slug(slug)
    form = {"name_ja": request.form.get("name_ja", ""), "name_en": request.form.get("name_en", "")}
    try:
        merchant_service().register_merchant(
            current_user(), town, request.form.get("name_ja"), request.form.get("name_en")
        )
    except AppError as exc:
        get_db().session.rollback()
        return _shops(slug, exc, form)
    return redirect(url_for(".shops", slug=slug, notice="registered"))


@bp.post("/towns/<slug>/shops/<int:merchant_id>/register-again")
def register_shop_again(slug: str, merchant_id: int):
    """A shop whose registration failed on chain, registered again (once, whatever the
    repeats: backend/merchants/registration.py)."""
    if current_user() is None:
        return _login()
    town = town_by_slug(slug)
    try:
        _shop, queued = merchant_service().retry_registration(current_user(), town, merchant_id)
    except AppError as exc:
        get_db().session.rollback()
        return _shops(slug, exc)
    return redirect(url_for(".shops", slug=slug, notice="registered" if queued else "unchanged"))


@bp.post("/towns/<slug>/shops/<int:merchant_id>/staff")
def add_shop_staff(slug: str, merchant_id: int):
    if current_user() is None:
        return _login()
    town = town_by_slug(slug)
    svc = merchant_service()
    email = request.form.get("email", "")
    try:
        if svc.merchant(merchant_id).town_id != town.id:
            raise MerchantNotFound(N_("There is no such shop."))
        svc.add_staff_by_email(current_user(), merchant_id, email)
    except AppError as exc:
        get_db().session.rollback()
        return _shops(slug, exc, {f"email_{merchant_id}": email})
    return redirect(url_for(".shops", slug=slug, notice="staff_added"))
