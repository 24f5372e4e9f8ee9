"""What holders do with what they own (issue 15 §4): give a card or ticket to another person,
move it to their own wallet, and export the built-in wallet's key (moved here from the API).
Each asks for the password again; the rules live in backend/shop/gifts.py and AccountService."""

from __future__ import annotations

import uuid

from flask import Blueprint, flash, make_response, redirect, render_template, request, url_for
from flask_babel import get_locale, gettext

from backend.accounts.roles import current_user
from backend.accounts.services import account_service
from backend.core.db import get_db
from backend.core.errors import AppError
from backend.shop.gifts import GIVE, MOVE
from backend.shop.services import gift_service

bp = Blueprint("holders", __name__)


def _locale() -> str:
    return str(get_locale() or "ja")


def _no_store(body: str, status: int = 200):
    # A page with a private key or a password form must not stay in a shared phone's cache.
    resp = make_response(body, status)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.route("/my/collection/<int:cid>/<int:tid>/give", methods=["GET", "POST"])
def give(cid: int, tid: int):
    user = current_user()
    if user is None:
        return redirect(url_for("auth.login", next=request.path))
    gifts = gift_service()
    collection, token_id = gifts.token(user, cid, tid)  # 404 unless theirs, in the built-in wallet
    error = None
    field = None
    form = {"kind": GIVE, "recipient": "", "wallet": ""}
    if request.method == "POST":
        form = {k: request.form.get(k, "") for k in form}
        kind = MOVE if form["kind"] == MOVE else GIVE
        recipient = form["wallet"] or form["recipient"] if kind == MOVE else form["recipient"]
        try:
            gifts.give(
                user,
                cid,
                tid,
                recipient=recipient,
                password=request.form.get("password", ""),
                request_key=request.form.get("request_key"),
                kind=kind,
            )
        except AppError as exc:
            get_db().session.rollback()
            error, field = exc.translated(), exc.details.get("field")
            status = exc.status
        else:
            flash(gettext("The card is on its way. It leaves your collection once it arrives."))
            return redirect(url_for("shop.my_collection"))
    else:
        status = 200
    body = render_template(
        "holders/give.html",
        collection=collection,
        token_id=token_id,
        wallets=gifts.own_wallets(user),
        form=form,
        error=error,
        field=field,
        request_key=uuid.uuid4().hex,
    )
    return _no_store(body, status)


@bp.route("/me/key", methods=["GET", "POST"])
def export_key():
    user = current_user()
    if user is None:
        return redirect(url_for("auth.login", next=request.path))
    error = None
    exported = None
    status = 200
    if request.method == "POST":
        if request.form.get("understood") != "yes":
            error, status = gettext("Tick the box to confirm you understand the risks."), 400
        else:
            try:
                exported = account_service().export_private_key(
                    user, request.form.get("password", "")
                )
            except AppError as exc:
                get_db().session.rollback()
                error, status = exc.translated(), exc.status
    body = render_template("holders/export_key.html", error=error, exported=exported)
    return _no_store(body, status)
