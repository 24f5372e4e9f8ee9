"""Your wallets (/me/wallets): the wallets that sign in to the account; linking one, confirming
one that a password reset paused, removing one. An account with a password gives it again for
each (docs/adr/0027-wallet-sign-in-after-reset.md); the wallet's signature of the server's
EIP-4361 message is put into the form by static/js/wallet_link.js."""

from __future__ import annotations

from flask import (
    Blueprint,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext

from backend.accounts.roles import current_user
from backend.accounts.services import account_service, siwe_site
from backend.accounts.sessions import SIWE_NONCE
from backend.core.db import get_db
from backend.core.errors import AppError

bp = Blueprint("wallet_pages", __name__)


def _page(user, error: AppError | None = None):  # type: ignore[no-untyped-def]
    body = render_template(
        "auth/wallets.html",
        user=user,
        wallets=account_service().sign_in_wallets(user),
        error=error and error.translated(),
    )
    # A page with password forms must not stay in a shared phone's cache.
    resp = make_response(body, error.status if error else 200)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/me/wallets")
def wallets():
    user = current_user()
    if user is None:
        return redirect(url_for("auth.login", next=request.path))
    return _page(user)


@bp.post("/me/wallets")
def link():
    user = current_user()
    if user is None:
        return redirect(url_for("auth.login", next=request.path))
    # One attempt per issued nonce, whatever the outcome (as the sign-in API).
    expected = session.pop(SIWE_NONCE, None)
    # A browser sends a form field's line breaks as CRLF; the wallet signed the message with
    # LF, and an EIP-4361 message holds no CR of its own, so this restores the signed text.
    message = request.form.get("message", "").replace("\r\n", "\n")
    try:
        result = account_service().link_wallet(
            user,
            message,
            request.form.get("signature"),
            request.form.get("password", ""),
            expected_nonce=expected,
            site=siwe_site(),
        )
    except AppError as exc:
        get_db().session().rollback()
        return _page(user, exc)
    if result.linked:
        flash(gettext("The wallet %(address)s is linked.", address=result.address))
    elif result.resumed:
        flash(gettext("The wallet %(address)s signs you in again.", address=result.address))
    else:
        flash(gettext("The wallet %(address)s was already linked.", address=result.address))
    return redirect(url_for("wallet_pages.wallets"))


@bp.post("/me/wallets/remove")
def remove():
    user = current_user()
    if user is None:
        return redirect(url_for("auth.login", next=url_for("wallet_pages.wallets")))
    try:
        address = account_service().remove_wallet(
            user, request.form.get("address"), request.form.get("password", "")
        )
    except AppError as exc:
        get_db().session().rollback()
        return _page(user, exc)
    flash(gettext("The wallet %(address)s is removed from your account.", address=address))
    return redirect(url_for("wallet_pages.wallets"))
