"""The expiry job (beat task `points.expire_lots`, every 15 minutes).

Expired points are already out of every balance on chain (RegionPoints.balanceOf) and are burned
by their holder's next debit, so this job never gates spending: it burns the expired lots of
holders who do not move, with the `expirer` role key through the outbox, so that totalSupply, the
indexer's balances and the town's liability figures follow. When expired lots stay unburned for
longer than LATE_AFTER (the worker or the expirer key is down) it raises the operator alert
`points_expiry_late`, resolved once they are burned (docs/operations.md, "How expiry works").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.chain import api as chain
from backend.chain.api import AuditEntry, ContractCall, OutboxService, Sender
from backend.points.chain_lots import chain_now
from backend.points.lots import EVENTS, LotBook, day_start, jst_day
from backend.regions.models import Town

log = logging.getLogger(__name__)

ALERT_KIND = "points_expiry_late"
LATE_AFTER = dt.timedelta(hours=6)
CHUNK = 200  # holders per expire() transaction (~13,500 gas each)


@dataclass
class ExpiryReport:
    queued: dict[str, list[str]] = field(default_factory=dict)  # contract -> holders
    late: list[str] = field(default_factory=list)  # contracts with an open alert


def contract_book(session: Session, chain_id: int, contract: str) -> LotBook:
    """Every holder's lots of one RegionPoints contract, from its indexed events."""
    rows = chain.indexed_events(session, chain_id, contract, EVENTS)
    return LotBook().feed((e.event_name, e.args, e.tx_hash) for e in rows)


def expire_due(
    session: Session,
    outbox: OutboxService,
    *,
    now: Callable[[], int] = chain_now,
) -> ExpiryReport:
    """Queue `expire(holders)` for every holder with expired lots, in every town; raise or
    resolve the lateness alert. Commits."""
    report = ExpiryReport()
    ts = now()
    today = jst_day(ts)
    seen: set[tuple[int, str]] = set()
    for town in session.scalars(select(Town).where(Town.points_address.is_not(None))):
        contract = str(town.points_address)
        if (town.chain_id, contract) in seen:
            continue
        seen.add((town.chain_id, contract))
        book = contract_book(session, town.chain_id, contract)
        holders = book.holders_with_expired(today)
        subject = f"{town.chain_id}:{contract}"
        if not holders:
            _resolve(session, subject)
            continue
        oldest = min(book.lots_of(h)[0][0] for h in holders)
        if ts - day_start(oldest) > LATE_AFTER.total_seconds():
            _raise(session, subject, len(holders), oldest)
            report.late.append(contract)
        for i in range(0, len(holders), CHUNK):
            chunk = holders[i : i + CHUNK]
            digest = hashlib.sha256(",".join(chunk).encode()).hexdigest()[:16]
            amount = sum(book.expired(h, today) for h in chunk)
            outbox.enqueue(
                session,
                ContractCall(contract, "expire", (chunk,), artifact_name="RegionPoints"),
                sender=Sender.role("expirer", town_id=town.id),
                key=f"points.expire:{town.chain_id}:{contract}:{today}:{digest}",
                audit=AuditEntry(
                    actor="system:expiry",
                    action="points.expire",
                    subject_type="points_contract",
                    subject_id=contract,
                    amount=amount,
                    reason="expired points lots",
                    details={"holders": len(chunk), "jst_day": today},
                ),
            )
            report.queued.setdefault(contract, []).extend(chunk)
    session.commit()
    return report


def _raise(session: Session, subject: str, holders: int, oldest_day: int) -> None:
    if not chain.alert_open(session, ALERT_KIND, subject):
        message = (
            f"{holders} holder(s) keep expired points lots since JST day {oldest_day} "
            f"(more than {LATE_AFTER}); spending is not affected, totalSupply is overstated"
        )
        log.error("ALERT %s %s: %s", ALERT_KIND, subject, message)
        chain.raise_alert(session, ALERT_KIND, subject, message)


def _resolve(session: Session, subject: str) -> None:
    if chain.resolve_alert(session, ALERT_KIND, subject):
        log.warning("resolved %s %s", ALERT_KIND, subject)
