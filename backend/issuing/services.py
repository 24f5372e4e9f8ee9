"""Issuing points by town staff (issue 13 §2): to one person (by e-mail, customer code, printed
card or address) or to many from a CSV. preview -> confirm -> `issueBatch` on chain.

Every public method is one unit of work: it commits what it changed, or raises an AppError and
writes nothing. Authorisation is here: town STAFF only (401/403 otherwise).

- **Preview** resolves each row (recipient -> the account's built-in address, through the
  accounts and merchants services) and stores the batch with each row ready or its error; a
  file that cannot be read as a whole writes nothing (csv_upload.py). The batch's idempotency
  key is UNIQUE: the same form or upload twice is one batch.
- **Confirm** moves previewed -> confirmed (or awaiting_approval above the town's four-eyes
  amount) by ONE conditional UPDATE, so ten confirms at once (SQLite or PostgreSQL) have one
  winner; the winner queues the chunks (<= CHUNK_SIZE recipients per `issueBatch`, one outbox
  row each with the key issuing.batch:<id>:chunk:<n>) in the same transaction. Nothing is
  issued twice, even if the worker dies between steps: the outbox key is deterministic.
- **Approve** (four eyes): another member of staff than the one who created or confirmed it.
- **Progress** follows the chain: a chunk's rows are queued -> sent (the outbox sent it) ->
  confirmed (the indexer saw its PointsBatchIssued: handlers.py) or failed (the outbox gave up
  or the transaction reverted).

On chain each chunk carries the programme's reason string (e.g. "thanks"), not the staff's
reason: the chain is public and a reason may name a person. The staff's reason stays in the
batch and the audit log.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.accounts.models import User
from backend.accounts.roles import STAFF, require_town_role
from backend.accounts.services import custodial_addresses, users_by_email
from backend.chain import api as chain
from backend.chain.api import AuditEntry, ContractCall, OutboxService, Sender, Subject
from backend.core.db import get_db, utcnow
from backend.core.errors import N_, InvalidInput, translate
from backend.core.models import AuditLog
from backend.core.numbers import db_id_or_none
from backend.issuing.csv_upload import MAX_ROWS, RawRow, read_rows
from backend.issuing.errors import (
    IssuanceNotFound,
    IssuanceNotReady,
    SecondApproverRequired,
)
from backend.issuing.models import (
    ADDRESS,
    APPROVED,
    AWAITING_APPROVAL,
    CARD,
    CONFIRMED,
    CUSTOMER_CODE,
    DONE,
    EMAIL,
    FAILED,
    IN_FLIGHT,
    INVALID,
    PREVIEWED,
    QUEUED,
    READY,
    ROW_CONFIRMED,
    ROW_FAILED,
    SENDING,
    SENT,
    IssuanceBatch,
    IssuanceChunk,
    IssuanceRow,
)
from backend.merchants import limits
from backend.merchants.services import MerchantService, merchant_service
from backend.points.errors import InvalidAmount, PointsNotAvailable
from backend.points.programmes import PRESETS, kind
from backend.points.services import parse_amount
from backend.points.town_settings import (
    CONFIRMED as SETTING_CONFIRMED,
)
from backend.points.town_settings import (
    TownSettingsService,
    town_programme,
    town_settings_service,
)
from backend.regions.models import Town

log = logging.getLogger(__name__)

CHUNK_SIZE = 200  # recipients per issueBatch: ~70k gas each, well inside a 30M-gas block
MAX_REASON = 200
MAX_NOTE = 300
MAX_RECIPIENT = 254
FOUR_EYES_FIELD = "issue_four_eyes_amount"
_KEY_RE = re.compile(r"[A-Za-z0-9._:-]{6,100}")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_CUSTOMER_CODE_RE = re.compile(r"P\d{12}")
_CARD_RE = re.compile(r"C[A-Z0-9]{10}")
_GROUPED = re.compile(r"\d{1,3}(,\d{3})+")
_OUTBOX_FAILED = ("failed", "reverted", "cancelled")
_OUTBOX_SENT = ("sent", "replaced", "confirmed")


@dataclass(frozen=True)
class Progress:
    """Where a batch is: counts of its rows by status, and how far (0-100) it has come."""

    queued: int
    sent: int
    confirmed: int
    failed: int
    invalid: int

    @property
    def finished(self) -> int:
        return self.confirmed + self.failed

    @property
    def issuing(self) -> int:
        return self.queued + self.sent + self.confirmed + self.failed

    @property
    def percent(self) -> int:
        return 100 if self.issuing == 0 else (100 * self.finished) // self.issuing


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


class IssuingService:
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

    # ------------------------------------------------------------------ preview

    def preview_csv(
        self,
        actor: User | None,
        town: Town,
        data: bytes,
        *,
        file_name: str,
        programme_id: object,
        reason: object,
        key: object,
    ) -> IssuanceBatch:
        """A previewed batch from an uploaded CSV (see `preview`); BadUpload (4xx, nothing
        written) when the file cannot be read as a whole."""
        actor = require_town_role(actor, town.id, STAFF)
        why, k = _reason(reason), _key(key)
        prog = self._programme(actor, town, programme_id)
        found = self._by_key(town, actor, k)
        if found is not None:
            return found
        rows = read_rows(data)
        return self._preview(actor, town, rows, prog, why, k, "csv", file_name[:200])

    def preview(
        self,
        actor: User | None,
        town: Town,
        rows: Sequence[dict[str, Any]],
        *,
        programme_id: object,
        reason: object,
        key: object,
        source: str = "api",
    ) -> IssuanceBatch:
        """A previewed batch of `rows` ({"recipient", "amount", "note"?}): each row resolved to
        an account's built-in address, or its error (no account, unknown card, duplicate,
        bad amount...). Nothing is issued until `confirm`."""
        actor = require_town_role(actor, town.id, STAFF)
        why, k = _reason(reason), _key(key)
        prog = self._programme(actor, town, programme_id)
        found = self._by_key(town, actor, k)
        if found is not None:
            return found
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
            raise InvalidInput(N_("Give at least one recipient."), field="rows")
        if len(rows) > MAX_ROWS:
            raise InvalidInput(
                N_("At most %(max)d recipients at once."), field="rows", max=MAX_ROWS
            )
        raw = [
            RawRow(
                i + 2,
                str(r.get("recipient") or "").strip(),
                str(r.get("amount") if r.get("amount") is not None else "").strip(),
                str(r.get("note") or "").strip(),
            )
            for i, r in enumerate(rows)
        ]
        return self._preview(actor, town, raw, prog, why, k, source, "")

    def issue_one(
        self,
        actor: User | None,
        town: Town,
        *,
        recipient: object,
        amount: object,
        programme_id: object,
        reason: object,
        key: object,
        note: object = "",
    ) -> IssuanceBatch:
        """Issue to one person: a batch of one, previewed and confirmed at once. A recipient
        or amount that does not resolve is refused (InvalidInput) and nothing is written."""
        actor = require_town_role(actor, town.id, STAFF)
        why, k = _reason(reason), _key(key)
        prog = self._programme(actor, town, programme_id)
        found = self._by_key(town, actor, k)
        if found is not None:
            return found
        parse_amount(amount)  # InvalidAmount before anything is written
        text = recipient.strip() if isinstance(recipient, str) else ""
        raw = RawRow(2, text, str(amount).strip(), note.strip() if isinstance(note, str) else "")
        resolved = self._resolve(town, [raw])
        first = resolved[0]
        if first.status != READY:
            self.session.rollback()
            raise InvalidInput(
                first.error, field="recipient", **json.loads(first.error_args or "{}")
            )
        batch = self._preview(actor, town, [raw], prog, why, k, "single", "", resolved=resolved)
        return self.confirm(actor, batch.id)

    def _by_key(self, town: Town, actor: User, key: str) -> IssuanceBatch | None:
        return self.session.scalar(
            select(IssuanceBatch).where(
                IssuanceBatch.idempotency_key == f"{town.id}:{actor.id}:{key}"
            )
        )

    def _preview(
        self,
        actor: User,
        town: Town,
        raw: Sequence[RawRow],
        prog: IssuableProgramme,
        reason: str,
        key: str,
        source: str,
        file_name: str,
        *,
        resolved: list[IssuanceRow] | None = None,
    ) -> IssuanceBatch:
        if not town.points_address:
            raise PointsNotAvailable(N_("This town has no points yet."))
        rows = resolved if resolved is not None else self._resolve(town, raw)
        ready = [r for r in rows if r.status == READY]
        total = sum(int(r.amount or 0) for r in ready)
        batch = IssuanceBatch(
            town_id=town.id,
            programme_id=prog.programme_id,
            reason=reason,
            source=source,
            file_name=file_name,
            state=PREVIEWED,
            idempotency_key=f"{town.id}:{actor.id}:{key}",
            total=Decimal(total),
            ready_rows=len(ready),
            invalid_rows=len(rows) - len(ready),
            four_eyes_amount=Decimal(limits.town_limit(self.session, town.id, FOUR_EYES_FIELD)),
            created_by=actor.id,
            created_at=self._now(),
        )
        self.session.add(batch)
        try:
            self.session.flush()
            for r in rows:
                r.batch_id = batch.id
            self.session.add_all(rows)
            self.session.add(
                AuditLog(
                    actor=f"user:{actor.id}",
                    action="points.issuance.create",
                    subject_type="issuance_batch",
                    subject_id=str(batch.id),
                    amount=Decimal(total),
                    reason=reason,
                    details={
                        "town_id": town.id,
                        "programme_id": prog.programme_id,
                        "rows": len(rows),
                        "ready_rows": len(ready),
                        "source": source,
                    },
                )
            )
            self.session.commit()
        except IntegrityError:  # the same key at the same moment: the first batch stands
            self.session.rollback()
            found = self._by_key(town, actor, key)
            if found is None:
                raise
            return found
        except Exception:
            self.session.rollback()
            raise
        return batch

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

    # ------------------------------------------------------------------ confirm and approve

    def confirm(self, actor: User | None, batch_id: object) -> IssuanceBatch:
        """Staff confirm a previewed batch: its chunks are queued, or it waits for a second
        member of staff when its total is above the town's four-eyes amount. Confirming again
        (or ten times at once) returns the batch and queues nothing more."""
        batch = self._batch(batch_id)
        actor = require_town_role(actor, batch.town_id, STAFF)
        if batch.state != PREVIEWED:
            return batch
        if batch.ready_rows == 0:
            raise IssuanceNotReady(
                N_("No row can be issued: correct the file and upload it again.")
            )
        limit = limits.town_limit(self.session, batch.town_id, FOUR_EYES_FIELD)
        target = AWAITING_APPROVAL if int(batch.total) > limit else CONFIRMED
        now = self._now()
        won = self.session.execute(
            update(IssuanceBatch)
            .where(IssuanceBatch.id == batch.id, IssuanceBatch.state == PREVIEWED)
            .values(
                state=target,
                confirmed_by=actor.id,
                confirmed_at=now,
                four_eyes_amount=Decimal(limit),
            )
            .execution_options(synchronize_session=False)
        )
        if won.rowcount != 1:  # type: ignore[attr-defined]  # another confirm won
            self.session.rollback()
            return self._batch(batch.id)
        try:
            self.session.refresh(batch)
            self._audit(actor, batch, "points.issuance.confirm", state=target)
            if target == CONFIRMED:
                self._queue_chunks(actor, batch)
            self.session.commit()
        except Exception:
            self.session.rollback()
            raise
        return batch

    def approve(self, actor: User | None, batch_id: object) -> IssuanceBatch:
        """Four eyes: another member of the town's staff than the one who created or
        confirmed the batch approves it, and its chunks are queued. Approving again returns
        the batch."""
        batch = self._batch(batch_id)
        actor = require_town_role(actor, batch.town_id, STAFF)
        if batch.state in (APPROVED, SENDING, DONE, FAILED) and batch.approved_by is not None:
            return batch
        if batch.state != AWAITING_APPROVAL:
            raise IssuanceNotReady(N_("This issuance is not waiting for approval."))
        if actor.id in (batch.created_by, batch.confirmed_by):
            raise SecondApproverRequired(
                N_("Another member of staff must approve: you created or confirmed this issuance.")
            )
        won = self.session.execute(
            update(IssuanceBatch)
            .where(IssuanceBatch.id == batch.id, IssuanceBatch.state == AWAITING_APPROVAL)
            .values(state=APPROVED, approved_by=actor.id, approved_at=self._now())
            .execution_options(synchronize_session=False)
        )
        if won.rowcount != 1:  # type: ignore[attr-defined]
            self.session.rollback()
            return self._batch(batch.id)
        try:
            self.session.refresh(batch)
            self._audit(actor, batch, "points.issuance.approve")
            self._queue_chunks(actor, batch)
            self.session.commit()
        except Exception:
            self.session.rollback()
            raise
        return batch

    def _audit(self, actor: User, batch: IssuanceBatch, action: str, **details: Any) -> None:
        self.session.add(
            AuditLog(
                actor=f"user:{actor.id}",
                action=action,
                subject_type="issuance_batch",
                subject_id=str(batch.id),
                amount=batch.total,
                reason=batch.reason,
                details={
                    "town_id": batch.town_id,
                    "programme_id": batch.programme_id,
                    "recipients": batch.ready_rows,
                    **details,
                },
            )
        )

    def _queue_chunks(self, actor: User, batch: IssuanceBatch) -> None:
        """One outbox row per CHUNK_SIZE ready rows (in line order), in the caller's
        transaction; the key issuing.batch:<id>:chunk:<n> makes a repeat a no-op."""
        town = self.session.get(Town, batch.town_id)
        if town is None or not town.points_address:
            raise PointsNotAvailable(N_("This town has no points yet."))
        pid, chain_reason = batch.programme_id, self._chain_reason(town.id, batch.programme_id)
        rows = list(
            self.session.scalars(
                select(IssuanceRow)
                .where(IssuanceRow.batch_id == batch.id, IssuanceRow.status == READY)
                .order_by(IssuanceRow.line)
            )
        )
        outbox = self._outbox()
        for n, start in enumerate(range(0, len(rows), CHUNK_SIZE)):
            part = rows[start : start + CHUNK_SIZE]
            amounts = [int(r.amount or 0) for r in part]
            chunk = IssuanceChunk(
                batch_id=batch.id,
                number=n,
                recipients=len(part),
                total=Decimal(sum(amounts)),
                status=QUEUED,
            )
            self.session.add(chunk)
            self.session.flush()
            tx = outbox.enqueue(
                self.session,
                ContractCall(
                    town.points_address,
                    "issueBatch",
                    ([str(r.address) for r in part], amounts, pid, chain_reason),
                    artifact_name="RegionPoints",
                ),
                sender=Sender.role("issuer", town_id=town.id),
                key=f"issuing.batch:{batch.id}:chunk:{n}",
                subject=Subject("issuance_chunk", chunk.id),
                audit=AuditEntry(
                    actor=f"user:{actor.id}",
                    action="points.issue_batch",
                    subject_type="issuance_batch",
                    subject_id=str(batch.id),
                    amount=sum(amounts),
                    reason=batch.reason,
                    details={
                        "town_id": town.id,
                        "programme_id": pid,
                        "chunk": n,
                        "recipients": len(part),
                    },
                ),
            )
            chunk.outbox_tx_id = tx.id
            for r in part:
                r.status = QUEUED
                r.chunk_id = chunk.id

    # ------------------------------------------------------------------ reading and progress

    def _batch(self, batch_id: object) -> IssuanceBatch:
        i = db_id_or_none(batch_id)
        batch = self.session.get(IssuanceBatch, i) if i else None
        if batch is None:
            raise IssuanceNotFound(N_("There is no such issuance."))
        return batch

    def batch(self, actor: User | None, town: Town, batch_id: object) -> IssuanceBatch:
        """One batch of `town`, its progress brought up to date (town STAFF only)."""
        actor = require_town_role(actor, town.id, STAFF)
        batch = self._batch(batch_id)
        if batch.town_id != town.id:
            raise IssuanceNotFound(N_("There is no such issuance."))
        if batch.state in IN_FLIGHT:
            refresh(self.session, [batch], self._now())
            self.session.commit()
        return batch

    def batches(self, actor: User | None, town: Town, limit: int = 50) -> list[IssuanceBatch]:
        """The town's latest batches, newest first (town STAFF only)."""
        require_town_role(actor, town.id, STAFF)
        return list(
            self.session.scalars(
                select(IssuanceBatch)
                .where(IssuanceBatch.town_id == town.id)
                .order_by(IssuanceBatch.id.desc())
                .limit(limit)
            )
        )

    def rows(self, batch: IssuanceBatch) -> list[IssuanceRow]:
        return list(
            self.session.scalars(
                select(IssuanceRow)
                .where(IssuanceRow.batch_id == batch.id)
                .order_by(IssuanceRow.line)
            )
        )

    def progress(self, batch: IssuanceBatch) -> Progress:
        counts = dict(
            self.session.execute(
                select(IssuanceRow.status, func.count())
                .where(IssuanceRow.batch_id == batch.id)
                .group_by(IssuanceRow.status)
            ).all()
        )
        return Progress(
            queued=int(counts.get(QUEUED, 0) + counts.get(READY, 0)),
            sent=int(counts.get(SENT, 0)),
            confirmed=int(counts.get(ROW_CONFIRMED, 0)),
            failed=int(counts.get(ROW_FAILED, 0)),
            invalid=int(counts.get(INVALID, 0)),
        )

    def can_approve(self, user: User | None, batch: IssuanceBatch) -> bool:
        return (
            user is not None
            and batch.state == AWAITING_APPROVAL
            and user.id not in (batch.created_by, batch.confirmed_by)
        )


# ---------------------------------------------------------------------- following the chain


def refresh(session: Session, batches: Sequence[IssuanceBatch], now: dt.datetime) -> None:
    """Bring in-flight batches up to date with their outbox rows (the caller commits): a chunk
    whose call was sent is "sent", one the outbox gave up on (or that reverted) is "failed"
    with its rows; a batch is "sending" once a chunk is on its way, then "done" when every
    chunk is confirmed (by the indexer, handlers.py) or "failed" when every chunk is final
    and one failed."""
    for batch in batches:
        chunks = list(
            session.scalars(select(IssuanceChunk).where(IssuanceChunk.batch_id == batch.id))
        )
        open_ids = [c.outbox_tx_id for c in chunks if c.status in (QUEUED, SENT) and c.outbox_tx_id]
        states = chain.outbox_states(session, [i for i in open_ids if i is not None])
        for chunk in chunks:
            st = states.get(chunk.outbox_tx_id or 0)
            if st is None or chunk.status not in (QUEUED, SENT):
                continue
            if st.state in _OUTBOX_FAILED:
                chunk.status = ROW_FAILED
                chunk.error = (st.error or st.state)[:500]
                _set_rows(
                    session,
                    chunk,
                    ROW_FAILED,
                    N_("The chain did not take this issue (%(why)s)."),
                    why=chunk.error,
                )
            elif st.state in _OUTBOX_SENT and chunk.status == QUEUED:
                chunk.status = SENT
                _set_rows(session, chunk, SENT)
        settle_batch(session, batch, chunks, now)


def settle_batch(
    session: Session, batch: IssuanceBatch, chunks: Sequence[IssuanceChunk], now: dt.datetime
) -> None:
    """The batch's state from its chunks' (the caller commits)."""
    if batch.state not in (*IN_FLIGHT, DONE, FAILED) or not chunks:
        return
    statuses = {c.status for c in chunks}
    if statuses <= {ROW_CONFIRMED}:
        batch.state, batch.finished_at = DONE, batch.finished_at or now
    elif statuses <= {ROW_CONFIRMED, ROW_FAILED}:
        batch.state, batch.finished_at = FAILED, batch.finished_at or now
    elif statuses & {SENT, ROW_CONFIRMED, ROW_FAILED} or batch.state in (DONE, FAILED, SENDING):
        # on its way, or a reorg took a confirmed chunk back
        batch.state, batch.finished_at = SENDING, None


def _set_rows(
    session: Session, chunk: IssuanceChunk, status: str, error: str = "", **args: Any
) -> None:
    session.execute(
        update(IssuanceRow)
        .where(IssuanceRow.chunk_id == chunk.id)
        .values(status=status, error=error, error_args=json.dumps(args) if args else "")
        .execution_options(synchronize_session=False)
    )


def refresh_in_flight(session: Session, now: dt.datetime) -> int:
    """Refresh every in-flight batch (the beat task); returns how many there were."""
    batches = list(session.scalars(select(IssuanceBatch).where(IssuanceBatch.state.in_(IN_FLIGHT))))
    refresh(session, batches, now)
    return len(batches)


def issuing_service() -> IssuingService:
    """An IssuingService for the current app and request."""
    return IssuingService(
        get_db().session(),
        merchants=merchant_service(),
        settings=town_settings_service(),
        outbox=chain.outbox_service,
    )
