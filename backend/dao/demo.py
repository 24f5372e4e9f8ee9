"""Demo data for `make run`: fund the town treasury with test yen and open one proposal.

Both go through the outbox (the worker sends them); running it again changes nothing.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from backend.chain.api import AuditEntry, ContractCall, Sender, Subject, outbox_service
from backend.core.db import get_db
from backend.dao.models import DaoProposal
from backend.dao.services import create_proposal
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
    s = get_db().session
    chain = current_app.extensions["chain"]
    try:
        treasury = chain.address_of(f"towns.{town.slug}.TownTreasury")
        chain.address_of("TestYenStablecoin")
    except LookupError:
        return  # no DAO or no test stablecoin on this chain
    outbox_service().enqueue(
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
    if s.scalar(select(DaoProposal.id).where(DaoProposal.idempotency_key == key)) is None:
        create_proposal(
            None,
            town,
            {**FESTIVAL, "recipient": treasury_recipient(town)},
            key,
            check_treasury=False,
            actor="demo",
        )


def treasury_recipient(town: Town) -> str:
    """The demo payout goes to the festival committee: here the clerk role key's address."""
    return outbox_service().keys.role("clerk")
