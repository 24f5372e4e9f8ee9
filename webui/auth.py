"""Sign-up, sign-in (email and password, or one's own wallet by SIWE) and "my page".

Plain HTML forms with CSRF tokens, calling AccountService: the same rules and errors as the
JSON API. The custodial user never meets crypto words: it is "your account".
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, redirect, render_template, request, url_for
from sqlalchemy import select

from backend.accounts import sessions
from backend.accounts.roles import STAFF, current_user, has_town_role
from backend.accounts.services import AccountService, account_service
from backend.core.db import get_db
from backend.core.errors import AppError
from backend.merchants.services import merchant_service
from backend.onboarding.services import is_operator
from backend.regions.models import Town
from webui.shared import account_mail

bp = Blueprint("auth", __name__)
log = logging.getLogger(__name__)


def _service() -> AccountService:
    return account_service()


@bp.app_context_processor
def _inject_user() -> dict[str, Any]:
    return {"current_user": current_user()}


def _safe_next(target: str | None) -> str:
    if not target or not target.startswith("/") or target.startswith("//"):
        return url_for("auth.me")
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else url_for("auth.me")


def _town_in(path: str | None) -> str | None:
    """The town a visitor came from, when they signed up from its pages (/towns/<slug>...)."""
    m = re.match(r"^/towns/([a-z0-9-]+)", path or "")
    return m.group(1) if m else None


def _signup_town(slug: str | None) -> str | None:
    """`slug` if it names a town (the link's ?town= or ?next=, which anyone can write), else
    None: a bogus one signs up without welcome points, never fails after the account is made."""
    if not slug or len(slug) > 64:
        return None
    town = get_db().session().scalar(select(Town.slug).where(Town.slug == slug))
    return str(town) if town is not None else None


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    form = {"email": "", "display_name": ""}
    error = None
    if request.method == "POST":
        form = {k: request.form.get(k, "") for k in form}
        try:
            user = _service().signup(
                form["email"],
                request.form.get("password", ""),
                form["display_name"],
                _locale(),
            )
        except AppError as exc:
            error = exc
        else:
            sessions.log_in(user)
            # Welcome points of the town wait for the mailed link (webui/account_pages.py).
            town = _signup_town(request.args.get("town") or _town_in(request.args.get("next")))
            account_mail().send_verification(user, town)
            return redirect(_safe_next(request.args.get("next")))
    status = error.status if error else 200
    return render_template(
        "auth/signup.html",
        form=form,
        error=error and error.translated(),
        field=error and error.details.get("field"),
    ), status


@bp.route("/login", methods=["GET", "POST"])
def login():
    email = ""
    error = None
    if request.method == "POST":
        email = request.form.get("email", "")
        try:
            user = _service().authenticate(email, request.form.get("password", ""))
        except AppError as exc:
            error = exc
        else:
            sessions.log_in(user)
            return redirect(_safe_next(request.args.get("next")))
    status = error.status if error else 200
    return render_template(
        "auth/login.html",
        email=email,
        error=error and error.translated(),
        next=_safe_next(request.args.get("next")),
    ), status


@bp.post("/logout")
def logout():
    sessions.log_out(get_db().session())
    return redirect(url_for("pages.landing"))


@bp.get("/me")
def me():
    user = current_user()
    if user is None:
        return redirect(url_for("auth.login", next=request.path))
    session_ = get_db().session()
    towns = session_.scalars(select(Town).order_by(Town.id)).all()
    return render_template(
        "auth/me.html",
        user=user,
        own_wallets=_service().sign_in_wallets(user),
        towns=towns,
        merchants=merchant_service().merchants_of(user),
        staff_towns=[t for t in towns if has_town_role(user, t.id, STAFF)],
        operator=is_operator(session_, user),
    )


def _locale() -> str:
    from flask_babel import get_locale

    return str(get_locale())
