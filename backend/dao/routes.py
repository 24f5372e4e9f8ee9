"""DAO JSON API under /api/towns/<slug>/dao: proposals, eligibility, gasless votes, results,
queue and execute. Every POST needs the X-CSRFToken header; errors use the common JSON shape."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from flask_babel import get_locale

from backend.accounts.roles import current_user
from backend.core.errors import N_
from backend.dao import services as dao
from backend.dao.errors import InvalidInput

bp = Blueprint("dao_api", __name__, url_prefix="/api/towns/<slug>/dao")


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidInput(N_("Send a JSON object."))
    return data


def _locale() -> str:
    return str(get_locale())


@bp.get("/proposals")
def list_proposals(slug: str):
    town = dao.town_by_slug(slug)
    return jsonify(
        {"proposals": [dao.proposal_json(p, _locale()) for p in dao.list_proposals(town)]}
    )


@bp.post("/proposals")
def create_proposal(slug: str):
    town = dao.town_by_slug(slug)
    data = _body()
    p = dao.create_proposal(current_user(), town, data, data.get("idempotency_key"))
    return jsonify({"proposal": dao.proposal_json(p, _locale())}), 201


@bp.get("/proposals/<int:pid>")
def show_proposal(slug: str, pid: int):
    town = dao.town_by_slug(slug)
    p = dao.get_proposal(town, pid)
    view = dao.chain_view(p)
    return jsonify(
        {
            "proposal": dao.proposal_json(p, _locale()),
            "results": dao.results(p, view),
            "eligibility": dao.eligibility(current_user(), p, view).as_dict(),
        }
    )


@bp.get("/proposals/<int:pid>/results")
def proposal_results(slug: str, pid: int):
    town = dao.town_by_slug(slug)
    p = dao.get_proposal(town, pid)
    return jsonify(dao.results(p))


@bp.get("/proposals/<int:pid>/eligibility")
def proposal_eligibility(slug: str, pid: int):
    town = dao.town_by_slug(slug)
    p = dao.get_proposal(town, pid)
    return jsonify(dao.eligibility(current_user(), p).as_dict())


@bp.post("/proposals/<int:pid>/votes")
def vote(slug: str, pid: int):
    town = dao.town_by_slug(slug)
    p = dao.get_proposal(town, pid)
    data = _body()
    v = dao.cast_vote(current_user(), town, p, data.get("support"))
    return jsonify(
        {"vote": {"support": v.support, "weight": str(int(v.weight)), "state": v.state}}
    ), 202


@bp.post("/proposals/<int:pid>/queue")
def queue(slug: str, pid: int):
    town = dao.town_by_slug(slug)
    p = dao.get_proposal(town, pid)
    tx = dao.queue_proposal(current_user(), town, p)
    return jsonify({"queue_tx": {"state": tx.state, "tx_hash": tx.tx_hash}}), 202


@bp.post("/proposals/<int:pid>/execute")
def execute(slug: str, pid: int):
    town = dao.town_by_slug(slug)
    p = dao.get_proposal(town, pid)
    tx = dao.execute_proposal(current_user(), town, p)
    return jsonify({"execute_tx": {"state": tx.state, "tx_hash": tx.tx_hash}}), 202
