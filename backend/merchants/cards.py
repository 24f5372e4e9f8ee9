"""Printed cards paid with a PIN the resident types on the PIN pad (issue 11 §2, ADR 0009).

1. The clerk enters the amount and the card's code: a pending card charge and a PIN-pad session
   are made; the shop's request carries no PIN (a `pin` field is refused).
2. The resident types the 6-digit PIN on the pad page, which posts it straight to the server
   and is then redirected away: the shop's page learns "paid" or "wrong PIN" only.

Wrong PINs are counted per card AND shop (one shop cannot lock the card everywhere) by ONE
conditional UPDATE `failures = failures + 1 WHERE failures < MAX_PIN_TRIES`: concurrent guesses
on SQLite or PostgreSQL get at most MAX_PIN_TRIES - 1 "wrong PIN" answers, then 423.
Town staff unlock a card (every shop's counter), with an audit row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash

from backend.accounts.models import User
from backend.accounts.roles import STAFF, require_town_role
from backend.core.errors import N_, AppError, Conflict, InvalidInput, NotFound
from backend.core.models import AuditLog
from backend.core.numbers import db_id_or_none
from backend.core.upsert import ensure_row
from backend.merchants import limits
from backend.merchants.errors import (
    CardLocked,
    CardOtherTown,
    ChargeExpired,
    ChargeNotPayable,
    CustomerCodeInvalid,
    MerchantNotActive,
    WrongPin,
)
from backend.merchants.models import (
    ACTIVE,
    BY_CARD,
    EXPIRED,
    PENDING,
    CardPinFailures,
    Charge,
    Merchant,
    PinPadSession,
    ResidentCard,
)

if TYPE_CHECKING:
    from backend.merchants.charges import MerchantCharges

MAX_PIN_TRIES = 5
PIN_RE = re.compile(r"\d{6}")
PAD_TTL = dt.timedelta(minutes=5)


class PinNotAccepted(AppError):
    status = 400
    code = "pin_not_accepted"


class PinPadNotFound(NotFound):
    code = "pin_pad_not_found"


class PinPadDone(Conflict):
    code = "pin_pad_done"


def new_pin() -> str:
    """A fresh 6-digit PIN, shown once to staff to hand over apart from the card."""
    return f"{secrets.randbelow(1_000_000):06d}"


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_card_charge(
    svc: MerchantCharges,
    staff: User,
    merchant: Merchant,
    value: int,
    card_code: str,
    key: str,
) -> tuple[Charge, str]:
    """A pending card charge and its PIN pad; returns (charge, pad token). Commits."""
    session = svc.session
    card = session.scalar(select(ResidentCard).where(ResidentCard.card_code == card_code))
    if card is None:
        raise CustomerCodeInvalid(N_("This customer code is not valid. Ask for a new one."))
    if card.town_id != merchant.town_id:
        raise CardOtherTown(N_("This card is from another town and pays only its shops."))
    _refuse_if_locked(session, card, merchant.id)
    now = svc.now()
    charge = svc.new_charge(
        merchant, value, key, BY_CARD, staff, now=now, ttl=PAD_TTL, helper=staff
    )
    session.flush()
    token = secrets.token_urlsafe(24)
    session.add(
        PinPadSession(
            token_hash=_token_hash(token),
            charge_id=charge.id,
            card_id=card.id,
            merchant_id=merchant.id,
            created_at=now,
            expires_at=now + PAD_TTL,
        )
    )
    session.commit()
    return charge, token


def card_code_of(session: Session, charge_id: int) -> str | None:
    """The code of the card whose PIN pad was opened for charge `charge_id` (None: no card's)."""
    return session.scalar(
        select(ResidentCard.card_code)
        .join(PinPadSession, PinPadSession.card_id == ResidentCard.id)
        .where(PinPadSession.charge_id == charge_id)
    )


def pad_session(session: Session, token: object) -> PinPadSession:
    if not isinstance(token, str) or not 16 <= len(token) <= 64:
        raise PinPadNotFound(N_("This PIN pad is not valid. Start the payment again."))
    pad = session.scalar(
        select(PinPadSession).where(PinPadSession.token_hash == _token_hash(token))
    )
    if pad is None:
        raise PinPadNotFound(N_("This PIN pad is not valid. Start the payment again."))
    return pad


def _refuse_if_locked(session: Session, card: ResidentCard, merchant_id: int) -> None:
    if card.locked_at is not None:  # town staff locked it (town_hall.lock_card): every shop
        raise CardLocked(N_("This card is locked by the town. Ask the town hall."))
    failures = session.scalar(
        select(CardPinFailures.failures).where(
            CardPinFailures.card_id == card.id, CardPinFailures.merchant_id == merchant_id
        )
    )
    if failures is not None and failures >= MAX_PIN_TRIES:
        raise CardLocked(N_("This card is locked after too many wrong PINs. Ask the town."))


def _ensure_counter(session: Session, card_id: int, merchant_id: int) -> None:
    values = {"card_id": card_id, "merchant_id": merchant_id, "failures": 0}
    ensure_row(session, CardPinFailures, values, ["card_id", "merchant_id"])


def _count_wrong_pin(session: Session, card_id: int, merchant_id: int, now: dt.datetime) -> int:
    """One more wrong PIN, atomically; returns the new count, or MAX_PIN_TRIES when the card
    was already locked here (nothing counted). Commits: the count survives the refusal."""
    session.rollback()  # nothing of the refused payment may be committed with the count
    _ensure_counter(session, card_id, merchant_id)
    row = session.execute(
        update(CardPinFailures)
        .where(
            CardPinFailures.card_id == card_id,
            CardPinFailures.merchant_id == merchant_id,
            CardPinFailures.failures < MAX_PIN_TRIES,
        )
        .values(failures=CardPinFailures.failures + 1)
        .returning(CardPinFailures.failures)
        .execution_options(synchronize_session=False)
    ).first()
    n = MAX_PIN_TRIES if row is None else int(row[0])
    if n >= MAX_PIN_TRIES and row is not None:  # this try locked it: say when
        session.execute(
            update(CardPinFailures)
            .where(CardPinFailures.card_id == card_id, CardPinFailures.merchant_id == merchant_id)
            .values(locked_at=now)
            .execution_options(synchronize_session=False)
        )
    session.commit()
    return n


def _pin_ok_or_raise(
    session: Session, card: ResidentCard, merchant_id: int, pin: object, now: dt.datetime
) -> None:
    _refuse_if_locked(session, card, merchant_id)
    good = (
        isinstance(pin, str)
        and PIN_RE.fullmatch(pin) is not None
        and check_password_hash(card.pin_hash, pin)
    )
    if not good:
        n = _count_wrong_pin(session, card.id, merchant_id, now)
        if n >= MAX_PIN_TRIES:
            raise CardLocked(N_("This card is locked after too many wrong PINs. Ask the town."))
        raise WrongPin(N_("The PIN is wrong (%(left)d tries left)."), left=MAX_PIN_TRIES - n)
    # Right PIN: reset this shop's count, unless a concurrent wrong try locked it meanwhile.
    _ensure_counter(session, card.id, merchant_id)
    done = session.execute(
        update(CardPinFailures)
        .where(
            CardPinFailures.card_id == card.id,
            CardPinFailures.merchant_id == merchant_id,
            CardPinFailures.failures < MAX_PIN_TRIES,
        )
        .values(failures=0)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise CardLocked(N_("This card is locked after too many wrong PINs. Ask the town."))


def submit_pin(svc: MerchantCharges, staff: User | None, token: object, pin: object) -> Charge:
    """The resident's PIN from the pad: pays the pad's charge or refuses (WrongPin, CardLocked,
    DailyLimitReached, InsufficientPoints...). Commits."""
    session = svc.session
    pad = pad_session(session, token)
    merchant = svc.require_staff(staff, pad.merchant_id)
    assert staff is not None  # noqa: S101 - checked by require_staff
    charge = session.get(Charge, pad.charge_id)
    card = session.get(ResidentCard, pad.card_id)
    assert charge is not None and card is not None  # noqa: S101 - foreign keys
    now = svc.now()
    if pad.done_at is not None:
        raise PinPadDone(N_("This payment was already made."))
    if pad.expires_at <= now or charge.status != PENDING:
        if charge.status == PENDING:
            charge.status = EXPIRED
            session.commit()
        raise ChargeExpired(N_("This payment request has expired. Ask the shop for a new one."))
    if merchant.status != ACTIVE:
        raise MerchantNotActive(N_("This shop is not registered on the points network yet."))
    _pin_ok_or_raise(session, card, merchant.id, pin, now)
    try:
        # Claim the pad: two submits of the right PIN must not both pay.
        claimed = session.execute(
            update(PinPadSession)
            .where(PinPadSession.id == pad.id, PinPadSession.done_at.is_(None))
            .values(done_at=now)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            raise PinPadDone(N_("This payment was already made."))
        if not svc.claim_pending(charge.id, PENDING):  # the shop cancelled it meanwhile
            raise ChargeNotPayable(N_("This payment request can no longer be paid."))
        value = int(charge.amount)
        limit = limits.town_limit(session, card.town_id, "card_daily_limit")
        limits.spend(session, f"card:{card.id}", limits.jst_day(now), value, limit)
        payer = session.get(User, card.user_id)
        assert payer is not None  # noqa: S101
        charge.payer_user_id = payer.id
        svc.queue_payment(
            charge,
            merchant,
            payer,
            actor=f"user:{staff.id}",
            action="points.assisted_payment",
            details={"helper_user_id": staff.id, "method": BY_CARD, "card_id": card.id},
        )
        session.commit()
    except Exception:
        session.rollback()
        raise
    return charge


def unlock_card(session: Session, actor: User | None, card_id: object) -> ResidentCard:
    """Town STAFF of the card's town clear its wrong-PIN counts at every shop and a lock
    they set (town_hall.lock_card) (AuditLog "card.unlock" with what it cleared). Commits."""
    card = session.get(ResidentCard, i) if (i := db_id_or_none(card_id)) else None
    if card is None:
        raise NotFound(N_("There is no such card."))
    actor = require_town_role(actor, card.town_id, STAFF)
    rows = session.scalars(select(CardPinFailures).where(CardPinFailures.card_id == card.id))
    cleared = {str(r.merchant_id): r.failures for r in rows if r.failures}
    session.execute(
        update(CardPinFailures)
        .where(CardPinFailures.card_id == card.id)
        .values(failures=0, locked_at=None)
        .execution_options(synchronize_session=False)
    )
    staff_lock = card.locked_at is not None
    card.locked_at = None
    session.add(
        AuditLog(
            actor=f"user:{actor.id}",
            action="card.unlock",
            subject_type="card",
            subject_id=str(card.id),
            reason="card unlocked by town staff",
            details={"town_id": card.town_id, "cleared": cleared, "staff_lock": staff_lock},
        )
    )
    session.commit()
    return card


def card_by_code(session: Session, code: object) -> ResidentCard:
    text = code.strip().upper() if isinstance(code, str) else ""
    card = session.scalar(select(ResidentCard).where(ResidentCard.card_code == text))
    if card is None:
        raise InvalidInput(N_("There is no card with this code."), field="card_code")
    return card


def card_holders(session: Session, town_id: int, codes: Iterable[str]) -> dict[str, int]:
    """The resident (user id) of each of `codes` that is a card of this town (codes as
    printed, upper case; unknown codes and other towns' cards are left out)."""
    wanted = sorted(set(codes))
    found: dict[str, int] = {}
    for i in range(0, len(wanted), 500):
        rows = session.execute(
            select(ResidentCard.card_code, ResidentCard.user_id).where(
                ResidentCard.town_id == town_id, ResidentCard.card_code.in_(wanted[i : i + 500])
            )
        )
        found.update({str(c): int(u) for c, u in rows})
    return found


def card_holder_for_use(session: Session, town_id: int, code: str) -> int | None:
    """The resident of printed card `code` of this town when the card itself is shown to be
    used (an event check-in by venue staff); None for an unknown or another town's card.
    CardLocked for a card the town locked (lost, stolen): whoever shows it is not its holder,
    and a check-in would use up the holder's one check-in of the event. Issuing points to the
    card's holder (card_holders) does not ask: those points reach the holder's account."""
    card = session.scalar(
        select(ResidentCard).where(ResidentCard.town_id == town_id, ResidentCard.card_code == code)
    )
    if card is None:
        return None
    if card.locked_at is not None:
        raise CardLocked(N_("This card is locked by the town. Ask the town hall."))
    return int(card.user_id)


def forget_wrong_pins(session: Session, card_id: int) -> None:
    """A new PIN (a card issued again or replaced): wrong tries of the old one no longer count,
    and no shop keeps the card locked for them (no commit)."""
    session.execute(
        update(CardPinFailures)
        .where(CardPinFailures.card_id == card_id)
        .values(failures=0, locked_at=None)
        .execution_options(synchronize_session=False)
    )
