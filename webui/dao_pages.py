"""DAO pages: a town's proposals, a proposal with eligibility, gasless votes and live results,
and the staff form to propose a treasury payout. Forms post here and call backend/dao/services."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import get_locale, gettext
from flask_babel import lazy_gettext as _l

from backend.accounts.roles import STAFF, current_user, has_town_role
from backend.core.errors import AppError
from backend.dao import services as dao
from backend.dao.models import CARD, DaoProposal
from backend.regions.models import Town

bp = Blueprint("dao_pages", __name__)

STATE_LABELS = {
    "submitting": _l("Being recorded"),
    "failed": _l("Could not be recorded"),
    "pending": _l("Voting starts soon"),
    "active": _l("Voting open"),
    "canceled": _l("Canceled"),
    "defeated": _l("Not approved"),
    "succeeded": _l("Approved"),
    "queued": _l("Approved, waiting to pay out"),
    "expired": _l("Expired"),
    "executed": _l("Paid out"),
}
TOKEN_LABELS = {"yen": _l("test yen"), "points": _l("points")}
CHAMBER_LABELS = {
    "card": _l("Card holders (1 card = 1 vote)"),
    "resident": _l("Residents (1 person = 1 vote)"),
}


def _locale() -> str:
    return str(get_locale())


def _message(exc: AppError) -> str:
    try:
        return gettext(exc.message, **exc.details)
    except (KeyError, ValueError, TypeError):
        return exc.message


@bp.app_context_processor
def _labels() -> dict[str, Any]:
    return {
        "dao_state_labels": STATE_LABELS,
        "dao_token_labels": TOKEN_LABELS,
        "dao_chamber_labels": CHAMBER_LABELS,
    }


@bp.get("/towns/<slug>/dao")
def proposals(slug: str):
    town = dao.town_by_slug(slug)
    user = current_user()
    return render_template(
        "dao/list.html",
        town=town,
        proposals=dao.list_proposals(town),
        is_staff=has_town_role(user, town.id, STAFF),
    )


def _render_new(town: Town, form: dict[str, Any], error: str | None = None, status: int = 200):
    return render_template("dao/new.html", town=town, form=form, error=error), status


@bp.route("/towns/<slug>/dao/new", methods=["GET", "POST"])
def new_proposal(slug: str):
    town = dao.town_by_slug(slug)
    user = current_user()
    if user is None:
        return redirect(url_for("auth.login", next=request.path))
    dao.require_town_role(user, town.id, STAFF)
    if request.method == "GET":
        form = {"chamber": CARD, "token": "yen", "idempotency_key": uuid.uuid4().hex}
        return _render_new(town, form)
    form = {k: request.form.get(k, "") for k in request.form if k != "csrf_token"}
    try:
        p = dao.create_proposal(user, town, form, form.get("idempotency_key"))
    except AppError as exc:
        return _render_new(town, form, _message(exc), exc.status)
    flash(gettext("Your proposal was submitted. It appears on chain in a few seconds."))
    return redirect(url_for("dao_pages.proposal", slug=slug, pid=p.id))


def _render_proposal(town: Town, p: DaoProposal, error: str | None = None, status: int = 200):
    user = current_user()
    view = dao.chain_view(p)
    return render_template(
        "dao/proposal.html",
        town=town,
        p=p,
        title=p.title(_locale()),
        body=p.body(_locale()),
        view=view,
        results=dao.results(p, view),
        eligibility=dao.eligibility(user, p, view),
        is_staff=has_town_role(user, town.id, STAFF),
        error=error,
    ), status


@bp.get("/towns/<slug>/dao/proposals/<int:pid>")
def proposal(slug: str, pid: int):
    town = dao.town_by_slug(slug)
    return _render_proposal(town, dao.get_proposal(town, pid))


@bp.post("/towns/<slug>/dao/proposals/<int:pid>/vote")
def vote(slug: str, pid: int):
    town = dao.town_by_slug(slug)
    p = dao.get_proposal(town, pid)
    if current_user() is None:
        return redirect(url_for("auth.login", next=url_for(".proposal", slug=slug, pid=pid)))
    try:
        dao.cast_vote(current_user(), town, p, request.form.get("support"))
    except AppError as exc:
        return _render_proposal(town, p, _message(exc), exc.status)
    flash(gettext("Thank you. Your vote was sent; no fee is charged to you."))
    return redirect(url_for(".proposal", slug=slug, pid=pid))


@bp.post("/towns/<slug>/dao/proposals/<int:pid>/<any(queue, execute):action>")
def staff_action(slug: str, pid: int, action: str):
    town = dao.town_by_slug(slug)
    p = dao.get_proposal(town, pid)
    fn = dao.queue_proposal if action == "queue" else dao.execute_proposal
    try:
        fn(current_user(), town, p)
    except AppError as exc:
        return _render_proposal(town, p, _message(exc), exc.status)
    flash(
        gettext("Queued. It can pay out after the waiting time.")
        if action == "queue"
        else gettext("Execution sent. The payout shows here once the chain confirms it.")
    )
    return redirect(url_for(".proposal", slug=slug, pid=pid))
