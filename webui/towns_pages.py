"""The platform operator's town pages (/operator/towns) and the first admin's invite link
(/invite/<token>), issue 13. Only platform operators may onboard a town: the service checks it
(403 otherwise); the progress page polls a JSON status while the worker sets the town up."""

from __future__ import annotations

import uuid

from flask import Blueprint, jsonify, redirect, render_template, request, url_for

from backend.accounts.roles import current_user
from backend.accounts.sessions import log_in
from backend.core.errors import AppError
from backend.onboarding.services import (
    invite_service,
    parse_request,
    require_operator,
    town_setup_service,
)

bp = Blueprint("towns_admin", __name__)


def _operator():  # type: ignore[no-untyped-def]
    """The signed-in operator, or a redirect to log in (Forbidden for anyone else)."""
    user = current_user()
    if user is None:
        return None
    svc = town_setup_service()
    require_operator(svc.session, user)
    return user


def _login():  # type: ignore[no-untyped-def]
    return redirect(url_for("auth.login", next=request.path))


@bp.get("/operator")
def operator():  # type: ignore[no-untyped-def]
    """The operators' home: their towns (the only operator pages so far)."""
    return redirect(url_for(".index"), code=303)


@bp.get("/operator/towns")
def index():  # type: ignore[no-untyped-def]
    user = _operator()
    if user is None:
        return _login()
    return render_template("towns/list.html", setups=town_setup_service().setups(user))


@bp.get("/operator/towns/new")
def new():  # type: ignore[no-untyped-def]
    if _operator() is None:
        return _login()
    return render_template("towns/new.html", form={"idempotency_key": uuid.uuid4().hex})


@bp.post("/operator/towns")
def create():  # type: ignore[no-untyped-def]
    user = _operator()
    if user is None:
        return _login()
    form = request.form.to_dict()
    svc = town_setup_service()
    try:
        setup = svc.start(
            user, parse_request(form), idempotency_key=form.get("idempotency_key") or None
        )
    except AppError as exc:
        svc.session.rollback()
        return render_template("towns/new.html", form=form, error=exc), exc.status
    return redirect(url_for("towns_admin.progress", slug=setup.slug), 303)


@bp.get("/operator/towns/<slug>")
def progress(slug: str):  # type: ignore[no-untyped-def]
    user = _operator()
    if user is None:
        return _login()
    return render_template("towns/progress.html", view=town_setup_service().view(user, slug))


@bp.get("/operator/towns/<slug>/status.json")
def status(slug: str):  # type: ignore[no-untyped-def]
    user = _operator()
    if user is None:
        return jsonify({"error": "authentication_required"}), 401
    return jsonify(town_setup_service().view(user, slug).as_json())


@bp.post("/operator/towns/<slug>/retry")
def retry(slug: str):  # type: ignore[no-untyped-def]
    user = _operator()
    if user is None:
        return _login()
    town_setup_service().retry(user, slug)
    return redirect(url_for("towns_admin.progress", slug=slug), 303)


@bp.route("/invite/<token>", methods=["GET", "POST"])
def invite(token: str):  # type: ignore[no-untyped-def]
    svc = invite_service()
    try:
        found, has_account = svc.check(token)
    except AppError as exc:
        return render_template("towns/invite.html", error=exc, invite=None), exc.status
    # An existing account is opened with its password, unless it is the one signed in.
    signed_in = current_user()
    own = signed_in is not None and signed_in.email == found.email
    context = {"invite": found, "has_account": has_account, "signed_in_as_invitee": own}
    if request.method == "GET":
        return render_template("towns/invite.html", **context)
    slug = svc.town_slug(found)
    try:
        user = svc.accept(
            token,
            request.form.get("password"),
            request.form.get("display_name", ""),
            signed_in=signed_in,
        )
    except AppError as exc:
        svc.session.rollback()
        return render_template("towns/invite.html", error=exc, **context), exc.status
    log_in(user)
    return redirect(url_for("console.index", slug=slug), 303)
