"""DAO pages: a town's proposals, a proposal with eligibility, gasless votes and live results,
the staff form to propose a treasury payout; multi-option polls (list, staff form, vote, live
results). Forms post here and call the DAO's services (backend/dao/proposals.py, treasury.py,
polls.py). Own-wallet users vote through static/js/dao_wallet.js (the ballot is signed in their
wallet)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import get_locale, gettext
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from markupsafe import Markup
from werkzeug.wrappers import Response as WerkzeugResponse

from backend.accounts.models import User
from backend.accounts.roles import STAFF, current_user, has_town_role, require_town_role
from backend.core.db import get_db
from backend.core.errors import AppError
from backend.core.page_cache import Holes
from backend.dao import external
from backend.dao.models import CARD, DaoPoll, DaoProposal
from backend.dao.polls import MAX_OPTIONS, PollService
from backend.dao.proposals import ProposalService
from backend.dao.treasury import TreasuryService
from backend.merchants.models import SUSPENDED
from backend.merchants.services import merchant_service
from backend.regions.models import Town
from webui.shared import cached_page, yen_name
from webui.times import jst

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
POLL_STATE_LABELS = {
    "submitting": _l("Being recorded"),
    "failed": _l("Could not be recorded"),
    "active": _l("Voting open"),
    "ended": _l("Voting has ended"),
    "canceled": _l("Canceled"),
}
# "yen" is the chain's yen token, named when a page shows it (test money on a local chain).
TOKEN_LABELS = {
    "yen": LazyString(yen_name),
    "points": _l("points"),
    "other": _l("other assets"),
}
CHAMBER_LABELS = {
    "card": _l("Card holders (1 card = 1 vote)"),
    "resident": _l("Residents (1 person = 1 vote)"),
}
# A proposal (not a poll) may also be put to both chambers (backend/dao/joint.py).
PROPOSAL_CHAMBER_LABELS = {
    **CHAMBER_LABELS,
    "both": _l("Both chambers: card holders and residents (passes only with both)"),
}


def _town(slug: str) -> Town:
    return ProposalService.current().town_by_slug(slug)


def _locale() -> str:
    return str(get_locale())


def _posted_form() -> dict[str, str]:
    """The submitted form fields, without the CSRF token."""
    return {k: request.form.get(k, "") for k in request.form if k != "csrf_token"}


def _staff_user(town: Town) -> tuple[User | None, WerkzeugResponse | None]:
    """(staff member of `town`, None), or (None, a redirect to log in); others are refused."""
    user = current_user()
    if user is None:
        return None, redirect(url_for("auth.login", next=request.path))
    require_town_role(user, town.id, STAFF)
    return user, None


def _vote_step(
    confirm: Callable[[], Any],
    cast: Callable[[], Any],
    render: Callable[[str, int], Any],
    here: str,
) -> Any:
    """The two steps of a vote (issue 15 §7). A GET, or a POST without `confirmed=yes`, shows
    the choice in words with "confirm" and "back" (`confirm`: nothing is signed or sent); the
    confirmed POST (CSRF) sends the vote (`cast`) and goes back to `here`, which then says what
    was chosen and when. A refusal shows the page again with the error (`render`). Signed-out
    visitors are sent to log in first."""
    if current_user() is None:
        return redirect(url_for("auth.login", next=here))
    confirmed = request.method == "POST" and request.form.get("confirmed") == "yes"
    try:
        if not confirmed:
            return confirm()
        cast()
    except AppError as exc:
        return render(exc.translated(), exc.status)
    flash(gettext("Thank you. Your vote was sent; no fee is charged to you."))
    return redirect(here)


def _render_confirm(
    town: Town,
    *,
    title: str,
    choice: str,
    field: str,
    value: str,
    weight: int,
    wallet: str | None,
    back: str,
    action: str,
    ballot_url: str,
    vote_url: str,
):
    return render_template(
        "dao/confirm.html",
        town=town,
        title=title,
        choice=choice,
        field=field,
        value=value,
        weight=weight,
        eligibility={"wallet": wallet},
        back=back,
        action=action,
        ballot_url=ballot_url,
        vote_url=vote_url,
    )


SUPPORT_LABELS = {1: _l("For"), 0: _l("Against"), 2: _l("Abstain")}  # GovernorCountingSimple
SUPPORT_VALUES = {1: "for", 0: "against", 2: "abstain"}  # what the vote form posts
VOTE_STATE_LABELS = {
    "submitted": _l("being recorded on the blockchain"),
    "counted": _l("counted"),
    "failed": _l("could not be recorded"),
}


def dao_time(when: dt.datetime | None) -> Markup | str:
    """A time in Japan time, labelled (the site's one format, webui/times.py)."""
    return jst(when)


@bp.app_context_processor
def _labels() -> dict[str, Any]:
    return {
        "dao_state_labels": STATE_LABELS,
        "dao_token_labels": TOKEN_LABELS,
        "dao_chamber_labels": CHAMBER_LABELS,
        "dao_proposal_chamber_labels": PROPOSAL_CHAMBER_LABELS,
        "dao_poll_state_labels": POLL_STATE_LABELS,
        "dao_support_labels": SUPPORT_LABELS,
        "dao_vote_state_labels": VOTE_STATE_LABELS,
        "dao_time": dao_time,
    }


@bp.get("/towns/<slug>/dao")
def proposals(slug: str):
    town = _town(slug)
    user = current_user()
    is_staff = has_town_role(user, town.id, STAFF)
    dao = ProposalService.for_pages()  # states from the projection: no call to the node
    return render_template(
        "dao/list.html",
        town=town,
        proposals=[(p, dao.chain_view(p)) for p in dao.list_proposals(town)],
        is_staff=is_staff,
        alerts=external.open_alerts(town, get_db().session()) if is_staff else [],
    )


@bp.post("/towns/<slug>/dao/alerts/<int:aid>/seen")
def alert_seen(slug: str, aid: int):
    """Staff mark an alert as checked: it leaves the list (the row stays for the record)."""
    town = _town(slug)
    user, login = _staff_user(town)
    if login is not None:
        return login
    assert user is not None  # noqa: S101 - _staff_user gives a user or a redirect
    external.mark_seen(get_db().session(), town, aid, user)
    return redirect(url_for(".proposals", slug=slug))


def _render_new(town: Town, form: dict[str, Any], error: AppError | None = None, status: int = 200):
    # The town's shops, suggested as recipients (a payout may go to a shop by its name).
    shops = [m for m in merchant_service().merchants_in(town) if m.status != SUSPENDED]
    return render_template(
        "dao/new.html",
        town=town,
        form=form,
        shops=shops,
        error=error.translated() if error else None,
        error_field=error.details.get("field") if error else None,
    ), status


@bp.route("/towns/<slug>/dao/new", methods=["GET", "POST"])
def new_proposal(slug: str):
    town = _town(slug)
    user, login = _staff_user(town)
    if login is not None:
        return login
    if request.method == "GET":
        form = {"chamber": CARD, "token": "yen", "idempotency_key": uuid.uuid4().hex}
        return _render_new(town, form)
    form = _posted_form()
    try:
        p = ProposalService.current().create_proposal(user, town, form, form.get("idempotency_key"))
    except AppError as exc:
        return _render_new(town, form, exc, exc.status)
    flash(gettext("Your proposal was submitted. It appears on chain in a few seconds."))
    return redirect(url_for("dao_pages.proposal", slug=slug, pid=p.id))


def _render_proposal(town: Town, p: DaoProposal, error: str | None = None, status: int = 200):
    user = current_user()
    dao = ProposalService.for_pages()  # from the projection: no call to the node
    view = dao.chain_view(p)
    results = dao.results(p, view)
    return render_template(
        "dao/proposal.html",
        town=town,
        p=p,
        title=p.title(_locale()),
        body=p.body(_locale()),
        view=view,
        results=results,
        recipients=dao.recipients(p, results["payouts"]),
        eligibility=dao.eligibility(user, p, view),
        is_staff=has_town_role(user, town.id, STAFF),
        error=error,
    ), status


@bp.get("/towns/<slug>/dao/proposals/<int:pid>")
def proposal(slug: str, pid: int):
    def render(_holes: Holes) -> str:
        town = _town(slug)  # NotFound inside: nothing cached
        return _render_proposal(town, ProposalService.for_pages().get_proposal(town, pid))[0]

    return cached_page("dao.proposal", render)


@bp.route("/towns/<slug>/dao/proposals/<int:pid>/vote", methods=["GET", "POST"])
def vote(slug: str, pid: int):
    town = _town(slug)
    dao = ProposalService.current()
    p = dao.get_proposal(town, pid)
    here = url_for(".proposal", slug=slug, pid=pid)
    value = request.values.get("support", "")

    def confirm() -> Any:
        support, e = dao.check_vote(current_user(), town, p, value)
        return _render_confirm(
            town,
            title=p.title(_locale()),
            choice=str(SUPPORT_LABELS[support]),
            field="support",
            value=SUPPORT_VALUES[support],
            weight=e.weight,
            wallet=e.wallet,
            back=here,
            action=url_for(".vote", slug=slug, pid=pid),
            ballot_url=url_for("dao_api.ballot", slug=slug, pid=pid),
            vote_url=url_for("dao_api.vote", slug=slug, pid=pid),
        )

    return _vote_step(
        confirm,
        lambda: dao.cast_vote(current_user(), town, p, request.form.get("support")),
        lambda error, status: _render_proposal(town, p, error, status),
        here,
    )


@bp.post("/towns/<slug>/dao/proposals/<int:pid>/<any(queue, execute):action>")
def staff_action(slug: str, pid: int, action: str):
    town = _town(slug)
    treasury = TreasuryService.current()
    p = treasury.get_proposal(town, pid)
    fn = treasury.queue_proposal if action == "queue" else treasury.execute_proposal
    try:
        fn(current_user(), town, p)
    except AppError as exc:
        return _render_proposal(town, p, exc.translated(), exc.status)
    flash(
        gettext("Queued. It can pay out after the waiting time.")
        if action == "queue"
        else gettext("Execution sent. The payout shows here once the chain confirms it.")
    )
    return redirect(url_for(".proposal", slug=slug, pid=pid))


# ---------------------------------------------------------------------------- polls


@bp.get("/towns/<slug>/dao/polls")
def poll_list(slug: str):
    town = _town(slug)
    user = current_user()
    polls = PollService.current()
    return render_template(
        "dao/polls.html",
        town=town,
        polls=[(poll, polls.poll_view(poll)) for poll in polls.list_polls(town)],
        is_staff=has_town_role(user, town.id, STAFF),
    )


def _render_new_poll(town: Town, form: dict[str, Any], error: str | None = None, status=200):
    return render_template(
        "dao/poll_new.html", town=town, form=form, error=error, slots=range(MAX_OPTIONS)
    ), status


@bp.route("/towns/<slug>/dao/polls/new", methods=["GET", "POST"])
def new_poll(slug: str):
    town = _town(slug)
    user, login = _staff_user(town)
    if login is not None:
        return login
    if request.method == "GET":
        form = {"chamber": CARD, "duration_blocks": "300", "idempotency_key": uuid.uuid4().hex}
        return _render_new_poll(town, form)
    form = _posted_form()
    data = {
        **form,
        "options": [
            {"ja": form.get(f"option_ja_{i}", ""), "en": form.get(f"option_en_{i}", "")}
            for i in range(MAX_OPTIONS)
        ],
    }
    try:
        poll = PollService.current().create_poll(user, town, data, form.get("idempotency_key"))
    except AppError as exc:
        return _render_new_poll(town, form, exc.translated(), exc.status)
    flash(gettext("Your poll was submitted. It appears on chain in a few seconds."))
    return redirect(url_for("dao_pages.poll", slug=slug, poll_id=poll.id))


def _render_poll(town: Town, poll: DaoPoll, error: str | None = None, status: int = 200):
    user = current_user()
    polls = PollService.current()
    view = polls.poll_view(poll)
    total = sum(view.tallies)
    rows = [
        {
            "index": i,
            "label": poll.option_label(i, _locale()),
            "weight": view.tallies[i] if i < len(view.tallies) else 0,
            "percent": round(100 * view.tallies[i] / total) if total else 0,
        }
        for i in range(len(poll.options))
    ]
    return render_template(
        "dao/poll.html",
        town=town,
        poll=poll,
        title=poll.title(_locale()),
        view=view,
        rows=rows,
        results=polls.poll_results(poll, view),
        eligibility=polls.poll_eligibility(user, poll, view),
        error=error,
    ), status


@bp.get("/towns/<slug>/dao/polls/<int:poll_id>")
def poll(slug: str, poll_id: int):
    town = _town(slug)
    return _render_poll(town, PollService.current().get_poll(town, poll_id))


@bp.route("/towns/<slug>/dao/polls/<int:poll_id>/vote", methods=["GET", "POST"])
def poll_vote(slug: str, poll_id: int):
    town = _town(slug)
    polls = PollService.current()
    poll = polls.get_poll(town, poll_id)
    here = url_for(".poll", slug=slug, poll_id=poll_id)
    value = request.values.get("option", "")

    def confirm() -> Any:
        option, e = polls.check_poll_vote(current_user(), town, poll, value)
        return _render_confirm(
            town,
            title=poll.title(_locale()),
            choice=poll.option_label(option, _locale()),
            field="option",
            value=str(option),
            weight=e.weight,
            wallet=e.wallet,
            back=here,
            action=url_for(".poll_vote", slug=slug, poll_id=poll_id),
            ballot_url=url_for("dao_api.poll_ballot", slug=slug, poll_id=poll_id),
            vote_url=url_for("dao_api.poll_vote", slug=slug, poll_id=poll_id),
        )

    return _vote_step(
        confirm,
        lambda: polls.cast_poll_vote(current_user(), town, poll, request.form.get("option")),
        lambda error, status: _render_poll(town, poll, error, status),
        here,
    )
