"""Demo data for `make run`: fund each demo town's treasury with test yen and open one proposal.

Both go through the outbox (the worker sends them); running it again changes nothing.
"""

from __future__ import annotations

from sqlalchemy import select

from backend.chain.api import AuditEntry, ContractCall, Sender, Subject, YenTokenUnavailable
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
FESTIVALS = {
    "sarabetsu": FESTIVAL,
    "toyako": {
        "chamber": "card",
        "token": "yen",
        "amount": 300_000,
        "title_ja": "湖畔の花火観覧エリアの整備: 30万テスト円",
        "title_en": "A lakeside viewing area for the fireworks: 300,000 test yen",
        "body_ja": "ベンチ、照明、車いすで入れる通路に使います。",
        "body_en": "For benches, lighting and a wheelchair-accessible path.",
    },
}


def load_demo(town: Town) -> None:
    dao = ProposalService.current()
    s = dao.session
    try:
        treasury = dao.chain.address_of(f"towns.{town.slug}.TownTreasury")
        yen = dao.chain.yen_token()
    except (LookupError, YenTokenUnavailable):
        return  # no DAO or no yen token on this chain
    if not yen.test:
        return  # a configured yen token is real money: the demo mints only test yen
    dao.outbox.enqueue(
        s,
        ContractCall(yen.contract, "mint", [treasury, yen.units(TREASURY_FUNDING)]),
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
            {**FESTIVALS.get(town.slug, FESTIVAL), "recipient": dao.outbox.keys.role("clerk")},
            key,
            check_treasury=False,
            actor="demo",
        )
