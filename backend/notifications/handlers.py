"""Indexer handlers: a notification is recorded where its fact becomes true on chain, in the
indexer's transaction, after the domains that own the fact handled the same events
(backend/composition.py registers these last). Each asks the owning domain what its person
reads (merchants/notices.py, shop/notices.py, dao/notices.py) and never reads their tables.

- RegionPoints `Transfer` whose transaction paid a charge (the indexer names the charge:
  `ev.subject`), and `PartnerPaymentAccepted` (a charge paid with a partner town's points): the
  payer is told "a charge was paid from your points" (key charge_paid:<charge id>).
- RegionPoints `Transfer` to an address an account holds (grants, issuances, claims moved to
  the account, points sent by someone else): "points arrived", one per transaction and person
  (key points_arrived:<tx hash>); not between two wallets of one person.
- FanCollection `PerkUsed`: the token's holder is told a use was marked (key by collection,
  token, perk and the uses left, so each use is one notification).
- TownPoll `PollCreated` and TownGovernor `ProposalCreated` (the platform's): everyone with an
  account who held the chamber's voting token (a card, a resident pass) in the block that opened
  it (key vote_opened:<poll|proposal>:<row>; a proposal put to both chambers is one per
  chamber, each voted on its own). The same people however late it is applied again: someone
  who got a card since is not told of a vote that was opened before.

Every revert withdraws what its apply recorded (services.withdraw); the same event applied again
after the reorg shows the same rows again (the key), so nobody is told twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.accounts.services import owners_of_addresses
from backend.chain import api as chain
from backend.chain.api import ZERO_ADDRESS, ChainEvent, EventHandler, handler
from backend.dao.notices import Opened, opened_poll, opened_proposal
from backend.merchants.notices import paid_charge
from backend.notifications.models import (
    CHARGE_PAID,
    MAX_KEY,
    POINTS_ARRIVED,
    TICKET_USED,
    VOTE_OPENED,
)
from backend.notifications.services import notify, withdraw
from backend.regions.models import Town
from backend.shop.notices import ticket_names

POINTS = "RegionPoints"


def _key(*parts: object) -> str:
    """A notification key from its parts; a hash of them when they would not fit."""
    key = ":".join(str(p) for p in parts)
    if len(key) <= MAX_KEY:
        return key
    return f"{parts[0]}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def _happened(ev: ChainEvent) -> dt.datetime | None:
    return None if ev.block_time is None else dt.datetime.fromtimestamp(ev.block_time, dt.UTC)


def _charge(ev: ChainEvent) -> int | None:
    return ev.subject.id if ev.subject is not None and ev.subject.kind == "charge" else None


# --------------------------------------------------------------------------- charges paid


def _charges_paid(session: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        charge_id = _charge(ev)
        paid = None if charge_id is None else paid_charge(session, charge_id, ev.tx_hash)
        if paid is None:
            continue
        notify(
            session,
            kind=CHARGE_PAID,
            key=_key(CHARGE_PAID, paid.charge_id),
            user_ids=[paid.payer_user_id],
            params={
                "amount": paid.amount,
                "shop_ja": paid.shop_ja,
                "shop_en": paid.shop_en,
                "town_ja": paid.town_ja,
                "town_en": paid.town_en,
            },
            happened_at=_happened(ev),
        )


def _charges_unpaid(session: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        charge_id = _charge(ev)
        if charge_id is not None:
            withdraw(session, key=_key(CHARGE_PAID, charge_id))


# --------------------------------------------------------------------------- points arrived


def _points_arrived(session: Session, events: Sequence[ChainEvent]) -> None:
    incoming = [ev for ev in events if ev.args["to"] != ZERO_ADDRESS]
    if not incoming:
        return
    owners = owners_of_addresses(
        session, {str(ev.args["to"]) for ev in incoming} | {str(ev.args["from"]) for ev in incoming}
    )
    towns = {
        t.points_address: t
        for t in session.scalars(
            select(Town).where(Town.points_address.in_({ev.contract_address for ev in incoming}))
        )
    }
    # One fact per transaction: who got how much in it (an issueBatch pays many people at once).
    arrived: dict[str, dict[int, int]] = {}
    first: dict[str, tuple[ChainEvent, Town]] = {}
    for ev in incoming:
        person = owners.get(str(ev.args["to"]))
        town = towns.get(ev.contract_address)
        if person is None or town is None or owners.get(str(ev.args["from"])) == person:
            continue
        amounts = arrived.setdefault(ev.tx_hash, {})
        amounts[person] = amounts.get(person, 0) + int(ev.args["value"])
        first.setdefault(ev.tx_hash, (ev, town))
    for tx_hash, amounts in arrived.items():
        ev, town = first[tx_hash]
        notify(
            session,
            kind=POINTS_ARRIVED,
            key=_key(POINTS_ARRIVED, tx_hash),
            user_ids=[p for p, amount in amounts.items() if amount > 0],
            params={"town_ja": town.name_ja, "town_en": town.name_en},
            per_user={p: {"amount": amount} for p, amount in amounts.items()},
            happened_at=_happened(ev),
        )


def _points_gone(session: Session, events: Sequence[ChainEvent]) -> None:
    for tx_hash in {ev.tx_hash for ev in events if ev.args["to"] != ZERO_ADDRESS}:
        withdraw(session, key=_key(POINTS_ARRIVED, tx_hash))


def apply_transfers(session: Session, events: Sequence[ChainEvent]) -> None:
    _charges_paid(session, events)
    _points_arrived(session, events)


def revert_transfers(session: Session, events: Sequence[ChainEvent]) -> None:
    _charges_unpaid(session, events)
    _points_gone(session, events)


# --------------------------------------------------------------------------- tickets used


def _ticket_key(ev: ChainEvent) -> str:
    a = ev.args
    return _key(
        TICKET_USED, ev.contract_address, int(a["tokenId"]), int(a["perkId"]), int(a["usesLeft"])
    )


def apply_perk_used(session: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        token_id, perk_id = int(ev.args["tokenId"]), int(ev.args["perkId"])
        holder = chain.owner_of(session, ev.contract_address, token_id)
        person = None if holder is None else owners_of_addresses(session, [holder]).get(holder)
        names = ticket_names(session, ev.contract_address, perk_id)
        if person is None or names is None:
            continue
        notify(
            session,
            kind=TICKET_USED,
            key=_ticket_key(ev),
            user_ids=[person],
            params={
                "collection_ja": names.collection_ja,
                "collection_en": names.collection_en,
                "perk_ja": names.perk_ja,
                "perk_en": names.perk_en,
                "town_ja": names.town_ja,
                "town_en": names.town_en,
                "token_id": token_id,
                "uses_left": int(ev.args["usesLeft"]),
            },
            happened_at=_happened(ev),
        )


def revert_perk_used(session: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        withdraw(session, key=_ticket_key(ev))


# --------------------------------------------------------------------------- votes opened


def _opened_key(opened: Opened) -> str:
    return _key(VOTE_OPENED, opened.what, opened.row_id)


def _announce(session: Session, ev: ChainEvent, opened: Opened | None) -> None:
    if opened is None:
        return
    key = _opened_key(opened)
    holders = chain.nft_holders_at(session, ev.chain_id, opened.voters_key, ev.block_number)
    members = set(owners_of_addresses(session, holders).values())
    notify(
        session,
        kind=VOTE_OPENED,
        key=key,
        user_ids=members,
        params={
            "what": opened.what,
            "row_id": opened.row_id,
            "town_slug": opened.town_slug,
            "town_ja": opened.town_ja,
            "town_en": opened.town_en,
            "title_ja": opened.title_ja,
            "title_en": opened.title_en,
        },
        happened_at=_happened(ev),
    )


def _poll(session: Session, ev: ChainEvent) -> Opened | None:
    return opened_poll(session, ev.contract_address, int(ev.args["pollId"]))


def _proposal(session: Session, ev: ChainEvent) -> Opened | None:
    return opened_proposal(session, ev.contract_address, int(ev.args["proposalId"]))


def apply_poll_created(session: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        _announce(session, ev, _poll(session, ev))


def apply_proposal_created(session: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        _announce(session, ev, _proposal(session, ev))


def _unannounce(session: Session, opened: Opened | None) -> None:
    if opened is not None:
        withdraw(session, key=_opened_key(opened))


def revert_poll_created(session: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:  # before the DAO's own revert forgets the poll's id (reverse order)
        _unannounce(session, _poll(session, ev))


def revert_proposal_created(session: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        _unannounce(session, _proposal(session, ev))


HANDLERS: tuple[EventHandler, ...] = (
    handler("Transfer", apply_transfers, revert_transfers, contract=POINTS),
    handler("PartnerPaymentAccepted", _charges_paid, _charges_unpaid, contract=POINTS),
    handler("PerkUsed", apply_perk_used, revert_perk_used, contract="FanCollection"),
    handler("PollCreated", apply_poll_created, revert_poll_created, contract="TownPoll"),
    handler(
        "ProposalCreated", apply_proposal_created, revert_proposal_created, contract="TownGovernor"
    ),
)
