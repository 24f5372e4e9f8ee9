"""Family proxies (issue 15 §1, second part; ADR 0023): the links.

A resident of a town (anyone holding the town's printed card: a resident registered at the
town hall without a phone, or one issued a card by e-mail) may have a family member act for
them. Town STAFF link the family member's own account to the resident after both agreed in
person at the desk (`link_proxy`: the staff member attests it, it is logged), with two limits in
points: per payment and per JST day. Staff end a link (`end_link`); switching to another family
member is ending one link and making another. Nobody shares the resident's card or PIN.

What the proxy does with a link (see the balance, pay for the resident) is proxy_payments.py.
The resident's history and the balance slip printed at the town hall list every payment a proxy
made (`proxy_acts`); links and payments are in the town's audit log ("proxy.link", "proxy.end",
"points.proxy_payment").
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.accounts.errors import AuthenticationRequired
from backend.accounts.models import User
from backend.accounts.roles import STAFF, require_town_role
from backend.core.errors import N_, Conflict, Forbidden, InvalidInput, NotFound
from backend.core.models import AuditLog
from backend.core.numbers import db_id_or_none
from backend.merchants import limits, town_hall
from backend.merchants.models import (
    BY_PROXY,
    Charge,
    Merchant,
    ProxyLink,
    ResidentCard,
)
from backend.regions.models import Town

if TYPE_CHECKING:
    from backend.merchants.charges import MerchantCharges

LINK, END, PAY = "proxy.link", "proxy.end", "points.proxy_payment"
# How the family member is related, as the form offers it ("" when not said).
RELATIONS = ("spouse", "child", "grandchild", "sibling", "parent", "other")
MAX_LIMIT = limits.MAX_SETTING
_KEY_MAX = 64
_LIMIT_RE = re.compile(r"[0-9]{1,10}")


class ProxyNotFound(NotFound):
    """No such link, or not this person's: the same answer, so nothing is learnt about it."""

    code = "proxy_not_found"


class ProxyEnded(Forbidden):
    code = "proxy_ended"


class ProxyOtherTown(Forbidden):
    code = "proxy_other_town"


class ProxyLimitReached(Conflict):
    code = "proxy_limit_reached"


class ProxyAlreadyLinked(Conflict):
    code = "proxy_already_linked"


class ProxyLinkRepeated(Conflict):
    code = "proxy_link_repeated"


def person_name(user: User | None) -> str:
    """How a person is named on pages and slips: their name, else their e-mail (never an
    address of the chain)."""
    if user is None:
        return ""
    return user.display_name.strip() or (user.email or "")


# ---------------------------------------------------------------------- town staff


@dataclass(frozen=True)
class LinkRow:
    link: ProxyLink
    proxy_name: str
    proxy_email: str
    resident_name: str


def _limit(value: object, field: str) -> int:
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and _LIMIT_RE.fullmatch(text):
        text = int(text)
    if isinstance(text, bool) or not isinstance(text, int) or not 1 <= text <= MAX_LIMIT:
        raise InvalidInput(
            N_("Enter a limit in whole points from 1 to %(max)d."), field=field, max=MAX_LIMIT
        )
    return text


def resident_card(
    session: Session, staff: User | None, town: Town, card_id: object
) -> tuple[ResidentCard, User]:
    """The town's card `card_id` and its resident, for the town's STAFF (404 otherwise)."""
    card = town_hall.town_card(session, staff, town, card_id)
    resident, _address = town_hall.card_holder(session, card)
    return card, resident


def link_proxy(
    svc: MerchantCharges,
    staff: User | None,
    town: Town,
    card_id: object,
    *,
    email: object,
    per_payment_limit: object,
    daily_limit: object,
    relation: object = "",
    agreed_in_person: object = False,
    request_key: object,
) -> ProxyLink:
    """Town STAFF link the family member with account `email` as the proxy of the resident
    holding card `card_id`, after both agreed in person (`agreed_in_person` must be True: the
    staff member's word, logged). Limits are whole points, 1..MAX_LIMIT, the daily one at least
    the per-payment one. Refusals change nothing: InvalidInput (400), ProxyAlreadyLinked (409:
    an active link of the two exists), ProxyLinkRepeated (409: this form was already sent).
    AuditLog "proxy.link" with the staff member as actor. Commits."""
    session = svc.session
    _card, resident = resident_card(session, staff, town, card_id)
    assert staff is not None  # noqa: S101 - checked by resident_card
    per_payment = _limit(per_payment_limit, "per_payment_limit")
    daily = _limit(daily_limit, "daily_limit")
    if daily < per_payment:
        raise InvalidInput(
            N_("The daily limit must be at least the limit per payment."), field="daily_limit"
        )
    kind = relation if isinstance(relation, str) else ""
    if kind and kind not in RELATIONS:
        raise InvalidInput(N_("Choose the relation from the list."), field="relation")
    if agreed_in_person is not True:
        raise InvalidInput(
            N_("Confirm that the resident and the family member agreed to this in person."),
            field="agreed_in_person",
        )
    if not isinstance(request_key, str) or not 8 <= len(request_key) <= _KEY_MAX:
        raise InvalidInput(N_("The form has expired. Reload the page."), field="request_key")
    proxy = svc.user_by_email(email)
    if proxy.id == resident.id:
        raise InvalidInput(N_("A resident cannot be their own proxy."), field="email")
    repeated = ProxyLinkRepeated(N_("This link was already made by this form. See the list."))
    if _by_key(session, town.id, request_key) is not None:
        raise repeated
    if active_link(session, town.id, resident.id, proxy.id) is not None:
        raise ProxyAlreadyLinked(
            N_("This family member is already linked. End the link first to change its limits.")
        )
    now = svc.now()
    link = ProxyLink(
        town_id=town.id,
        resident_user_id=resident.id,
        proxy_user_id=proxy.id,
        relation=kind,
        per_payment_limit=Decimal(per_payment),
        daily_limit=Decimal(daily),
        agreed_in_person=True,
        request_key=request_key,
        created_by=staff.id,
        created_at=now,
    )
    session.add(link)
    try:
        session.flush()
        session.add(
            AuditLog(
                actor=f"user:{staff.id}",
                action=LINK,
                subject_type="proxy_link",
                subject_id=str(link.id),
                reason="family proxy linked at the town hall; both agreed in person",
                details={
                    "town_id": town.id,
                    "resident_user_id": resident.id,
                    "proxy_user_id": proxy.id,
                    "per_payment_limit": per_payment,
                    "daily_limit": daily,
                    "relation": kind,
                    "agreed_in_person": True,
                },
            )
        )
        session.commit()
    except IntegrityError:  # the same form twice at once, or the same two linked meanwhile
        session.rollback()
        if _by_key(session, town.id, request_key) is not None:
            raise repeated from None
        raise ProxyAlreadyLinked(
            N_("This family member is already linked. End the link first to change its limits.")
        ) from None
    return link


def _by_key(session: Session, town_id: int, key: str) -> int | None:
    return session.scalar(
        select(ProxyLink.id).where(ProxyLink.town_id == town_id, ProxyLink.request_key == key)
    )


def active_link(
    session: Session, town_id: int, resident_id: int, proxy_id: int
) -> ProxyLink | None:
    return session.scalar(
        select(ProxyLink).where(
            ProxyLink.town_id == town_id,
            ProxyLink.resident_user_id == resident_id,
            ProxyLink.proxy_user_id == proxy_id,
            ProxyLink.ended_at.is_(None),
        )
    )


def end_link(
    session: Session,
    staff: User | None,
    town: Town,
    link_id: object,
    now: dt.datetime,
    resident_id: int | None = None,
) -> ProxyLink:
    """Town STAFF end a link (the resident asked, the family changed): from now on the family
    member sees nothing and pays nothing for the resident. With `resident_id`, only a link of
    that resident (the page of one resident's card). Ending an ended link changes nothing;
    of ten presses at once one ends it and writes the AuditLog "proxy.end". Commits."""
    staff = require_town_role(staff, town.id, STAFF)
    link = session.get(ProxyLink, i) if (i := db_id_or_none(link_id)) else None
    if (
        link is None
        or link.town_id != town.id
        or (resident_id is not None and link.resident_user_id != resident_id)
    ):
        raise ProxyNotFound(N_("There is no such family proxy."))
    done = session.execute(
        update(ProxyLink)
        .where(ProxyLink.id == link.id, ProxyLink.ended_at.is_(None))
        .values(ended_at=now, ended_by=staff.id)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount == 1:  # type: ignore[attr-defined]
        session.add(
            AuditLog(
                actor=f"user:{staff.id}",
                action=END,
                subject_type="proxy_link",
                subject_id=str(link.id),
                reason="family proxy ended by town staff",
                details={
                    "town_id": town.id,
                    "resident_user_id": link.resident_user_id,
                    "proxy_user_id": link.proxy_user_id,
                },
            )
        )
    session.commit()
    session.refresh(link)
    return link


def links_of(session: Session, town_id: int, resident_id: int) -> list[LinkRow]:
    """The resident's links in the town, active ones first, then newest first (the caller has
    checked who may see them: the town's staff, or the resident)."""
    rows = session.execute(
        select(ProxyLink, User)
        .join(User, User.id == ProxyLink.proxy_user_id)
        .where(ProxyLink.town_id == town_id, ProxyLink.resident_user_id == resident_id)
        .order_by(ProxyLink.ended_at.is_not(None), ProxyLink.id.desc())
    ).all()
    resident = session.get(User, resident_id)
    return [LinkRow(link, person_name(u), u.email or "", person_name(resident)) for link, u in rows]


def my_proxies(session: Session, resident: User) -> list[tuple[Town, LinkRow]]:
    """Every link in which `resident` is the one helped, in every town (their points page)."""
    town_ids = session.scalars(
        select(ProxyLink.town_id).where(ProxyLink.resident_user_id == resident.id).distinct()
    ).all()
    out: list[tuple[Town, LinkRow]] = []
    for town in session.scalars(select(Town).where(Town.id.in_(town_ids)).order_by(Town.id)):
        out += [(town, row) for row in links_of(session, town.id, resident.id)]
    return out


# ---------------------------------------------------------------------- what the resident sees


@dataclass(frozen=True)
class ProxyAct:
    """A payment a proxy made from the resident's points."""

    charge: Charge
    shop: Merchant
    proxy_name: str

    @property
    def at(self) -> dt.datetime:
        return self.charge.created_at


def proxy_acts(
    session: Session, resident_id: int, town_id: int | None = None, limit: int = 50
) -> list[ProxyAct]:
    """The payments proxies made from the resident's points, newest first (in one town with
    `town_id`), from the moment they are queued."""
    stmt = (
        select(Charge, Merchant, User)
        .join(Merchant, Merchant.id == Charge.merchant_id)
        .join(User, User.id == Charge.helper_user_id)
        .where(Charge.payer_user_id == resident_id, Charge.method == BY_PROXY)
        .order_by(Charge.id.desc())
        .limit(limit)
    )
    if town_id is not None:
        stmt = stmt.where(Charge.town_id == town_id)
    return [ProxyAct(c, m, person_name(u)) for c, m, u in session.execute(stmt)]


def proxy_names(session: Session, charges: list[Charge]) -> dict[int, str]:
    """The proxy who paid each of `charges` paid by a proxy, by charge id."""
    helpers = {c.id: c.helper_user_id for c in charges if c.method == BY_PROXY and c.helper_user_id}
    if not helpers:
        return {}
    users = {u.id: u for u in session.scalars(select(User).where(User.id.in_(helpers.values())))}
    return {cid: person_name(users.get(uid)) for cid, uid in helpers.items()}


# ---------------------------------------------------------------------- the proxy


def my_link(session: Session, proxy: User | None, link_id: object) -> ProxyLink:
    """The proxy's own link `link_id`: ProxyNotFound (404) when there is none or it is another
    person's, ProxyEnded (403) once staff ended it."""
    if proxy is None:
        raise AuthenticationRequired(N_("Please sign in."))
    link = session.get(ProxyLink, i) if (i := db_id_or_none(link_id)) else None
    if link is None or link.proxy_user_id != proxy.id:
        raise ProxyNotFound(N_("There is no such family proxy."))
    if link.ended_at is not None:
        raise ProxyEnded(
            N_("You are no longer this resident's proxy: the town hall ended the link.")
        )
    return link


def links_in_town(session: Session, proxy: User | None, town_id: int) -> list[LinkRow]:
    """The proxy's active links in a town (the /pay page offers to pay for them)."""
    if proxy is None:
        return []
    rows = session.execute(
        select(ProxyLink, User)
        .join(User, User.id == ProxyLink.resident_user_id)
        .where(
            ProxyLink.proxy_user_id == proxy.id,
            ProxyLink.town_id == town_id,
            ProxyLink.ended_at.is_(None),
        )
        .order_by(ProxyLink.id)
    ).all()
    return [
        LinkRow(link, person_name(proxy), proxy.email or "", person_name(u)) for link, u in rows
    ]


def links_helping(session: Session, proxy: User) -> list[ProxyLink]:
    """The proxy's active links (in every town)."""
    return list(
        session.scalars(
            select(ProxyLink)
            .where(ProxyLink.proxy_user_id == proxy.id, ProxyLink.ended_at.is_(None))
            .order_by(ProxyLink.id)
        )
    )
