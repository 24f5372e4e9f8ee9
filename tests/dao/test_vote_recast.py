"""A ballot whose relayed transaction failed is no vote: its voter may vote again while the
proposal (or poll) is open, with a new ballot (the governor nonce the chain expects) and a new
outbox row; a vote the chain holds can never be cast again (409 "already voted", on the API and
on the page). On PostgreSQL and SQLite.

On 761be1f the failed ballot's row (UNIQUE per proposal and voter) made eligibility say
"already voted" for good, and its outbox key would have answered any new ballot with the failed
row. Ten re-casts sent at once after a failure make one ballot.

The new ballot is relayed with the forwarder nonce the chain expects although the failed one's
was handed out and never used (the outbox reads it again: docs/adr/0005, known limits), and is
followed on chain until it counts."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from backend.chain.outbox.states import transition
from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.dao.errors import AlreadyVoted
from backend.dao.models import DaoPollVote, DaoProposal, DaoVote
from backend.dao.proposals import ProposalService
from tests.accounts.conftest import assert_error
from tests.dao.conftest import SLUG, make_staff, settle, signup
from tests.dao.test_dao_api import open_proposal
from tests.dao.test_wallet_and_polls_api import open_poll

BASE = f"/api/towns/{SLUG}/dao"
EN = {"Accept-Language": "en"}
JA = {"Accept-Language": "ja"}
AGAIN = "could not be recorded on the blockchain, so it was not counted. You can vote again."


@pytest.fixture
def app(make_app: Any, deployed: Any, any_db_url: str) -> Flask:
    """The DAO fixtures' app, on PostgreSQL and on SQLite in turn."""
    return make_app(database_url=any_db_url)


@pytest.fixture
def staff(manual_outbox: Flask, town: Any) -> Any:
    api, uid, _addr = signup(manual_outbox)
    make_staff(manual_outbox, town, uid)
    return api


def _ballots(app: Flask, model: Any = DaoVote) -> list[tuple[str, str]]:
    """(vote state, its outbox row's state) of every vote row of `model`."""
    with app.app_context():
        s = get_db().session
        out = [
            (v.state, s.get(OutboxTx, v.outbox_tx_id).state)
            for v in s.scalars(sa.select(model).order_by(model.id))
        ]
        s.commit()
        return out


def _vote_keys(app: Flask) -> list[str]:
    """The idempotency keys of every castVoteBySig queued, oldest first."""
    with app.app_context():
        s = get_db().session
        out = list(
            s.scalars(
                sa.select(OutboxTx.idempotency_key)
                .where(OutboxTx.function == "castVoteBySig")
                .order_by(OutboxTx.id)
            )
        )
        s.commit()
        return out


def _written(app: Flask, model: Any = DaoVote) -> tuple[int, int, int]:
    """(vote rows of `model`, castVoteBySig rows, vote audit rows)."""
    with app.app_context():
        s = get_db().session
        count = sa.select(sa.func.count())
        out = (
            s.scalar(count.select_from(model)),
            s.scalar(count.select_from(OutboxTx).where(OutboxTx.function == "castVoteBySig")),
            s.scalar(
                count.select_from(AuditLog).where(
                    AuditLog.action.in_(("dao.vote", "dao.poll_vote"))
                )
            ),
        )
        s.commit()
        return out


def _has_voted(app: Flask, dao_chain: Any, pid: int, voter: str) -> bool:
    with app.app_context():
        s = get_db().session
        proposal_id = s.get(DaoProposal, pid).proposal_id_int
        s.commit()
    return bool(dao_chain.card_chamber.functions.hasVoted(proposal_id, voter).call())


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, html[:300]
    return m.group(1)


def _fail_next_ballot(monkeypatch: Any) -> None:
    """The next ballot is signed with a governor nonce the chain does not expect, so its
    relayed castVoteBySig reverts on chain (GovernorInvalidSignature), as a ballot whose
    nonce another ballot took does; later ballots are signed as usual."""
    real = ProposalService._next_nonce
    calls = {"n": 0}

    def wrong_once(self: ProposalService, gov: str, voter: str) -> int:
        calls["n"] += 1
        return real(self, gov, voter) + (7 if calls["n"] == 1 else 0)

    monkeypatch.setattr(ProposalService, "_next_nonce", wrong_once)


def _failed_vote(app: Flask, staff: Any, dao_chain: Any, monkeypatch: Any) -> tuple[Any, int, str]:
    """A member with 2 cards whose first vote ("for") reverted on chain: (api, proposal,
    address)."""
    dao_chain.fund_treasury(100_000)
    member, _uid, addr = signup(app)
    dao_chain.mint_cards(addr, 2)
    pid = open_proposal(app, staff, dao_chain)
    _fail_next_ballot(monkeypatch)
    assert member.post(f"{BASE}/proposals/{pid}/votes", {"support": "for"}).status_code == 202
    settle(app, dao_chain)
    assert _ballots(app) == [("submitted", "reverted")]  # the beat has not marked it yet
    assert not _has_voted(app, dao_chain, pid, addr)
    return member, pid, addr


def test_a_vote_whose_transaction_failed_can_be_cast_again(
    manual_outbox, town, staff, dao_chain, monkeypatch
):
    app = manual_outbox
    member, pid, addr = _failed_vote(app, staff, dao_chain, monkeypatch)
    url = f"/towns/{SLUG}/dao/proposals/{pid}"

    # The failed ballot is no vote from the moment the outbox says so: the member may vote.
    e = member.client.get(f"{BASE}/proposals/{pid}/eligibility", headers=EN).get_json()
    assert (e["can_vote"], e["reason"], e["vote_state"]) == (True, "eligible", "failed")
    assert e["support"] is None and e["voted_at"]
    page = _text(member.client.get(url, headers=EN).get_data(as_text=True))
    assert AGAIN in page
    assert "You already voted" not in page and "Your vote: " not in page
    html = member.client.get(url, headers=JA).get_data(as_text=True)
    assert "もう一度投票できます" in html
    assert 'data-testid="vote-lost" data-can-vote="yes"' in html
    assert f'<form method="get" action="{url}/vote"' in html

    # The beat marks it "failed": the same.
    with app.app_context():
        from backend.dao.tasks import mark_lost_votes

        assert mark_lost_votes() == 1
    assert _ballots(app) == [("failed", "reverted")]
    e = member.get(f"{BASE}/proposals/{pid}/eligibility").get_json()
    assert (e["can_vote"], e["reason"]) == (True, "eligible")

    # Bad input is refused and changes nothing.
    before = _written(app)
    for bad in ("maybe", 3, None):
        assert_error(
            member.post(f"{BASE}/proposals/{pid}/votes", {"support": bad}), 400, "invalid_support"
        )
    assert_error(member.post(f"{BASE}/proposals/{pid}/votes", ["for"]), 400, "invalid_input")
    assert _written(app) == before == (1, 1, 1)
    assert _ballots(app) == [("failed", "reverted")]

    # Cast again through the page's confirmed form: the same row, a new ballot signed with the
    # nonce the governor expects, a new outbox row under a new key.
    form = {"csrf_token": _csrf(html), "support": "against", "confirmed": "yes"}
    resp = member.client.post(f"{url}/vote", data=form)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    assert _written(app) == (1, 2, 2)
    first_key, second_key = _vote_keys(app)
    assert first_key == f"dao.vote:{pid}:{addr}"
    assert second_key.startswith(f"{first_key}:after:")
    with app.app_context():
        vote = get_db().session.scalar(sa.select(DaoVote))
        nonce, support = vote.nonce, vote.support
    assert (support, nonce) == (0, dao_chain.card_chamber.functions.nonces(addr).call())
    settle(app, dao_chain)
    assert _ballots(app) == [("counted", "confirmed")]
    assert _has_voted(app, dao_chain, pid, addr)
    r = member.get(f"{BASE}/proposals/{pid}/results").get_json()
    assert r["votes"] == {"for": 0, "against": 2, "abstain": 0}
    assert (r["voters_counted"], r["votes_processing"]) == (1, 0)

    # Counted: never again, on the API and on the page.
    written = _written(app)
    err = assert_error(member.post(f"{BASE}/proposals/{pid}/votes", {"support": "for"}), 409)
    assert err["code"] == "already_voted"
    e = member.client.get(f"{BASE}/proposals/{pid}/eligibility", headers=EN).get_json()
    assert (e["can_vote"], e["reason"], e["support"]) == (False, "already_voted", 0)
    page = _text(member.client.get(url, headers=EN).get_data(as_text=True))
    assert "You already voted on this proposal." in page and "You can vote again" not in page
    resp = member.client.post(f"{url}/vote", data={**form, "support": "for"}, headers=EN)
    assert resp.status_code == 409
    assert "You already voted on this proposal." in resp.get_data(as_text=True)
    assert _written(app) == written

    # Were the row to say "failed" (a projection gone stale), the chain still holds the vote:
    # what casts a ballot asks the governor, and refuses.
    with app.app_context():
        s = get_db().session
        s.execute(sa.update(DaoVote).values(state="failed"))
        s.commit()
    err = assert_error(member.post(f"{BASE}/proposals/{pid}/votes", {"support": "for"}), 409)
    assert err["code"] == "already_voted"
    resp = member.client.post(f"{url}/vote", data={**form, "support": "for"}, headers=EN)
    assert resp.status_code == 409
    assert _written(app) == written


def test_ten_recasts_at_once_after_a_failure_make_one_ballot(
    manual_outbox, town, staff, dao_chain, monkeypatch
):
    from backend.accounts.models import User
    from backend.regions.models import Town
    from tests.concurrency import n_at_once

    app = manual_outbox
    member, pid, addr = _failed_vote(app, staff, dao_chain, monkeypatch)
    with app.app_context():
        uid = get_db().session.scalar(sa.select(DaoVote.user_id))

    def recast(i: int) -> int:
        s = get_db().session
        svc = ProposalService.current()
        t = s.get(Town, town.id)
        support = ("against", "for", "abstain")[i % 3]
        return svc.cast_vote(s.get(User, uid), t, svc.get_proposal(t, pid), support).id

    answers = n_at_once(app, 10, recast, request=True)
    won = [a for a in answers if isinstance(a, int)]
    assert len(won) == 1, answers
    assert all(isinstance(a, AlreadyVoted) for a in answers if not isinstance(a, int)), answers
    assert _written(app) == (1, 2, 2)
    settle(app, dao_chain)
    assert _ballots(app) == [("counted", "confirmed")]
    assert _has_voted(app, dao_chain, pid, addr)
    e = member.get(f"{BASE}/proposals/{pid}/eligibility").get_json()
    assert e["reason"] == "already_voted"


def test_a_poll_vote_the_outbox_marked_failed_can_be_cast_again(
    manual_outbox, town, staff, dao_chain
):
    app = manual_outbox
    member, _uid, addr = signup(app)
    dao_chain.mint_cards(addr, 1)
    dao_chain.mine(1)
    poll_id = open_poll(app, staff, dao_chain)
    url = f"{BASE}/polls/{poll_id}"
    assert member.post(f"{url}/votes", {"option": 2}).status_code == 202
    with app.app_context():  # the outbox gives up before sending it (e.g. its deadline passed)
        s = get_db().session
        tx = s.get(OutboxTx, s.scalar(sa.select(DaoPollVote.outbox_tx_id)))
        transition(tx, "cancelled", "deadline passed")
        s.commit()
    e = member.client.get(f"{url}/eligibility", headers=EN).get_json()
    assert (e["can_vote"], e["reason"], e["vote_state"]) == (True, "eligible", "failed")
    page = _text(member.client.get(f"/towns/{SLUG}/dao/polls/{poll_id}", headers=EN).get_data(True))
    assert AGAIN in page

    assert_error(member.post(f"{url}/votes", {"option": 9}), 400, "invalid_option")
    assert _written(app, DaoPollVote) == (1, 1, 1)
    assert member.post(f"{url}/votes", {"option": 1}).status_code == 202
    assert _written(app, DaoPollVote) == (1, 2, 2)
    settle(app, dao_chain)
    assert _ballots(app, DaoPollVote) == [("counted", "confirmed")]
    r = member.get(f"{url}/results").get_json()
    assert r["tallies"][1] == 1 and sum(r["tallies"]) == 1
    err = assert_error(member.post(f"{url}/votes", {"option": 0}), 409)
    assert err["code"] == "already_voted"
    assert _written(app, DaoPollVote) == (1, 2, 2)
