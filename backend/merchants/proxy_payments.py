"""A family proxy pays for the resident (issue 15 §1; ADR 0023; links in proxies.py).

The proxy sees the resident's balance (`helped_by`) and pays a shop's QR charge from the
resident's points: `quote` (the confirmation page: every refusal `pay_for` would give now,
nothing changed), then `pay_for`. The money path is the one every payment takes:
`MerchantCharges.queue_payment` with the RESIDENT as payer, so the relayed transfer is signed by
the resident's custodial key; the proxy is the audit row's actor ("points.proxy_payment") and
the charge's helper, and the charge's method becomes "proxy".

Limits are enforced in the payment's transaction, atomically, after the charge is claimed: a
guarded UPDATE of the link (ended meanwhile -> ProxyEnded) takes its lock, then the day's spend
counter of (town, resident, proxy) is raised by ONE conditional UPDATE (`limits.spend`), so ten
payments at once cannot pass the daily limit together, on PostgreSQL (row locks) and SQLite (its
one write lock) alike; the payer's lock comes last (charge_state.py). Any refusal rolls the whole
transaction back: no charge claimed, no counter raised, nothing queued, no audit row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from backend.accounts.errors import AuthenticationRequired
from backend.accounts.models import User
from backend.core.errors import N_, InvalidInput
from backend.merchants import limits
from backend.merchants.errors import (
    ChargeExpired,
    ChargeNotFound,
    ChargeNotPayable,
    MerchantNotActive,
)
from backend.merchants.models import (
    ACTIVE,
    BY_PROXY,
    BY_QR,
    EXPIRED,
    PAID,
    PAYING,
    PENDING,
    Charge,
    Merchant,
    ProxyLink,
)
from backend.merchants.proxies import (
    PAY,
    ProxyEnded,
    ProxyLimitReached,
    ProxyOtherTown,
    my_link,
    person_name,
)
from backend.points.errors import InsufficientPoints
from backend.points.services import Lot
from backend.regions.models import Town

if TYPE_CHECKING:
    from backend.merchants.charges import MerchantCharges

_CODE_RE = re.compile(r"[A-Za-z0-9]{1,16}")


@dataclass(frozen=True)
class Helped:
    """One person the proxy helps, as the proxy's page shows them."""

    link: ProxyLink
    town: Town
    resident_name: str
    confirmed: int
    available: int
    lots: list[Lot]
    spent_today: int

    @property
    def left_today(self) -> int:
        return max(0, int(self.link.daily_limit) - self.spent_today)


def _subject(link: ProxyLink) -> str:
    """The daily counter of a (town, resident, proxy): linking the two again the same day does
    not start the day afresh."""
    return f"proxy:{link.town_id}:{link.resident_user_id}:{link.proxy_user_id}"


def spent_today(svc: MerchantCharges, link: ProxyLink) -> int:
    return limits.spent(svc.session, _subject(link), limits.jst_day(svc.now()))


def _helped(svc: MerchantCharges, link: ProxyLink) -> Helped:
    session = svc.session
    town = session.get(Town, link.town_id)
    resident = session.get(User, link.resident_user_id)
    assert town is not None and resident is not None  # noqa: S101 - foreign keys
    confirmed = available = 0
    lots: list[Lot] = []
    try:
        address = svc._user_address(resident)
    except ChargeNotPayable:
        address = None
    if address is not None and town.points_address:
        summary = svc.points.summary(town, address)
        confirmed, available, lots = summary.confirmed, summary.available, summary.lots
    return Helped(
        link, town, person_name(resident), confirmed, available, lots, spent_today(svc, link)
    )


def helped_by(svc: MerchantCharges, proxy: User | None) -> list[Helped]:
    """The people `proxy` helps now (active links), each with their balance in the town and
    what is left of today's limit."""
    if proxy is None:
        raise AuthenticationRequired(N_("Please sign in."))
    links = svc.session.scalars(
        select(ProxyLink)
        .where(ProxyLink.proxy_user_id == proxy.id, ProxyLink.ended_at.is_(None))
        .order_by(ProxyLink.id)
    )
    return [_helped(svc, link) for link in links]


def helping(svc: MerchantCharges, proxy: User | None, link_id: object) -> Helped:
    """One person the proxy helps (my_link's refusals)."""
    return _helped(svc, my_link(svc.session, proxy, link_id))


def charge_code(value: object) -> str:
    """The charge's short code from what the proxy typed or scanned: the code itself, or the
    shop's QR, which holds the /pay/<code> link."""
    text = value.strip() if isinstance(value, str) else ""
    if "/pay/" in text:
        text = text.rsplit("/pay/", 1)[1].split("?")[0].strip("/")
    if not _CODE_RE.fullmatch(text):
        raise InvalidInput(N_("Enter the code the shop shows."), field="code")
    return text.upper()


@dataclass(frozen=True)
class Quote:
    """What the proxy confirms before paying."""

    helped: Helped
    charge: Charge
    shop: Merchant

    @property
    def amount(self) -> int:
        return int(self.charge.amount)


def _check_limits(link: ProxyLink, amount: int, left: int) -> None:
    if amount > int(link.per_payment_limit):
        raise ProxyLimitReached(
            N_(
                "%(amount)d points is over the limit of %(limit)d points per payment agreed "
                "at the town hall. Nothing was paid."
            ),
            amount=amount,
            limit=int(link.per_payment_limit),
        )
    if amount > left:
        raise ProxyLimitReached(
            N_(
                "%(amount)d points is over today's limit for this person: %(left)d of "
                "%(limit)d points left today. Nothing was paid."
            ),
            amount=amount,
            left=left,
            limit=int(link.daily_limit),
        )


def quote(svc: MerchantCharges, proxy: User | None, link_id: object, code: object) -> Quote:
    """The shop's charge `code` as the proxy would pay it for the resident of `link_id`, with
    every refusal `pay_for` would give now (nothing changes): ProxyOtherTown (403) for a shop of
    another town, ProxyLimitReached (409), InsufficientPoints (409), ChargeExpired,
    ChargeNotPayable."""
    helped = helping(svc, proxy, link_id)
    charge = svc.charge_by_code(charge_code(code))
    shop = svc.merchant(charge.merchant_id)
    _payable(charge, helped.link)
    _check_limits(helped.link, int(charge.amount), helped.left_today)
    if helped.available < int(charge.amount):
        raise InsufficientPoints(
            N_("Not enough points: %(available)d available, %(amount)d needed."),
            available=helped.available,
            amount=int(charge.amount),
        )
    return Quote(helped, charge, shop)


def _payable(charge: Charge, link: ProxyLink) -> None:
    if charge.town_id != link.town_id:
        raise ProxyOtherTown(
            N_("This shop is in another town: you can pay for this person only in their town.")
        )
    if charge.status == EXPIRED:
        raise ChargeExpired(N_("This payment request has expired. Ask the shop for a new one."))
    if charge.method != BY_QR or charge.status != PENDING:
        raise ChargeNotPayable(N_("This payment request can no longer be paid."))


def paid_by_link(charge: Charge, link: ProxyLink) -> bool:
    return (
        charge.method == BY_PROXY
        and charge.payer_user_id == link.resident_user_id
        and charge.helper_user_id == link.proxy_user_id
    )


def pay_for(svc: MerchantCharges, proxy: User | None, link_id: object, code: object) -> Charge:
    """The proxy pays the shop's pending QR charge `code` from the points of the resident of
    `link_id` (see the module docstring). Paying again a charge this proxy already paid for this
    resident returns it and changes nothing. Refusals roll everything back: my_link's and
    quote's, and ProxyEnded when staff end the link meanwhile. Commits."""
    session = svc.session
    link = my_link(session, proxy, link_id)
    assert proxy is not None  # noqa: S101 - checked by my_link
    found = svc.charge_by_code(charge_code(code))
    try:
        # Under the charge's row lock (PostgreSQL): two taps of "pay" must not both pay.
        charge = session.scalars(
            select(Charge).where(Charge.id == found.id).with_for_update()
        ).one()
        if charge.status in (PAYING, PAID) and paid_by_link(charge, link):
            session.commit()
            return charge
        _payable(charge, link)
        amount = int(charge.amount)
        _check_limits(link, amount, int(link.daily_limit))
        # One guarded UPDATE each, in this order on every path: the charge (a cancel or another
        # payer committed since loses nothing), the link (ended meanwhile: refused), the day's
        # counter (within the daily limit, whatever else is paid at the same moment).
        if not svc.claim_pending(charge.id, PENDING):
            raise ChargeNotPayable(N_("This payment request can no longer be paid."))
        held = session.execute(
            update(ProxyLink)
            .where(ProxyLink.id == link.id, ProxyLink.ended_at.is_(None))
            .values(request_key=ProxyLink.request_key)
            .execution_options(synchronize_session=False)
        )
        if held.rowcount != 1:  # type: ignore[attr-defined]
            raise ProxyEnded(
                N_("You are no longer this resident's proxy: the town hall ended the link.")
            )
        _spend(svc, link, amount)
        merchant = svc.merchant(charge.merchant_id)
        if merchant.status != ACTIVE:
            raise MerchantNotActive(N_("This shop is not registered on the points network yet."))
        resident = session.get(User, link.resident_user_id)
        assert resident is not None  # noqa: S101 - a foreign key
        charge.payer_user_id = resident.id
        charge.helper_user_id = proxy.id
        charge.method = BY_PROXY
        svc.queue_payment(
            charge,
            merchant,
            resident,
            actor=f"user:{proxy.id}",
            action=PAY,
            details={
                "helper_user_id": proxy.id,
                "method": BY_PROXY,
                "proxy_link_id": link.id,
                "town_id": link.town_id,
            },
        )
        session.commit()
    except Exception:
        session.rollback()
        raise
    return charge


def paid_charge(svc: MerchantCharges, link: ProxyLink, code: object) -> Charge:
    """A charge the link's proxy paid for its resident (ChargeNotFound for any other), its
    state refreshed."""
    charge = svc.charge_by_code(code)
    if not paid_by_link(charge, link):
        raise ChargeNotFound(N_("There is no such payment request."))
    return charge


def _spend(svc: MerchantCharges, link: ProxyLink, amount: int) -> None:
    try:
        limits.spend(
            svc.session,
            _subject(link),
            limits.jst_day(svc.now()),
            amount,
            int(link.daily_limit),
        )
    except limits.DailyLimitReached as exc:
        left = exc.details.get("left", 0)
        _check_limits(link, amount, int(left) if isinstance(left, int) else 0)
        raise  # not reached: _check_limits refuses what spend refused
