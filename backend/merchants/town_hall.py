"""Residents without a phone or an e-mail, served at the town hall (issue 15 §1, ADR 0022).

Town STAFF register a resident in person: a name (kana optional) and their word that they saw
an ID. That makes, in one commit, an account with no e-mail and no password (it can neither
receive mail nor sign in by password: `AccountService.authenticate` refuses a user without a
password hash, and no mail flow has an address to send to), a custodial wallet like everyone's,
the town's printed card with a fresh PIN (returned once, stored hashed, never printed), a
TownHallRegistration row and an AuditLog "resident.create" that says the ID was seen.

Staff also lock a card (lost or stolen: every shop refuses it until unlocked) and list the
town's cards. Reprint is the same card (card_print.py); replace is card_issue.issue_card with
`replace` (a new code; the old one no longer exists, so every till refuses it for good).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.accounts.errors import CustodyUnavailable
from backend.accounts.models import CUSTODIAL, Address, User
from backend.accounts.roles import STAFF, require_town_role
from backend.chain.api import CustodyNotConfigured, KeyVault
from backend.core.errors import N_, Conflict, InvalidInput, NotFound
from backend.core.models import AuditLog
from backend.core.numbers import db_id_or_none
from backend.core.passwords import hash_secret
from backend.merchants.card_issue import new_card_code, tell_the_holder
from backend.merchants.cards import MAX_PIN_TRIES, forget_wrong_pins, new_pin
from backend.merchants.models import CardPinFailures, ResidentCard, TownHallRegistration
from backend.regions.models import Town

CREATE = "resident.create"
# The IDs a counter clerk is shown, as the form offers them ("" when not said).
ID_KINDS = ("my_number", "driving_licence", "health_insurance", "passport", "residence", "other")
NAME_MAX = 80
LIST_MAX = 200  # the cards page lists this many; staff search for the others
_KEY_MAX = 64


class RegistrationRepeated(Conflict):
    """The same form was sent again: the resident exists; the PIN was shown the first time."""

    code = "registration_repeated"


@dataclass(frozen=True)
class Registered:
    user: User
    card: ResidentCard
    pin: str


@dataclass(frozen=True)
class TownCard:
    card_id: int
    user_id: int
    name: str
    name_kana: str
    code: str
    locked: bool
    issued_at: dt.datetime
    at_town_hall: bool


def _name(value: object, field: str, required: bool) -> str:
    text = " ".join(value.split()) if isinstance(value, str) else ""
    if required and not text:
        raise InvalidInput(N_("Enter the resident's name."), field=field)
    if len(text) > NAME_MAX or any(ord(c) < 32 for c in text):
        raise InvalidInput(N_("The name is too long (80 characters at most)."), field=field)
    return text


def register_resident(
    session: Session,
    vault: Callable[[], KeyVault],
    actor: User | None,
    town: Town,
    *,
    name: object,
    name_kana: object = "",
    id_seen: object = False,
    id_kind: object = "",
    request_key: object,
    now: dt.datetime,
) -> Registered:
    """Register a resident seen at the town hall (see the module docstring). Town STAFF only.
    Nothing is written unless every check passes: a missing name or ID confirmation is an
    InvalidInput (400); a request key already used in this town is RegistrationRepeated (409,
    the first request's resident stands). Commits."""
    actor = require_town_role(actor, town.id, STAFF)
    display = _name(name, "name", required=True)
    kana = _name(name_kana, "name_kana", required=False)
    if id_seen is not True:
        raise InvalidInput(
            N_("Confirm that you saw the resident's ID before registering them."),
            field="id_seen",
        )
    kind = id_kind if isinstance(id_kind, str) else ""
    if kind and kind not in ID_KINDS:
        raise InvalidInput(N_("Choose the kind of ID from the list."), field="id_kind")
    if not isinstance(request_key, str) or not 8 <= len(request_key) <= _KEY_MAX:
        raise InvalidInput(N_("The form has expired. Reload the page."), field="request_key")
    if _repeated(session, town.id, request_key):
        raise RegistrationRepeated(
            N_("This resident was already registered by this form. Find them in the list.")
        )
    try:
        sealed = vault().create_key()
    except CustodyNotConfigured:
        raise CustodyUnavailable(N_("Accounts with a built-in wallet are unavailable.")) from None
    # No e-mail and no password hash: nobody can sign in as this user or mail them; the card
    # and its PIN (or a family proxy) are how they pay.
    user = User(email=None, password_hash=None, display_name=display, locale="ja")
    session.add(user)
    session.add(Address.custodial(user, sealed))
    session.flush()
    pin = new_pin()
    card = ResidentCard(
        user_id=user.id,
        town_id=town.id,
        card_code=new_card_code(),
        pin_hash=hash_secret(pin),
        failed_attempts=0,
        created_at=now,
    )
    session.add(card)
    session.flush()
    session.add(
        TownHallRegistration(
            town_id=town.id,
            user_id=user.id,
            request_key=request_key,
            name_kana=kana,
            id_seen=True,
            id_kind=kind,
            registered_by=actor.id,
            created_at=now,
        )
    )
    details: dict[str, object] = {"town_id": town.id, "id_seen": True, "card_code": card.card_code}
    if kind:
        details["id_kind"] = kind
    session.add(
        AuditLog(
            actor=f"user:{actor.id}",
            action=CREATE,
            subject_type="user",
            subject_id=str(user.id),
            reason="resident registered in person at the town hall, ID seen",
            details=details,
        )
    )
    try:
        session.commit()
    except IntegrityError:  # the same form, sent twice at once: the other request won
        session.rollback()
        raise RegistrationRepeated(
            N_("This resident was already registered by this form. Find them in the list.")
        ) from None
    return Registered(user, card, pin)


def _repeated(session: Session, town_id: int, key: str) -> bool:
    return (
        session.scalar(
            select(TownHallRegistration.id).where(
                TownHallRegistration.town_id == town_id, TownHallRegistration.request_key == key
            )
        )
        is not None
    )


def town_card(session: Session, actor: User | None, town: Town, card_id: object) -> ResidentCard:
    """One of this town's cards, for its STAFF (NotFound for another town's card)."""
    require_town_role(actor, town.id, STAFF)
    card = session.get(ResidentCard, i) if (i := db_id_or_none(card_id)) else None
    if card is None or card.town_id != town.id:
        raise NotFound(N_("There is no such card."))
    return card


def lock_card(
    session: Session, actor: User | None, town: Town, card_id: object, now: dt.datetime
) -> ResidentCard:
    """Town STAFF lock a card (lost, stolen, the resident asked): every shop refuses it until
    staff unlock it (cards.unlock_card). Locking a locked card changes nothing. Commits."""
    card = town_card(session, actor, town, card_id)
    assert actor is not None  # noqa: S101 - checked by town_card
    # One conditional UPDATE: of ten presses at once, one locks it and writes the audit row.
    locked = session.execute(
        update(ResidentCard)
        .where(ResidentCard.id == card.id, ResidentCard.locked_at.is_(None))
        .values(locked_at=now)
        .execution_options(synchronize_session=False)
    )
    if locked.rowcount == 1:  # type: ignore[attr-defined]
        session.add(
            AuditLog(
                actor=f"user:{actor.id}",
                action="card.lock",
                subject_type="card",
                subject_id=str(card.id),
                reason="card locked by town staff",
                details={"town_id": town.id, "card_code": card.card_code},
            )
        )
    session.commit()
    session.refresh(card)
    return card


class CardAlreadyReplaced(Conflict):
    """The card shown on the page was replaced meanwhile (a double press, another desk)."""

    code = "card_already_replaced"


def replace_card(
    session: Session,
    actor: User | None,
    town: Town,
    card_id: object,
    expected_code: object,
    now: dt.datetime,
) -> tuple[ResidentCard, str]:
    """A lost card: a new code and PIN for the same card row; the old code no longer exists,
    so every till refuses it for good (AuditLog "card.replace" with both codes). Only if the
    card still has `expected_code` (the code the staff member saw), by one conditional UPDATE:
    of a double press, one replaces and the other gets CardAlreadyReplaced (409), so the PIN
    on the staff's screen is always the card's. Returns (card, new PIN). Commits."""
    card = town_card(session, actor, town, card_id)
    assert actor is not None  # noqa: S101 - checked by town_card
    if not isinstance(expected_code, str) or expected_code != card.card_code:
        raise CardAlreadyReplaced(
            N_("This card was already replaced. Reload the page to see its new code.")
        )
    pin, code = new_pin(), new_card_code()
    done = session.execute(
        update(ResidentCard)
        .where(ResidentCard.id == card.id, ResidentCard.card_code == expected_code)
        .values(card_code=code, pin_hash=hash_secret(pin), locked_at=None, created_at=now)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise CardAlreadyReplaced(
            N_("This card was already replaced. Reload the page to see its new code.")
        )
    forget_wrong_pins(session, card.id)
    session.add(
        AuditLog(
            actor=f"user:{actor.id}",
            action="card.replace",
            subject_type="user",
            subject_id=str(card.user_id),
            reason="printed QR card replaced",
            details={
                "town_id": town.id,
                "issued_by": actor.id,
                "card_code": code,
                "replaced_card_code": expected_code,
            },
        )
    )
    session.refresh(card)
    tell_the_holder(session, card, town, replaced=True)
    session.commit()
    return card, pin


def town_cards(
    session: Session, actor: User | None, town: Town, query: object = ""
) -> list[TownCard]:
    """The town's printed cards, newest first (at most LIST_MAX), with who holds them and
    whether they are locked (by staff, or at some shop after too many wrong PINs); `query`
    keeps those whose name, kana, e-mail or card code contains it. Town STAFF only."""
    require_town_role(actor, town.id, STAFF)
    text = " ".join(query.split())[:NAME_MAX] if isinstance(query, str) else ""
    shop_locked = set(
        session.scalars(
            select(CardPinFailures.card_id)
            .join(ResidentCard, ResidentCard.id == CardPinFailures.card_id)
            .where(ResidentCard.town_id == town.id, CardPinFailures.failures >= MAX_PIN_TRIES)
        )
    )
    stmt = (
        select(ResidentCard, User.display_name, User.email, TownHallRegistration.name_kana)
        .join(User, User.id == ResidentCard.user_id)
        .outerjoin(TownHallRegistration, TownHallRegistration.user_id == ResidentCard.user_id)
        .where(ResidentCard.town_id == town.id)
        .order_by(ResidentCard.created_at.desc(), ResidentCard.id.desc())
        .limit(LIST_MAX)
    )
    if text:
        # A literal substring: % and _ typed by staff are not wildcards.
        like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(
            or_(
                User.display_name.ilike(like, escape="\\"),
                User.email.ilike(like, escape="\\"),
                TownHallRegistration.name_kana.ilike(like, escape="\\"),
                ResidentCard.card_code.ilike(like, escape="\\"),
            )
        )
    rows = session.execute(stmt)
    return [
        TownCard(
            card_id=card.id,
            user_id=card.user_id,
            name=name or email or "",
            name_kana=kana or "",
            code=card.card_code,
            locked=card.locked_at is not None or card.id in shop_locked,
            issued_at=card.created_at,
            at_town_hall=kana is not None,
        )
        for card, name, email, kana in rows
    ]


def card_holder(session: Session, card: ResidentCard) -> tuple[User, str | None]:
    """The card's resident and their custodial address (None if they have none)."""
    user = session.get(User, card.user_id)
    assert user is not None  # noqa: S101 - foreign key
    address = session.scalar(
        select(Address.address)
        .where(Address.user_id == user.id, Address.kind == CUSTODIAL)
        .order_by(Address.id)
    )
    return user, address
