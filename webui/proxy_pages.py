"""Family proxies (issue 15 §1, ADR 0023): the town hall's page to link and end a resident's
family proxies (from "Printed resident cards"), and the proxy's pages: the people they help with
their balances, and "pay for them" with the shop's code, confirmed on a page of its own.

Forms carry csrf_token (and the link form a one-time request key). Rights and limits live in
backend/merchants/proxies.py; errors are shown on the page with their status. No page shows an
address of the chain: people are named by name (or e-mail for the family member).
"""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, redirect, render_template, request, url_for

from backend.accounts.roles import current_user
from backend.core.db import get_db, utcnow
from backend.core.errors import AppError
from backend.merchants import proxies, proxy_payments
from backend.merchants.services import merchant_service
from backend.regions.models import Town
from backend.regions.services import town_by_slug

bp = Blueprint("proxy_pages", __name__)

_FORM = ("email", "relation", "per_payment_limit", "daily_limit")


def _no_store(resp: Response) -> Response:
    resp.headers["Cache-Control"] = "no-store"  # balances of another person stay off disks
    return resp


def _login() -> Response:
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))  # type: ignore[return-value]


# ---------------------------------------------------------------------- town staff


def _staff_page(
    town: Town, card_id: int, error: AppError | None = None, form: dict[str, str] | None = None
) -> Response:
    session = get_db().session()
    card, resident = proxies.resident_card(session, current_user(), town, card_id)
    return _no_store(
        Response(
            render_template(
                "proxies/staff.html",
                town=town,
                card=card,
                resident_name=proxies.person_name(resident),
                links=proxies.links_of(session, town.id, resident.id),
                acts=proxies.proxy_acts(session, resident.id, town.id, limit=20),
                relations=proxies.RELATIONS,
                form=form or {},
                error=error and error.translated(),
                error_field=error.details.get("field") if error else None,
                notice=request.args.get("notice", ""),
                request_key=uuid.uuid4().hex,
            ),
            status=error.status if error else 200,
        )
    )


@bp.get("/towns/<slug>/cards/<int:card_id>/proxies")
def resident_proxies(slug: str, card_id: int) -> Response:
    if current_user() is None:
        return _login()
    return _staff_page(town_by_slug(slug), card_id)


@bp.post("/towns/<slug>/cards/<int:card_id>/proxies")
def link_proxy(slug: str, card_id: int) -> Response:
    user = current_user()
    if user is None:
        return _login()
    town = town_by_slug(slug)
    form = {k: request.form.get(k, "") for k in _FORM}
    try:
        proxies.link_proxy(
            merchant_service(),
            user,
            town,
            card_id,
            email=form["email"],
            per_payment_limit=form["per_payment_limit"],
            daily_limit=form["daily_limit"],
            relation=form["relation"],
            agreed_in_person=request.form.get("agreed_in_person") == "1",
            request_key=request.form.get("request_key"),
        )
    except AppError as exc:
        get_db().session.rollback()
        return _staff_page(town, card_id, exc, form)
    return redirect(  # type: ignore[return-value]
        url_for(".resident_proxies", slug=slug, card_id=card_id, notice="linked"), code=303
    )


@bp.post("/towns/<slug>/cards/<int:card_id>/proxies/<int:link_id>/end")
def end_proxy(slug: str, card_id: int, link_id: int) -> Response:
    user = current_user()
    if user is None:
        return _login()
    town = town_by_slug(slug)
    session = get_db().session()
    try:
        _card, resident = proxies.resident_card(session, user, town, card_id)
        proxies.end_link(session, user, town, link_id, utcnow(), resident_id=resident.id)
    except AppError as exc:
        session.rollback()
        return _staff_page(town, card_id, exc)
    return redirect(  # type: ignore[return-value]
        url_for(".resident_proxies", slug=slug, card_id=card_id, notice="ended"), code=303
    )


# ---------------------------------------------------------------------- the proxy


def _helping_page(error: AppError | None = None, code: str = "") -> Response:
    svc = merchant_service()
    user = current_user()
    return _no_store(
        Response(
            render_template(
                "proxies/index.html",
                helped=proxy_payments.helped_by(svc, user),
                error=error and error.translated(),
                code=code,
            ),
            status=error.status if error else 200,
        )
    )


@bp.get("/proxy")
def helping() -> Response:
    """The people the signed-in family member helps, their balances and today's limits."""
    if current_user() is None:
        return _login()
    return _helping_page()


@bp.get("/proxy/<int:link_id>/pay")
def confirm(link_id: int) -> Response:
    """The confirmation step: the shop, the amount, whose points, what is left; nothing paid."""
    user = current_user()
    if user is None:
        return _login()
    code = request.args.get("code", "")
    try:
        quote = proxy_payments.quote(merchant_service(), user, link_id, code)
    except AppError as exc:
        get_db().session.rollback()
        return _helping_page(exc, code)
    return _no_store(Response(render_template("proxies/confirm.html", quote=quote)))


@bp.post("/proxy/<int:link_id>/pay")
def pay(link_id: int) -> Response:
    user = current_user()
    if user is None:
        return _login()
    code = request.form.get("code", "")
    try:
        charge = proxy_payments.pay_for(merchant_service(), user, link_id, code)
    except AppError as exc:
        get_db().session.rollback()
        return _helping_page(exc, code)
    return redirect(  # type: ignore[return-value]
        url_for(".paid", link_id=link_id, code=charge.code), code=303
    )


@bp.get("/proxy/<int:link_id>/charges/<code>")
def paid(link_id: int, code: str) -> Response:
    """A payment this proxy made for this person: processing, then paid (merchants.js polls)."""
    user = current_user()
    if user is None:
        return _login()
    svc = merchant_service()
    helped = proxy_payments.helping(svc, user, link_id)
    charge = proxy_payments.paid_charge(svc, helped.link, code)
    return _no_store(
        Response(
            render_template(
                "proxies/paid.html",
                helped=helped,
                charge=charge,
                shop=svc.merchant(charge.merchant_id),
                poll_url=url_for("merchants.charge_for_customer", code=charge.code),
            )
        )
    )
