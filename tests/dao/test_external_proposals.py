"""Every ProposalCreated of a town's chambers is indexed (issue 10 §1).

On 14f85a7 the indexer skipped proposals made outside the platform (backend/dao/handlers.py), so
a card holder proposing "pay the whole treasury to me" from their own wallet went unseen. Now the
proposal is listed, marked as made outside the platform, and raises an alert that town staff see
on the town's DAO page (ja + en); a treasury payout cancelled by the guardian alerts them too.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from eth_account import Account
from flask import Flask
from web3 import Web3

from backend.accounts.models import User
from backend.chain import safe
from backend.chain.deploy import DEV_GUARDIAN_KEYS
from backend.chain.governance import timelock_salt
from backend.core.db import get_db
from backend.core.errors import Forbidden
from backend.core.models import AuditLog
from backend.dao import external
from backend.dao.models import DaoAlert, DaoProposal, DaoVote
from backend.regions.models import Town
from tests.chain_admin import role_address
from tests.dao.conftest import SLUG, make_staff, new_api, settle, signup

EN = {"Accept-Language": "en"}
JA = {"Accept-Language": "ja"}
DRAIN = 1_000_000


@pytest.fixture
def app(make_app: Any, deployed: Any, any_db_url: str) -> Flask:
    """These tests run on PostgreSQL and on SQLite (the migration and the indexer's handlers)."""
    return make_app(database_url=any_db_url)


class Tourist:
    """A card holder who exported their key and calls the governor from their own wallet."""

    def __init__(self, w3: Web3, dao_chain: Any) -> None:
        self.w3, self.dao_chain = w3, dao_chain
        self.acct = Account.create()
        tx = w3.eth.send_transaction(
            {"from": w3.eth.accounts[0], "to": self.acct.address, "value": 10**18}
        )
        w3.eth.wait_for_transaction_receipt(tx)

    @property
    def address(self) -> str:
        return str(self.acct.address)

    def send(self, fn: Any) -> Any:
        tx = fn.build_transaction(
            {
                "from": self.address,
                "gas": 1_000_000,
                "nonce": self.w3.eth.get_transaction_count(self.address, "pending"),
            }
        )
        signed = self.acct.sign_transaction(tx)
        rcpt = self.w3.eth.wait_for_transaction_receipt(
            self.w3.eth.send_raw_transaction(signed.raw_transaction)
        )
        assert rcpt.status == 1
        return rcpt

    def drain(self, desc: str = "pay the whole treasury to me") -> tuple[list, list, list, str]:
        yen = self.dao_chain.yen
        data = yen.functions.transfer(self.address, DRAIN)._encode_transaction_data()
        return [yen.address], [0], [bytes.fromhex(data[2:])], desc

    def propose(self, proposal: tuple) -> int:
        gov = self.dao_chain.card_chamber
        rcpt = self.send(gov.functions.propose(*proposal))
        return int(gov.events.ProposalCreated().process_receipt(rcpt)[0].args.proposalId)


def _staff(app: Flask, town: Any) -> Any:
    api, uid, _ = signup(app)
    make_staff(app, town, uid)
    return api


def _rows(app: Flask) -> tuple[list[DaoProposal], list[DaoAlert]]:
    with app.app_context():
        s = get_db().session
        props = list(s.scalars(sa.select(DaoProposal).order_by(DaoProposal.id)))
        alerts = list(s.scalars(sa.select(DaoAlert).order_by(DaoAlert.id)))
        s.expunge_all()
        return props, alerts


def test_external_proposal_is_indexed_marked_and_alerts_staff(
    manual_outbox: Flask, town: Any, dao_chain: Any, w3: Web3
) -> None:
    app = manual_outbox
    dao_chain.fund_treasury(DRAIN)
    tourist = Tourist(w3, dao_chain)
    dao_chain.mint_cards(tourist.address, 1)
    dao_chain.mine(1)
    pid = tourist.propose(tourist.drain())
    settle(app, dao_chain)

    (p,), (alert,) = _rows(app)
    assert (p.origin, p.proposer, p.proposal_id) == ("external", tourist.address, str(pid))
    assert (p.token, p.recipient, int(p.amount)) == ("yen", tourist.address, DRAIN)
    assert p.created_block is not None and p.snapshot_block is not None
    assert p.created_by is None and p.propose_tx_id is None
    assert (alert.kind, alert.proposal_row_id, alert.actor) == (
        "external_proposal",
        p.id,
        tourist.address,
    )
    assert alert.seen_at is None

    # Listed (JSON API and page), and marked as made outside the platform.
    listed = new_api(app).get(f"/api/towns/{SLUG}/dao/proposals").get_json()["proposals"]
    assert [(x["id"], x["origin"], x["proposer"]) for x in listed] == [
        (p.id, "external", tourist.address)
    ]
    member, _, _ = signup(app)
    page = member.client.get(f"/towns/{SLUG}/dao", headers=EN).get_data(as_text=True)
    assert 'data-origin="external"' in page and "Made outside the platform" in page
    assert "dao-alerts" not in page  # members see no staff alerts
    detail = member.client.get(f"/towns/{SLUG}/dao/proposals/{p.id}", headers=EN)
    html = detail.get_data(as_text=True)
    assert "was made outside the platform, by an account the town does not run" in html
    # Its address only under "details" (issue 15 §5).
    assert tourist.address in html
    assert tourist.address not in re.sub(r"<details.*?</details>", "", html, flags=re.S)

    # Staff see the alert, in English and in Japanese.
    staff = _staff(app, town)
    en = staff.client.get(f"/towns/{SLUG}/dao", headers=EN).get_data(as_text=True)
    assert 'id="dao-alerts"' in en and 'data-kind="external_proposal"' in en
    assert "A proposal was made outside the platform." in en
    assert f"Proposer {tourist.address} asks the treasury to pay 1,000,000 test yen" in en
    ja = staff.client.get(f"/towns/{SLUG}/dao", headers=JA).get_data(as_text=True)
    assert "プラットフォームの外で提案が作られました。" in ja
    # ... and in the JSON API, which members and visitors may not read.
    alerts = staff.get(f"/api/towns/{SLUG}/dao/alerts").get_json()["alerts"]
    assert [(a["kind"], a["proposal"], a["actor"]) for a in alerts] == [
        ("external_proposal", p.id, tourist.address)
    ]
    assert alerts[0]["details"]["amount"] == str(DRAIN)
    assert member.get(f"/api/towns/{SLUG}/dao/alerts").status_code == 403
    assert new_api(app).get(f"/api/towns/{SLUG}/dao/alerts").status_code == 401

    # Votes on it are indexed like any other.
    dao_chain.mine(2)
    tourist.send(dao_chain.card_chamber.functions.castVote(pid, 1))
    settle(app, dao_chain)
    with app.app_context():
        v = get_db().session.scalars(sa.select(DaoVote)).one()
        assert (v.voter, int(v.weight), v.state) == (tourist.address, 1, "counted")


def test_staff_mark_an_alert_checked_others_cannot(
    manual_outbox: Flask, town: Any, dao_chain: Any, w3: Web3
) -> None:
    app = manual_outbox
    tourist = Tourist(w3, dao_chain)
    dao_chain.mint_cards(tourist.address, 1)
    dao_chain.mine(1)
    tourist.propose(tourist.drain("another one"))
    settle(app, dao_chain)
    _, (alert,) = _rows(app)
    url = f"/towns/{SLUG}/dao/alerts/{alert.id}/seen"

    member, member_id, _ = signup(app)
    html = member.client.get(f"/towns/{SLUG}/dao").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    csrf = token.group(1) if token else ""
    assert member.client.post(url, data={"csrf_token": csrf}).status_code == 403
    assert _rows(app)[1][0].seen_at is None
    # The service itself refuses them, whoever calls it.
    with app.app_context():
        session = get_db().session()
        town_row = session.scalar(sa.select(Town).where(Town.slug == SLUG))
        with pytest.raises(Forbidden):
            external.mark_seen(session, town_row, alert.id, session.get(User, member_id))
    assert _rows(app)[1][0].seen_at is None

    staff = _staff(app, town)
    html = staff.client.get(f"/towns/{SLUG}/dao").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    missing = f"/towns/{SLUG}/dao/alerts/{alert.id + 1000}/seen"
    assert staff.client.post(missing, data={"csrf_token": csrf}).status_code == 404
    assert staff.client.post(url, data={"csrf_token": csrf}).status_code == 302
    (seen,) = _rows(app)[1]
    assert seen.seen_at is not None and seen.seen_by is not None
    assert 'id="dao-alerts"' not in staff.client.get(f"/towns/{SLUG}/dao").get_data(as_text=True)
    with app.app_context():
        audit = (
            get_db()
            .session.scalars(sa.select(AuditLog).where(AuditLog.action == "dao.alert_seen"))
            .one()
        )
        assert audit.subject_id == str(alert.id)


def test_platform_proposals_are_marked_platform_without_alert(
    manual_outbox: Flask, town: Any, dao_chain: Any
) -> None:
    app = manual_outbox
    dao_chain.fund_treasury(10_000)
    staff = _staff(app, town)
    resp = staff.post(
        f"/api/towns/{SLUG}/dao/proposals",
        {
            "recipient": "0x" + "cd" * 20,
            "amount": 10,
            "title_en": "Lanterns",
            "idempotency_key": "platform-proposal-1",
        },
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)
    settle(app, dao_chain)
    (p,), alerts = _rows(app)
    assert (p.origin, p.proposer) == ("platform", role_address("clerk"))
    assert p.created_block is not None and alerts == []


def test_guardian_cancellation_is_indexed_and_alerts_staff(
    manual_outbox: Flask, town: Any, dao_chain: Any, w3: Web3
) -> None:
    app = manual_outbox
    dao_chain.fund_treasury(DRAIN)
    tourist = Tourist(w3, dao_chain)
    gov = dao_chain.card_chamber
    dao_chain.mint_cards(tourist.address, int(gov.functions.quorumFloor().call()))
    dao_chain.mine(1)
    proposal = tourist.drain("bought enough cards")
    targets, values, calldatas, desc = proposal
    pid = tourist.propose(proposal)
    dao_chain.mine(int(gov.functions.votingDelay().call()) + 1)
    tourist.send(gov.functions.castVote(pid, 1))
    dao_chain.mine(int(gov.functions.votingPeriod().call()) + 1)
    tourist.send(gov.functions.queue(targets, values, calldatas, Web3.keccak(text=desc)))
    settle(app, dao_chain)

    treasury = dao_chain.contract(f"towns.{SLUG}.TownTreasury", "TownTreasury")
    op = treasury.functions.hashOperationBatch(
        targets, values, calldatas, b"\x00" * 32, timelock_salt(gov.address, desc)
    ).call()
    guardian = safe.contract(w3, "SafeL2", dao_chain.deployed.address(f"towns.{SLUG}.Guardian"))
    cancel = safe.SafeTx(
        to=treasury.address,
        data=bytes.fromhex(treasury.functions.cancel(op)._encode_transaction_data()[2:]),
    )
    safe.exec_transaction(guardian, tourist.send, cancel, DEV_GUARDIAN_KEYS[:2])
    settle(app, dao_chain)

    (p,), alerts = _rows(app)
    assert [a.kind for a in alerts] == ["external_proposal", "payout_cancelled"]
    cancelled = alerts[1]
    assert cancelled.proposal_row_id == p.id
    assert cancelled.details["operation"] == "0x" + bytes(op).hex()
    staff = _staff(app, town)
    en = staff.client.get(f"/towns/{SLUG}/dao", headers=EN).get_data(as_text=True)
    assert "A queued payout was cancelled in the treasury." in en
    r = staff.get(f"/api/towns/{SLUG}/dao/proposals/{p.id}/results").get_json()
    assert r["state"] == "canceled"
    assert dao_chain.yen_balance(dao_chain.treasury) >= DRAIN


def test_a_reorg_that_drops_the_proposal_drops_its_row_and_alert(
    manual_outbox: Flask, town: Any, dao_chain: Any, w3: Web3
) -> None:
    app = manual_outbox
    tourist = Tourist(w3, dao_chain)
    dao_chain.mint_cards(tourist.address, 1)
    dao_chain.mine(1)
    snap = w3.provider.make_request("evm_snapshot", [])["result"]
    tourist.propose(tourist.drain("gone in a reorg"))
    dao_chain.mine(1)
    settle(app, dao_chain)
    props, alerts = _rows(app)
    assert [p.origin for p in props] == ["external"] and len(alerts) == 1
    # The blocks holding the proposal are replaced by others (empty, one longer).
    w3.provider.make_request("evm_revert", [snap])
    dao_chain.mine(3)
    settle(app, dao_chain)
    assert _rows(app) == ([], [])
