"""Issuing a printed card: a card code and a 6-digit PIN, stored hashed (issue 11 §2)."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.accounts.models import User
from backend.accounts.roles import STAFF, require_town_role
from backend.core.errors import N_, InvalidInput
from backend.core.models import AuditLog
from backend.core.passwords import hash_secret
from backend.merchants.cards import PIN_RE, forget_wrong_pins
from backend.merchants.errors import CardExists
from backend.merchants.models import ResidentCard
from backend.points.services import JST
from backend.regions.models import Town

_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I

# Who hears that a card was issued or replaced, in that transaction: the notifications domain
# tells the holder (registered by backend/composition.py; this domain knows none of them).
CardIssued = Callable[[Session, ResidentCard, Town, bool], None]
_ISSUED: list[CardIssued] = []


def on_card_issued(listener: CardIssued) -> None:
    """Call `listener(session, card, town, replaced)` whenever staff issue or replace a card
    (registering the same function twice is a no-op)."""
    if listener not in _ISSUED:
        _ISSUED.append(listener)


def new_card_code() -> str:
    """A fresh card code: "C" and 10 characters read aloud without 0/O or 1/I mix-ups."""
    return "C" + "".join(secrets.choice(_CODE_ALPHABET) for _ in range(10))


def issue_card(
    session: Session,
    actor: User | None,
    town: Town,
    user: User,
    pin: object,
    now: dt.datetime,
    replace: bool = False,
) -> ResidentCard:
    """A printed card for a resident in `town`: a card code and a 6-digit PIN (stored
    hashed). Town STAFF only. A resident has one card per town and each pays only its own
    town's shops; another town's card is never touched. When the resident already holds
    this town's card, a new one is issued only with `replace` (else CardExists): the old
    code and PIN stop working at once, and the replacement is audit-logged."""
    actor = require_town_role(actor, town.id, STAFF)
    if not isinstance(pin, str) or not PIN_RE.fullmatch(pin):
        raise InvalidInput(N_("The PIN must be 6 digits."), field="pin")
    card = session.scalar(
        select(ResidentCard)
        .where(ResidentCard.user_id == user.id, ResidentCard.town_id == town.id)
        .with_for_update()
    )
    old_code = card.card_code if card is not None else None
    if card is not None and not replace:
        raise CardExists(
            N_(
                "This resident already has a card for this town, issued on %(date)s. "
                "Replace it only if it was lost: the old card stops working."
            ),
            date=card.created_at.astimezone(JST).date().isoformat(),
        )
    if card is None:
        card = ResidentCard(user_id=user.id, town_id=town.id)
        session.add(card)
    card.card_code = new_card_code()
    card.pin_hash = hash_secret(pin)
    card.failed_attempts = 0
    card.locked_at = None
    card.created_at = now
    details: dict[str, Any] = {
        "town_id": town.id,
        "issued_by": actor.id,
        "card_code": card.card_code,
    }
    if old_code is not None:
        details["replaced_card_code"] = old_code
        forget_wrong_pins(session, card.id)
    session.add(
        AuditLog(
            actor=f"user:{actor.id}",
            action="card.replace" if old_code is not None else "card.issue",
            subject_type="user",
            subject_id=str(user.id),
            reason="printed QR card replaced" if old_code else "printed QR card issued",
            details=details,
        )
    )
    try:
        session.flush()  # the card's id, for the holder's notification
        tell_the_holder(session, card, town, replaced=old_code is not None)
        session.commit()
    except IntegrityError:  # another staff member issued this town's card at the same time
        session.rollback()
        raise CardExists(
            N_("This resident already has a card for this town. Reload the page.")
        ) from None
    return card


def tell_the_holder(session: Session, card: ResidentCard, town: Town, *, replaced: bool) -> None:
    """Staff issue cards by e-mail address and see the PIN: the listeners (the notifications
    domain) let the holder learn of a card they did not ask for."""
    for listener in _ISSUED:
        listener(session, card, town, replaced)
