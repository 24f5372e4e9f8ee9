"""Demo data for `make run`: fund the town treasury with test yen and open one proposal.

Both go through the outbox (the worker sends them); running it again changes nothing.
"""

from __future__ import annotations

from sqlalchemy import select

from backend.chain.api import AuditEntry, ContractCall, Sender, Subject
from backend.dao.models import DaoProposal
from backend.dao.proposals import ProposalService
from backend.regions.models import Town

TREASURY_FUNDING = 1_000_000  # test yen
FESTIVAL = {
    "chamber": "card",
    "token": "yen",
    "amount": 300_000,
    "title_ja": "来年の収穫祭の予算: 30万テスト円",
    "title_en": "Next year's harvest festival budget: 300,000 test yen",
    "body_ja": "ステージ、音響、地元農家の出店テントに使います。",
    "body_en": "For the stage, the sound system and tents for local farmers' stalls.",
}


def load_demo(town: Town) -> None:
    dao = ProposalService.current()
    s = dao.session
    try:
        treasury = dao.chain.address_of(f"towns.{town.slug}.TownTreasury")
        dao.chain.address_of("TestYenStablecoin")
    except LookupError:
        return  # no DAO or no test stablecoin on this chain
    dao.outbox.enqueue(
        s,
        ContractCall("TestYenStablecoin", "mint", [treasury, TREASURY_FUNDING]),
        sender=Sender.role("faucet", town_id=town.id),
        key=f"dao.demo.fund:{town.slug}",
        subject=Subject("town", town.id),
        audit=AuditEntry(
            actor="demo",
            action="dao.treasury_fund",
            subject_type="town",
            subject_id=town.slug,
            amount=TREASURY_FUNDING,
            reason="demo: test yen for the DAO treasury",
        ),
    )
    s.commit()
    key = f"demo-festival-{town.slug}"
    # The payout goes to the festival committee: here the clerk role key's address.
    if s.scalar(select(DaoProposal.id).where(DaoProposal.idempotency_key == key)) is None:
        dao.create_proposal(
            None,
            town,
            {**FESTIVAL, "recipient": dao.outbox.keys.role("clerk")},
            key,
            check_treasury=False,
            actor="demo",
        )
