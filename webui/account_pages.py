"""Account pages reached by mail: verify the address, reset or change the password, change the
address. The mail flows themselves are backend/accounts/mail_flows.py."""

from __future__ import annotations

import logging

from flask import Blueprint, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from backend.accounts import sessions
from backend.accounts.roles import current_user
from backend.accounts.services import account_service
from backend.claims.services import claim_service
from backend.core.db import get_db
from backend.core.errors import AppError
from backend.points.programmes import EMAIL_VERIFIED, granted_on
from backend.points.services import PointsService
from backend.regions.models import Town
from webui.shared import account_mail

bp = Blueprint("account_pages", __name__)
log = logging.getLogger(__name__)


def _done(message_key: str, status: int = 200, **extra: object):
    return render_template("auth/notice.html", notice=message_key, **extra), status


def grant_welcome(user, town_slug: str | None) -> None:  # type: ignore[no-untyped-def]
    """The points the town the account signed up from grants on a verified address (the kinds
    granted on EMAIL_VERIFIED: welcome points). Never fails the page: a failure is logged for
    staff to grant by hand."""
    if not town_slug:
        return
    session_ = get_db().session()
    town = session_.scalar(select(Town).where(Town.slug == town_slug))
    if town is None:
        return
    for programme in granted_on(EMAIL_VERIFIED):
        try:
            PointsService(session_).grant(user, town, programme)
        except AppError as exc:
            session_.rollback()
            log.warning(
                "no %s points for user %s in %s: %s", programme.name, user.id, town_slug, exc.code
            )


def take_claims(user) -> None:  # type: ignore[no-untyped-def]
    """Points held for the address the user has just proved (issue 14 §3): their claims are
    theirs now and move to their wallet. Never fails the page: the beat
    (claims.take_verified) takes what a failure here left."""
    try:
        claim_service().take(user)
    except (AppError, SQLAlchemyError) as exc:
        get_db().session().rollback()
        log.warning("claims of user %s not taken now: %s", user.id, type(exc).__name__)


@bp.get("/verify-email/<token>")
def verify_email(token: str):
    try:
        verified = account_mail().verify(token)
    except AppError as exc:
        return render_template("auth/notice.html", error=exc.translated()), exc.status
    grant_welcome(verified.user, verified.town_slug)
    take_claims(verified.user)
    return _done("verified")


@bp.post("/me/verify-email")
def resend_verification():
    user = current_user()
    if user is None:
        return redirect(url_for("auth.login", next=url_for("auth.me")))
    account_mail().send_verification(user)
    return _done("verification_sent")


@bp.route("/forgot-password", methods=["GET", "POST"])
def forgot_password():
    error = None
    if request.method == "POST":
        try:
            account_mail().send_password_reset(request.form.get("email", ""))
        except AppError as exc:
            error = exc
        else:
            return _done("reset_sent")
    return render_template(
        "auth/forgot.html", error=error and error.translated()
    ), error.status if error else 200


@bp.route("/reset-password/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    svc = account_mail()
    error = None
    try:
        if request.method == "POST":
            user = svc.reset_password(token, request.form.get("password", ""))
            # Whoever held a session (perhaps the one who stole the password) is signed out.
            sessions.revoke_all(get_db().session(), user.id)
            take_claims(user)  # the reset link proved the mailbox too
            # The wallets whose sign-in the reset paused, and how to confirm them (ADR 0027).
            paused = [w for w in account_service().sign_in_wallets(user) if w.paused_at]
            return _done("password_reset", paused=paused)
        svc.check_reset_link(token)
    except AppError as exc:
        error = exc
    return render_template(
        "auth/reset.html", error=error and error.translated()
    ), error.status if error else 200


@bp.route("/me/password", methods=["GET", "POST"])
def change_password():
    user = current_user()
    if user is None:
        return redirect(url_for("auth.login", next=request.path))
    error = None
    if request.method == "POST":
        try:
            account_mail().change_password(
                user, request.form.get("current_password", ""), request.form.get("password", "")
            )
        except AppError as exc:
            error = exc
        else:
            sessions.keep_current_after_revoking(get_db().session(), user)
            return _done("password_changed")
    return render_template(
        "auth/password.html", error=error and error.translated()
    ), error.status if error else 200


@bp.route("/me/email", methods=["GET", "POST"])
def change_email():
    user = current_user()
    if user is None:
        return redirect(url_for("auth.login", next=request.path))
    error = None
    email = request.form.get("email", "")
    if request.method == "POST":
        try:
            account_mail().request_email_change(user, email, request.form.get("password", ""))
        except AppError as exc:
            error = exc
        else:
            return _done("email_change_sent")
    return render_template(
        "auth/email.html", email=email, error=error and error.translated()
    ), error.status if error else 200


@bp.get("/confirm-email/<token>")
def confirm_email(token: str):
    try:
        user = account_mail().confirm_email_change(token)
    except AppError as exc:
        return render_template("auth/notice.html", error=exc.translated()), exc.status
    take_claims(user)  # the new address is proved: what was held for it is theirs
    return _done("email_changed")
