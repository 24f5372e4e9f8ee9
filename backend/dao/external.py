"""Chain events the platform did not send, made visible to town staff (issue 10 §1).

- A `ProposalCreated` on a town's chamber that no platform row matches was made outside the
  platform (a card holder calling the governor from their own wallet). It is listed like any
  other proposal, marked origin "external", and raises a dao_alerts row that the town's staff see
  on the DAO page: a payout they did not write is heading for their treasury.
- A treasury `Cancelled` (the guardian Safe or a chamber cancelled a queued payout) raises an
  alert too, linked to the proposal it stopped.
- A treasury `CallExecuted` marks the queued proposal executed, also when someone executed it
  on the timelock itself (no governor `ProposalExecuted`).

Both run inside the indexing transaction and are undone when a reorg drops the event.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal

from flask import current_app
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from backend.accounts.models import User
from backend.accounts.roles import STAFF, require_town_role
from backend.chain import api as chain
from backend.chain.api import (
    ChainEvent,
    YenToken,
    YenTokenUnavailable,
    decode_transfer,
    handler,
    timelock_operation_id,
    timelock_salt,
)
from backend.core.db import utcnow
from backend.core.errors import N_, NotFound
from backend.core.models import AuditLog
from backend.dao.models import (
    CHAMBER_KEYS,
    EXTERNAL,
    EXTERNAL_PROPOSAL,
    PAYOUT_CANCELLED,
    DaoAlert,
    DaoProposal,
    DaoVote,
    without_proposer,
)
from backend.regions.models import Town

log = logging.getLogger(__name__)
TREASURY = "TownTreasury"
ZERO_ADDRESS = "0x" + "00" * 20
_CHAMBER_OF_KEY = {v: k for k, v in CHAMBER_KEYS.items()}
TITLE_LIMIT = 200


def _town_of(s: Session, ev: ChainEvent) -> tuple[Town, str] | None:
    """(town, last key part) of a contract recorded as towns.<slug>.<name>, or None."""
    parts = ev.contract_key.split(".")
    if len(parts) != 3 or parts[0] != "towns":
        return None
    town = s.scalar(select(Town).where(Town.slug == parts[1], Town.chain_id == ev.chain_id))
    return (town, parts[2]) if town is not None else None


def _alert(s: Session, town: Town, kind: str, ev: ChainEvent, **kw: object) -> None:
    s.add(
        DaoAlert(
            town_id=town.id,
            kind=kind,
            contract_address=ev.contract_address,
            tx_hash=ev.tx_hash,
            log_index=ev.log_index,
            block_number=ev.block_number,
            **kw,
        )
    )


def _watched(s: Session, chain_id: int, key: str) -> str | None:
    """The address the indexer watches under deployments key `key` (same transaction)."""
    return chain.watched_address(s, chain_id, key)


def _yen_token(s: Session, chain_id: int) -> tuple[str, int] | None:
    """(address, decimals) of the chain's yen stablecoin as the app is configured (None: it has
    none). Indexing with no app (a benchmark, a script): the test token the indexer watches."""
    try:
        yen: YenToken = current_app.extensions["chain"].yen_token()
    except YenTokenUnavailable:
        return None
    except RuntimeError:  # outside an application context
        address = _watched(s, chain_id, "TestYenStablecoin")
        return (address, 0) if address else None
    return yen.address, yen.decimals


def _payout(
    s: Session, ev: ChainEvent, town: Town, targets: list[str], calldatas: list[str]
) -> tuple[str, str, str, int]:
    """(token, token_address, recipient, amount) when the proposal is one ERC-20 transfer of
    the town's yen or points; ("other", first target, zero, 0) otherwise."""
    decoded = decode_transfer(calldatas[0]) if len(targets) == 1 and calldatas else None
    target = targets[0] if targets else ZERO_ADDRESS
    if decoded is None:
        return "other", target, ZERO_ADDRESS, 0
    kind, amount = "other", decoded[1]
    yen = _yen_token(s, ev.chain_id)
    if target.lower() == (town.points_address or "").lower():
        kind = "points"
    elif yen is not None and target.lower() == yen[0].lower():
        kind, amount = "yen", amount // 10 ** yen[1]  # in whole yen, as the platform's own
    return kind, target, decoded[0], amount


def record_external(s: Session, ev: ChainEvent) -> DaoProposal | None:
    """The row (and the alert) of a proposal created outside the platform."""
    found = _town_of(s, ev)
    if found is None or found[1] not in _CHAMBER_OF_KEY:
        return None
    town, name = found
    a = ev.args
    targets = [str(t) for t in a["targets"]]
    calldatas = [str(c) for c in a["calldatas"]]
    description = str(a["description"])
    # Shown without a proposer suffix (Tally and other clients add one); kept whole in
    # `description`, whose hash the proposal's id and its timelock operation carry.
    text = without_proposer(description)
    title = (text.strip().splitlines() or [""])[0].lstrip("# ")[:TITLE_LIMIT]
    token, token_address, recipient, amount = _payout(s, ev, town, targets, calldatas)
    treasury = _watched(s, ev.chain_id, f"towns.{town.slug}.TownTreasury") or ZERO_ADDRESS
    proposer = str(a["proposer"])
    p = DaoProposal(
        town_id=town.id,
        chamber=_CHAMBER_OF_KEY[name],
        governor_address=ev.contract_address,
        proposal_id=str(int(a["proposalId"])),
        idempotency_key=f"external:{ev.contract_address}:{int(a['proposalId'])}",
        title_ja=title,
        title_en=title,
        body_ja=text,
        body_en=text,
        description=description,
        targets=targets,
        values=[str(int(v)) for v in a["values"]],
        calldatas=calldatas,
        token=token,
        token_address=token_address,
        recipient=recipient,
        amount=Decimal(amount),
        treasury_address=treasury,
        origin=EXTERNAL,
        proposer=proposer,
    )
    s.add(p)
    s.flush()
    _alert(
        s,
        town,
        EXTERNAL_PROPOSAL,
        ev,
        proposal_row_id=p.id,
        actor=proposer,
        details={"amount": str(amount), "recipient": recipient, "token": token},
    )
    log.warning(
        "town %s: proposal %s on %s made outside the platform by %s (asks %s %s to %s)",
        town.slug,
        p.proposal_id,
        ev.contract_address,
        proposer,
        amount,
        token,
        recipient,
    )
    return p


def unrecord_external(s: Session, p: DaoProposal) -> None:
    """Undo `record_external` (a reorg dropped the ProposalCreated)."""
    s.execute(delete(DaoAlert).where(DaoAlert.proposal_row_id == p.id))
    s.execute(delete(DaoVote).where(DaoVote.proposal_row_id == p.id))
    s.delete(p)
    s.flush()


def _queued_proposal(s: Session, town: Town, ev: ChainEvent) -> DaoProposal | None:
    """The town's queued proposal whose treasury operation id the event names."""
    op = str(ev.args["id"]).lower()
    rows = s.scalars(
        select(DaoProposal).where(
            DaoProposal.town_id == town.id, DaoProposal.queued_eta.is_not(None)
        )
    )
    for p in rows:
        targets, values, calldatas = p.actions()
        salt = timelock_salt(p.governor_address, p.description)
        if timelock_operation_id(targets, values, calldatas, salt).lower() == op:
            return p
    return None


def treasury_cancelled(s: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        found = _town_of(s, ev)
        if found is None:
            continue
        town = found[0]
        p = _queued_proposal(s, town, ev)
        _alert(
            s,
            town,
            PAYOUT_CANCELLED,
            ev,
            proposal_row_id=p.id if p is not None else None,
            details={"operation": str(ev.args["id"])},
        )
        log.warning("town %s: treasury operation %s cancelled", town.slug, ev.args["id"])
    s.flush()


def treasury_uncancelled(s: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        s.execute(
            delete(DaoAlert).where(
                DaoAlert.tx_hash == ev.tx_hash, DaoAlert.log_index == ev.log_index
            )
        )


def open_alerts(town: Town, s: Session) -> list[DaoAlert]:
    """The town's alerts no staff member has marked seen, newest first."""
    return list(
        s.scalars(
            select(DaoAlert)
            .where(DaoAlert.town_id == town.id, DaoAlert.seen_at.is_(None))
            .order_by(DaoAlert.id.desc())
        )
    )


def alert_json(a: DaoAlert) -> dict[str, object]:
    return {
        "id": a.id,
        "kind": a.kind,
        "proposal": a.proposal_row_id,
        "actor": a.actor,
        "details": dict(a.details or {}),
        "contract": a.contract_address,
        "tx_hash": a.tx_hash,
        "block_number": a.block_number,
        "created_at": a.created_at.isoformat(),
    }


def mark_seen(s: Session, town: Town, alert_id: int, user: User | None) -> None:
    """Town STAFF mark the town's alert `alert_id` as checked (Forbidden for anyone else,
    NotFound for another town's)."""
    user_id = require_town_role(user, town.id, STAFF).id
    a = s.get(DaoAlert, alert_id)
    if a is None or a.town_id != town.id:
        raise NotFound(N_("This alert does not exist in this town."))
    if a.seen_at is None:
        a.seen_at, a.seen_by = utcnow(), user_id
        s.add(
            AuditLog(
                actor=f"user:{user_id}",
                action="dao.alert_seen",
                subject_type="dao_alert",
                subject_id=str(a.id),
                reason=a.kind,
                details={"tx_hash": a.tx_hash},
            )
        )
    s.commit()


def treasury_executed(s: Session, events: Sequence[ChainEvent]) -> None:
    """A queued payout executed in the treasury. Anyone may execute a ready operation
    (EXECUTOR_ROLE is open), on the timelock itself too, without the governor's
    ProposalExecuted; the governor then says "executed" (GovernorTimelockControl asks the
    timelock), and so does the projection."""
    for ev in events:
        found = _town_of(s, ev)
        p = _queued_proposal(s, found[0], ev) if found is not None else None
        if p is not None and p.executed_tx_hash is None:
            p.executed_tx_hash, p.executed_block = ev.tx_hash, ev.block_number
    s.flush()


def treasury_unexecuted(s: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        found = _town_of(s, ev)
        p = _queued_proposal(s, found[0], ev) if found is not None else None
        if p is not None and p.executed_tx_hash == ev.tx_hash:
            p.executed_tx_hash = p.executed_block = None
    s.flush()


TREASURY_HANDLERS = (
    handler("Cancelled", treasury_cancelled, treasury_uncancelled, contract=TREASURY),
    handler("CallExecuted", treasury_executed, treasury_unexecuted, contract=TREASURY),
)
