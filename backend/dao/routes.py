"""DAO JSON API under /api/towns/<slug>/dao: proposals, eligibility, gasless votes, results,
queue and execute. Every POST needs the X-CSRFToken header; errors use the common JSON shape."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from flask_babel import get_locale

from backend.accounts.roles import STAFF, current_user, require_town_role
from backend.chain.api import OutboxTx
from backend.core.db import get_db
from backend.core.errors import json_object
from backend.dao import external
from backend.dao.models import DaoPollVote, DaoVote
from backend.dao.polls import PollEligibility, PollService, poll_json
from backend.dao.proposals import Eligibility, ProposalService, proposal_json
from backend.dao.treasury import TreasuryService

bp = Blueprint("dao_api", __name__, url_prefix="/api/towns/<slug>/dao")


def _proposals() -> ProposalService:
    return ProposalService.current()


def _proposal_reads() -> ProposalService:
    """For what only reads (list, show, results, eligibility): from the projection, never the
    node (issue 16 §1), like the proposal page that polls these."""
    return ProposalService.for_pages()


def _polls() -> PollService:
    return PollService.current()


def _locale() -> str:
    return str(get_locale())


def _created(name: str, item: dict[str, Any]) -> tuple[Response, int]:
    """201 with the new proposal or poll under `name`."""
    return jsonify({name: item}), 201


def _shown(
    name: str,
    item: dict[str, Any],
    results: dict[str, Any],
    eligibility: Eligibility | PollEligibility,
) -> Response:
    """A proposal or poll with its live results and the current user's eligibility."""
    return jsonify({name: item, "results": results, "eligibility": eligibility.as_dict()})


def _vote_sent(choice: str, v: DaoVote | DaoPollVote) -> tuple[Response, int]:
    """202 with the queued vote (`choice`: support / option)."""
    return jsonify(
        {"vote": {choice: getattr(v, choice), "weight": str(int(v.weight)), "state": v.state}}
    ), 202


def _tx_sent(name: str, tx: OutboxTx) -> tuple[Response, int]:
    return jsonify({name: {"state": tx.state, "tx_hash": tx.tx_hash}}), 202


@bp.get("/proposals")
def list_proposals(slug: str):
    dao = _proposal_reads()
    town = dao.town_by_slug(slug)
    return jsonify({"proposals": [proposal_json(p, _locale()) for p in dao.list_proposals(town)]})


@bp.get("/alerts")
def list_alerts(slug: str):
    """Staff: the town's unchecked alerts (backend/dao/external.py)."""
    town = _proposals().town_by_slug(slug)
    require_town_role(current_user(), town.id, STAFF)
    rows = external.open_alerts(town, get_db().session())
    return jsonify({"alerts": [external.alert_json(a) for a in rows]})


@bp.post("/proposals")
def create_proposal(slug: str):
    dao = _proposals()
    town = dao.town_by_slug(slug)
    data = json_object()
    p = dao.create_proposal(current_user(), town, data, data.get("idempotency_key"))
    return _created("proposal", proposal_json(p, _locale()))


@bp.get("/proposals/<int:pid>")
def show_proposal(slug: str, pid: int):
    dao = _proposal_reads()
    town = dao.town_by_slug(slug)
    p = dao.get_proposal(town, pid)
    view = dao.chain_view(p)
    return _shown(
        "proposal",
        proposal_json(p, _locale()),
        dao.results(p, view),
        dao.eligibility(current_user(), p, view),
    )


@bp.get("/proposals/<int:pid>/results")
def proposal_results(slug: str, pid: int):
    dao = _proposal_reads()
    town = dao.town_by_slug(slug)
    p = dao.get_proposal(town, pid)
    return jsonify(dao.results(p))


@bp.get("/proposals/<int:pid>/eligibility")
def proposal_eligibility(slug: str, pid: int):
    dao = _proposal_reads()
    town = dao.town_by_slug(slug)
    p = dao.get_proposal(town, pid)
    return jsonify(dao.eligibility(current_user(), p).as_dict())


@bp.post("/proposals/<int:pid>/votes")
def vote(slug: str, pid: int):
    dao = _proposals()
    town = dao.town_by_slug(slug)
    p = dao.get_proposal(town, pid)
    data = json_object()
    v = dao.cast_vote(current_user(), town, p, data.get("support"), data.get("signature"))
    return _vote_sent("support", v)


@bp.post("/proposals/<int:pid>/ballot")
def ballot(slug: str, pid: int):
    dao = _proposals()
    town = dao.town_by_slug(slug)
    p = dao.get_proposal(town, pid)
    return jsonify(dao.prepare_ballot(current_user(), town, p, json_object().get("support")))


@bp.post("/proposals/<int:pid>/queue")
def queue(slug: str, pid: int):
    dao = TreasuryService.current()
    town = dao.town_by_slug(slug)
    p = dao.get_proposal(town, pid)
    return _tx_sent("queue_tx", dao.queue_proposal(current_user(), town, p))


@bp.post("/proposals/<int:pid>/execute")
def execute(slug: str, pid: int):
    dao = TreasuryService.current()
    town = dao.town_by_slug(slug)
    p = dao.get_proposal(town, pid)
    return _tx_sent("execute_tx", dao.execute_proposal(current_user(), town, p))


# ---------------------------------------------------------------------------- polls


@bp.get("/polls")
def list_polls(slug: str):
    polls = _polls()
    town = polls.town_by_slug(slug)
    return jsonify({"polls": [poll_json(p, _locale()) for p in polls.list_polls(town)]})


@bp.post("/polls")
def create_poll(slug: str):
    polls = _polls()
    town = polls.town_by_slug(slug)
    data = json_object()
    poll = polls.create_poll(current_user(), town, data, data.get("idempotency_key"))
    return _created("poll", poll_json(poll, _locale()))


@bp.get("/polls/<int:poll_id>")
def show_poll(slug: str, poll_id: int):
    polls = _polls()
    town = polls.town_by_slug(slug)
    poll = polls.get_poll(town, poll_id)
    view = polls.poll_view(poll)
    return _shown(
        "poll",
        poll_json(poll, _locale()),
        polls.poll_results(poll, view),
        polls.poll_eligibility(current_user(), poll, view),
    )


@bp.get("/polls/<int:poll_id>/results")
def poll_results(slug: str, poll_id: int):
    polls = _polls()
    town = polls.town_by_slug(slug)
    return jsonify(polls.poll_results(polls.get_poll(town, poll_id)))


@bp.get("/polls/<int:poll_id>/eligibility")
def poll_eligibility(slug: str, poll_id: int):
    polls = _polls()
    town = polls.town_by_slug(slug)
    poll = polls.get_poll(town, poll_id)
    return jsonify(polls.poll_eligibility(current_user(), poll).as_dict())


@bp.post("/polls/<int:poll_id>/ballot")
def poll_ballot(slug: str, poll_id: int):
    polls = _polls()
    town = polls.town_by_slug(slug)
    poll = polls.get_poll(town, poll_id)
    return jsonify(
        polls.prepare_poll_ballot(current_user(), town, poll, json_object().get("option"))
    )


@bp.post("/polls/<int:poll_id>/votes")
def poll_vote(slug: str, poll_id: int):
    polls = _polls()
    town = polls.town_by_slug(slug)
    poll = polls.get_poll(town, poll_id)
    data = json_object()
    v = polls.cast_poll_vote(current_user(), town, poll, data.get("option"), data.get("signature"))
    return _vote_sent("option", v)
