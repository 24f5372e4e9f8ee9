"""Who and what town staff may issue (issue 13 §2): the town's issuable programmes, and
each recipient (e-mail, customer code, printed card or address) resolved to an account's
built-in address through the accounts and merchants services. An e-mail address that no
account has verified resolves to the claim wallet waiting for it (issue 14 §3, ADR 0017):
the points are held there until its owner signs up and verifies it. `IssuingBase` holds the
session and collaborators the issuing services share (services.py puts them together).

The same resolver names the one recipient of other staff forms (issue 15 §5: a DAO payout):
`resolve_recipient` takes a person (e-mail, customer code, card code), one of the town's shops
by its name, or an address, and refuses an e-mail nobody verified instead of holding for it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from backend.accounts.models import User
from backend.accounts.roles import STAFF, require_town_role
from backend.accounts.services import custodial_addresses, users_by_email
from backend.chain import api as chain
from backend.chain.api import OutboxService
from backend.claims.services import (
    HELD_FOR,
    NOT_HELD_MERCHANTS_ONLY,
    ClaimService,
    ClaimsUnavailable,
)
from backend.core.db import utcnow
from backend.core.errors import N_, InvalidInput, translate
from backend.core.numbers import db_id_or_none
from backend.issuing.csv_upload import RawRow
from backend.issuing.models import (
    ADDRESS,
    CARD,
    CUSTOMER_CODE,
    EMAIL,
    INVALID,
    READY,
    IssuanceRow,
)
from backend.merchants.models import SUSPENDED
from backend.merchants.services import MerchantService
from backend.points.errors import InvalidAmount
from backend.points.programmes import PRESETS, kind
from backend.points.services import parse_amount
from backend.points.town_settings import (
    CONFIRMED as SETTING_CONFIRMED,
)
from backend.points.town_settings import (
    MERCHANTS_ONLY,
    TownSettingsService,
    policy_on_chain,
    town_programme,
)
from backend.regions.models import Town

MAX_REASON = 200
MAX_NOTE = 300
MAX_RECIPIENT = 254
FOUR_EYES_FIELD = "issue_four_eyes_amount"
_KEY_RE = re.compile(r"[A-Za-z0-9._:-]{6,100}")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_CUSTOMER_CODE_RE = re.compile(r"P\d{12}")
_CARD_RE = re.compile(r"C[A-Z0-9]{10}")
_GROUPED = re.compile(r"\d{1,3}(,\d{3})+")
SHOP = "shop"  # a recipient named by its shop's name (forms that may pay a shop)
_ANYONE = N_("Give an email address, a customer code, a card code or an address.")
_ANYONE_OR_SHOP = N_(
    "Give an email address, a customer code, a card code, a shop's name or an address."
)
NOBODY_VERIFIED = N_(
    "Nobody with an account has confirmed this e-mail address. Ask them to sign up (or to "
    "confirm their address) first."
)


@dataclass(frozen=True)
class Recipient:
    """The one person or shop a staff form named: how it was named (EMAIL, CUSTOMER_CODE, CARD,
    ADDRESS or SHOP), the address it receives at, and whose it is when it is ours."""

    kind: str
    address: str
    user_id: int | None = None
    merchant_id: int | None = None


@dataclass(frozen=True)
class IssuableProgramme:
    """A town's programme staff may issue from: active on chain (its last change confirmed)."""

    programme_id: int
    kind: str  # the PRESETS kind name, e.g. "thank-you"
    reason: str  # the reason string its issues carry on chain (the kind's)
    name_ja: str
    name_en: str

    def name(self, locale: str | None) -> str:
        return self.name_ja if (locale or "ja").startswith("ja") else self.name_en


def _reason(value: object) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not text or len(text) > MAX_REASON:
        raise InvalidInput(
            N_("A reason of 1 to %(max)d characters is required."), field="reason", max=MAX_REASON
        )
    return text


def _key(value: object) -> str:
    if not isinstance(value, str) or not _KEY_RE.fullmatch(value):
        raise InvalidInput(
            N_("A request key (6-100 letters, digits or . _ : -) is required."),
            field="idempotency_key",
        )
    return value


def _amount_text(text: str) -> str:
    text = text.strip()
    return text.replace(",", "") if _GROUPED.fullmatch(text) else text


def row_error(row: IssuanceRow) -> str:
    """The row's error in the request's language ("" when it has none)."""
    if not row.error:
        return ""
    return translate(row.error, json.loads(row.error_args or "{}"))


def row_held_for(row: IssuanceRow) -> str:
    """For a row held in a claim wallet, "Will be held for <email> until they sign up and
    confirm this address." in the request's language ("" for any other row)."""
    if not row.held or row.status == INVALID:
        return ""
    return translate(HELD_FOR, {"email": recipient_text(row.recipient).lower()})


def recipient_text(text: str) -> str:
    """A recipient as typed, in NFKC: what a Japanese keyboard's full-width mode or Excel made
    of it (ｔａｒｏ＠ｅｘａｍｐｌｅ．ｊｐ, Ｐ１２３…, an ideographic space) reads as the ASCII it
    stands for. Before, a half full-width address was a valid address of its own: the points
    were held for it where nobody could claim them, next to the same person's row."""
    return unicodedata.normalize("NFKC", text).strip()


class IssuingBase:
    """Issuing over one DB session; `merchants` resolves customer codes and printed cards."""

    def __init__(
        self,
        session: Session,
        *,
        merchants: MerchantService,
        settings: TownSettingsService,
        claims: ClaimService,
        outbox: Callable[[], OutboxService],
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.session = session
        self.merchants = merchants
        self.settings = settings
        self.claims = claims
        self._outbox = outbox
        self._now = now

    # ------------------------------------------------------------------ programmes

    def programmes(self, actor: User | None, town: Town) -> list[IssuableProgramme]:
        """The town's programmes (points_programmes rows, edited in the console) that staff
        may issue from now: active, with their last on-chain change confirmed. STAFF only."""
        require_town_role(actor, town.id, STAFF)
        return self.issuable_programmes(town)

    def issuable_programmes(self, town: Town) -> list[IssuableProgramme]:
        """`programmes` for a caller that has authorised otherwise (a service's API key)."""
        out = []
        for view in self.settings.programme_views(town):
            preset = kind(view.row.kind)
            if not view.row.active or view.status != SETTING_CONFIRMED or preset is None:
                continue
            out.append(
                IssuableProgramme(
                    int(view.row.programme_id),
                    preset.name,
                    preset.reason,
                    view.row.name_ja,
                    view.row.name_en,
                )
            )
        return out

    def _programme(self, actor: User, town: Town, value: object) -> IssuableProgramme:
        pid = db_id_or_none(value)
        found = next((p for p in self.programmes(actor, town) if p.programme_id == pid), None)
        if found is None:
            raise InvalidInput(N_("Choose a programme."), field="programme_id")
        return found

    def programme_name(self, town: Town, programme_id: int, locale: str | None) -> str:
        """The name of a town's programme in `locale` ("" when the town has no such row)."""
        row = town_programme(self.session, town.id, programme_id)
        return row.name(locale) if row is not None else ""

    def _chain_reason(self, town_id: int, programme_id: int) -> str:
        """The reason string issues of this programme carry on chain (its kind's)."""
        row = town_programme(self.session, town_id, programme_id)
        preset = (
            kind(row.kind)
            if row is not None
            else next((p for p in PRESETS if p.programme_id == programme_id), None)
        )
        return preset.reason if preset is not None else ""

    # ------------------------------------------------------------------ resolving recipients

    def resolve_recipient(self, town: Town, value: object, *, shops: bool = False) -> Recipient:
        """The one recipient a staff form names (a DAO payout): an e-mail of an account whose
        owner confirmed it, a customer code, a printed card of `town`, an address, or with
        `shops` the name (Japanese or English) of one of the town's shops that is not suspended.
        The look-ups of issuing (`_resolve`), except that an e-mail nobody confirmed is refused
        rather than held in a claim wallet. Writes nothing; InvalidInput (field "recipient")
        says why the recipient is unknown."""
        text = value.strip() if isinstance(value, str) else ""
        if shops and text:
            wanted = text.casefold()
            for m in self.merchants.merchants_in(town):
                names = {m.name_ja.strip().casefold(), m.name_en.strip().casefold()}
                if wanted in names and m.status != SUSPENDED:
                    return Recipient(SHOP, m.address, merchant_id=m.id)
        # The amount column of a row is not asked here: "1" satisfies its check.
        (row,) = self._resolve(town, [RawRow(1, text, "1", "")], hold=False)
        if row.status != READY or row.address is None:
            message = _ANYONE_OR_SHOP if shops and row.error == _ANYONE else row.error
            args = json.loads(row.error_args) if row.error_args else {}
            raise InvalidInput(message, field="recipient", **args)
        return Recipient(row.kind or ADDRESS, row.address, user_id=row.user_id)

    def _resolve(
        self, town: Town, raw: Sequence[RawRow], *, repeats: bool = False, hold: bool = True
    ) -> list[IssuanceRow]:
        """One IssuanceRow per raw row: ready with its address and amount, or invalid with the
        reason. Look-ups go through the accounts and merchants services, in bulk. The same
        recipient twice is an error (a slip in a staff's list) unless `repeats` (a service's
        batch: two rides of one passenger are two issuances, each with its own key). Without
        `hold`, an e-mail no account confirmed is an error instead of a claim wallet's."""
        rows: list[IssuanceRow] = []
        kinds: list[tuple[str, str]] = []  # (kind, normalised recipient) per row
        for r in raw:
            row = IssuanceRow(
                line=r.line,
                recipient=r.recipient[:300],
                note=r.note[:MAX_NOTE],
                status=READY,
                error="",
                error_args="",
            )
            rows.append(row)
            kind, value = self._classify(r.recipient)
            kinds.append((kind, value))
            row.kind = kind or None
            if not kind:
                self._fail(row, value)
            elif len(r.note) > MAX_NOTE:
                self._fail(row, N_("The note is longer than %(max)d characters."), max=MAX_NOTE)
            try:
                row.amount = Decimal(parse_amount(_amount_text(r.amount)))
            except InvalidAmount as exc:
                row.amount = None
                if row.status == READY:
                    self._fail(row, exc.message, **exc.details)
        # Only an account whose owner verified the address receives directly; the points for
        # any other address wait in its claim wallet (an unverified sign-up gets nothing).
        emails = users_by_email(
            self.session, [v for k, v in kinds if k == EMAIL], verified_only=True
        )
        cards = self.merchants.card_holders(town, [v for k, v in kinds if k == CARD])
        user_of: dict[int, int] = {}  # row index -> user id
        held: dict[int, str] = {}  # row index -> the e-mail its points are held for
        for i, ((kind, value), row) in enumerate(zip(kinds, rows, strict=True)):
            if kind == EMAIL:
                if value in emails:
                    user_of[i] = emails[value]
                elif row.status == READY:
                    held[i] = value
            elif kind == CARD:
                if value in cards:
                    user_of[i] = cards[value]
                else:
                    self._fail(row, N_("No printed card of this town has this code."))
            elif kind == CUSTOMER_CODE:
                holder = self.merchants.customer_code_holder(value)
                if holder is None:
                    self._fail(
                        row,
                        N_("This customer code is not valid or has expired. Ask for a new one."),
                    )
                else:
                    user_of[i] = holder
            elif kind == ADDRESS:
                row.address = value
        if hold:
            self._hold(town, rows, held)
        else:
            for i in held:
                self._fail(rows[i], NOBODY_VERIFIED)
        wallets = custodial_addresses(self.session, user_of.values())
        for i, user_id in user_of.items():
            rows[i].user_id = user_id
            if user_id in wallets:
                rows[i].address = wallets[user_id]
            else:
                self._fail(rows[i], N_("This account has no built-in wallet."))
        seen: dict[str, int] = {}
        for row in [] if repeats else rows:
            if row.address is None or row.status != READY:
                continue
            first = seen.setdefault(row.address, row.line)
            if first != row.line:
                self._fail(row, N_("The same recipient as line %(line)d."), line=first)
        return rows

    def _hold(self, town: Town, rows: list[IssuanceRow], held: dict[int, str]) -> None:
        """Rows for addresses no account verified go to the claim wallet waiting for each
        (reserved now); refused where the points could never be passed on (a town whose
        points go to shops only) or no wallet can be made."""
        if not held:
            return
        if policy_on_chain(self.session, town) == MERCHANTS_ONLY:
            for i in held:
                self._fail(rows[i], NOT_HELD_MERCHANTS_ONLY)
            return
        try:
            wallets = self.claims.wallets_for(held.values())
        except ClaimsUnavailable as exc:
            for i in held:
                self._fail(rows[i], exc.message)
            return
        for i, email in held.items():
            rows[i].address = wallets[email]

    @staticmethod
    def _classify(text: str) -> tuple[str, str]:
        """(kind, normalised value), or ("", error msgid)."""
        text = recipient_text(text)
        if not text:
            return "", N_("The recipient is missing.")
        if len(text) > MAX_RECIPIENT:
            return "", N_("The recipient is too long.")
        if "@" in text:
            email = text.lower()
            if not _EMAIL_RE.fullmatch(email):
                return "", N_("This is not a valid email address.")
            return EMAIL, email
        upper = text.upper()
        if _CUSTOMER_CODE_RE.fullmatch(upper):
            return CUSTOMER_CODE, upper
        if _CARD_RE.fullmatch(upper):
            return CARD, upper
        if text.lower().startswith("0x"):
            address = chain.checksum_address(text)
            if address is None:
                return "", N_("This is not a valid address (check every character).")
            return ADDRESS, address
        return "", _ANYONE

    @staticmethod
    def _fail(row: IssuanceRow, message: str, **args: Any) -> None:
        row.status = INVALID
        row.error = message
        row.error_args = json.dumps(args) if args else ""
