"""Who and what town staff may issue (issue 13 §2): the town's issuable programmes, and
each recipient (e-mail, customer code, printed card or address) resolved to an account's
built-in address through the accounts and merchants services. `IssuingBase` holds the
session and collaborators the issuing services share (services.py puts them together).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from backend.accounts.models import User
from backend.accounts.services import custodial_addresses, users_by_email
from backend.chain import api as chain
from backend.chain.api import OutboxService
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
from backend.merchants.services import MerchantService
from backend.points.errors import InvalidAmount
from backend.points.programmes import PRESETS, kind
from backend.points.services import parse_amount
from backend.points.town_settings import (
    CONFIRMED as SETTING_CONFIRMED,
)
from backend.points.town_settings import (
    TownSettingsService,
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


class IssuingBase:
    """Issuing over one DB session; `merchants` resolves customer codes and printed cards."""

    def __init__(
        self,
        session: Session,
        *,
        merchants: MerchantService,
        settings: TownSettingsService,
        outbox: Callable[[], OutboxService],
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.session = session
        self.merchants = merchants
        self.settings = settings
        self._outbox = outbox
        self._now = now

    # ------------------------------------------------------------------ programmes

    def programmes(self, actor: User | None, town: Town) -> list[IssuableProgramme]:
        """The town's programmes (points_programmes rows, edited in the console) that staff
        may issue from now: active, with their last on-chain change confirmed. STAFF only."""
        out = []
        for view in self.settings.programmes(actor, town):
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

    def _resolve(self, town: Town, raw: Sequence[RawRow]) -> list[IssuanceRow]:
        """One IssuanceRow per raw row: ready with its address and amount, or invalid with the
        reason. Look-ups go through the accounts and merchants services, in bulk."""
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
        emails = users_by_email(self.session, [v for k, v in kinds if k == EMAIL])
        cards = self.merchants.card_holders(town, [v for k, v in kinds if k == CARD])
        user_of: dict[int, int] = {}  # row index -> user id
        for i, ((kind, value), row) in enumerate(zip(kinds, rows, strict=True)):
            if kind == EMAIL:
                if value in emails:
                    user_of[i] = emails[value]
                else:
                    self._fail(
                        row,
                        N_(
                            "No account has this email address. Ask them to sign up first "
                            "(points for addresses without an account are not built yet)."
                        ),
                    )
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
        wallets = custodial_addresses(self.session, user_of.values())
        for i, user_id in user_of.items():
            rows[i].user_id = user_id
            if user_id in wallets:
                rows[i].address = wallets[user_id]
            else:
                self._fail(rows[i], N_("This account has no built-in wallet."))
        seen: dict[str, int] = {}
        for row in rows:
            if row.address is None or row.status != READY:
                continue
            first = seen.setdefault(row.address, row.line)
            if first != row.line:
                self._fail(row, N_("The same recipient as line %(line)d."), line=first)
        return rows

    @staticmethod
    def _classify(text: str) -> tuple[str, str]:
        """(kind, normalised value), or ("", error msgid)."""
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
        return "", N_("Give an email address, a customer code, a card code or an address.")

    @staticmethod
    def _fail(row: IssuanceRow, message: str, **args: Any) -> None:
        row.status = INVALID
        row.error = message
        row.error_args = json.dumps(args) if args else ""
