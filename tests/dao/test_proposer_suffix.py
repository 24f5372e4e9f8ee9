"""Platform proposals end with OpenZeppelin's "#proposer=<address>" description suffix, naming
the key that sends `propose` (the clerk role key, each chamber's platformProposer): the Governor
then refuses the same actions and text from anyone else (GovernorRestrictedProposer), so nobody
can take a proposal's id by proposing it first. On 761be1f the description ended with the request
key only, and any card holder watching the pool could propose it first: the platform's
`propose` then reverted and the proposal was the front-runner's.

On chain the description is whole (its hash is in the proposal id and the timelock's salt);
pages show the text without the suffix, also for proposals made elsewhere (Tally adds it)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from eth_utils import keccak
from flask import Flask
from web3 import Web3
from web3.exceptions import ContractCustomError

from backend.chain.outbox.errors import decode_revert
from backend.core.db import get_db
from backend.dao.models import DaoAlert, DaoProposal
from tests.chain_admin import role_address
from tests.dao.conftest import SLUG, make_staff, settle, signup
from tests.dao.test_dao_api import BASE, proposal_body
from tests.dao.test_external_proposals import Tourist

EN = {"Accept-Language": "en"}
JA = {"Accept-Language": "ja"}


@pytest.fixture
def staff(manual_outbox: Flask, town: Any) -> Any:
    api, uid, _addr = signup(manual_outbox)
    make_staff(manual_outbox, town, uid)
    return api


def _proposals(app: Flask) -> list[DaoProposal]:
    with app.app_context():
        s = get_db().session
        rows = list(s.scalars(sa.select(DaoProposal).order_by(DaoProposal.id)))
        s.expunge_all()
        return rows


def _alerts(app: Flask) -> int:
    with app.app_context():
        return int(get_db().session.scalar(sa.select(sa.func.count()).select_from(DaoAlert)))


def _actions(p: DaoProposal) -> tuple[list[str], list[int], list[bytes], str]:
    targets, values, calldatas = p.actions()
    return targets, values, [bytes.fromhex(c.removeprefix("0x")) for c in calldatas], p.description


def _outside_details(html: str) -> str:
    return re.sub(r"<details.*?</details>", "", html, flags=re.S)


def test_platform_proposals_carry_the_proposer_suffix_on_chain_and_pages_hide_it(
    manual_outbox: Flask, town: Any, staff: Any, dao_chain: Any, w3: Web3
) -> None:
    app = manual_outbox
    dao_chain.fund_treasury(100_000)
    clerk = role_address("clerk")
    resp = staff.post(f"{BASE}/proposals", proposal_body(chamber="both", body_ja="舞台と音響"))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    settle(app, dao_chain)

    card, resident = _proposals(app)
    for p in (card, resident):
        # The whole text, suffix last: the Governor reads its last 52 characters.
        assert p.description.endswith(f"\n\n#proposer={clerk}")
        assert Web3.is_checksum_address(p.description[-42:])
        assert (p.origin, p.proposer) == ("platform", clerk)  # indexed: ids computed here match
        assert p.created_block is not None
    gov = dao_chain.card_chamber
    (event,) = gov.events.ProposalCreated().get_logs(from_block=0)
    assert (event.args.proposalId, event.args.proposer) == (card.proposal_id_int, clerk)
    assert event.args.description == card.description
    targets, values, calldatas, description = _actions(card)
    assert (
        gov.functions.hashProposal(targets, values, calldatas, keccak(text=description)).call()
        == card.proposal_id_int
    )
    assert gov.functions.proposalProposer(card.proposal_id_int).call() == clerk
    assert _alerts(app) == 0

    member, _, _ = signup(app)
    for p in (card, resident):
        for lang in (EN, JA):
            html = member.client.get(f"/towns/{SLUG}/dao/proposals/{p.id}", headers=lang)
            assert html.status_code == 200
            text = html.get_data(as_text=True)
            assert "#proposer" not in text and clerk not in text
    listing = member.client.get(f"/towns/{SLUG}/dao", headers=EN).get_data(as_text=True)
    assert "Harvest festival budget" in listing and "#proposer" not in listing

    # A proposal made elsewhere whose client added a suffix (naming its own sender, as Tally
    # does): on chain and in `description` whole, on its page without the suffix.
    tourist = Tourist(w3, dao_chain)
    dao_chain.mint_cards(tourist.address, 1)
    dao_chain.mine(1)
    text = "# Lanterns for the lake\n\nPaid by the treasury."
    proposal = tourist.drain(f"{text}\n\n#proposer={tourist.address.lower()}")
    tourist.propose(proposal)
    settle(app, dao_chain)
    ext = _proposals(app)[-1]
    assert (ext.origin, ext.description) == ("external", proposal[3])
    assert (ext.title("en"), ext.body("ja")) == ("Lanterns for the lake", text)
    html = member.client.get(f"/towns/{SLUG}/dao/proposals/{ext.id}", headers=EN)
    page = html.get_data(as_text=True)
    assert "Paid by the treasury." in page and "#proposer" not in page
    # Its proposer's address only under "details" (issue 15 §5), not from the suffix.
    assert tourist.address.lower() not in _outside_details(page).lower()


def test_front_running_a_platform_proposal_from_another_account_is_refused(
    manual_outbox: Flask, town: Any, staff: Any, dao_chain: Any, w3: Web3
) -> None:
    """The platform's `propose` waits in the outbox (as it would in the pool); a card holder who
    may propose copies its actions and text and sends them first: the Governor refuses."""
    app = manual_outbox
    dao_chain.fund_treasury(100_000)
    resp = staff.post(f"{BASE}/proposals", proposal_body())
    assert resp.status_code == 201, resp.get_data(as_text=True)
    (p,) = _proposals(app)
    assert p.created_block is None  # queued, not sent yet
    copy = _actions(p)
    tourist = Tourist(w3, dao_chain)
    dao_chain.mint_cards(tourist.address, 1)  # enough votes to propose
    dao_chain.mine(1)
    gov = dao_chain.card_chamber

    with pytest.raises(ContractCustomError) as refused:
        gov.functions.propose(*copy).call({"from": tourist.address})
    expected = f"GovernorRestrictedProposer({tourist.address.lower()})"
    assert decode_revert(refused.value.data) == expected
    # ... also as a transaction in a block.
    tx = gov.functions.propose(*copy).build_transaction(
        {
            "from": tourist.address,
            "gas": 1_000_000,
            "nonce": w3.eth.get_transaction_count(tourist.address, "pending"),
        }
    )
    sent = w3.eth.send_raw_transaction(tourist.acct.sign_transaction(tx).raw_transaction)
    assert w3.eth.wait_for_transaction_receipt(sent).status == 0
    # Only the suffix stops them: without it the same actions were theirs to propose.
    unguarded = (*copy[:3], p.description.rsplit("\n\n#proposer=", 1)[0])
    taken = gov.functions.propose(*unguarded).call({"from": tourist.address})
    assert taken == gov.functions.hashProposal(*unguarded[:3], keccak(text=unguarded[3])).call()

    settle(app, dao_chain)
    (p,) = _proposals(app)
    assert (p.origin, p.proposer) == ("platform", role_address("clerk"))
    assert p.created_block is not None and _alerts(app) == 0
    assert gov.functions.proposalProposer(p.proposal_id_int).call() == role_address("clerk")
