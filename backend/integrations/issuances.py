"""Issuances asked for by a service through /api/v1 (issue 14 §2).

One request (one issuance, or a batch of up to MAX_BATCH) is ONE transaction:

1. Every item is checked first (recipient text, a whole amount from 1 to MAX_AMOUNT, a
   programme id, a reason, an idempotency key): InvalidInput (400) names the item and field.
2. Idempotency: an item whose key the service used before is that issuance again (same id,
   nothing more issued); the same key with another body is IdempotencyKeyReused (409). The
   key is UNIQUE per service in the database, so two requests at once with one key make one
   issuance: the loser's insert fails, it rolls back (its budget too) and answers the winner's.
3. The new items: the programme must be one the service may use and the town issues now
   (ProgrammeNotAllowed), each amount within the service's cap (AmountOverCap), each
   recipient resolved by issuing (InvalidRecipient, listing every bad item).
4. The budgets (budgets.py) are raised by the new items' total, or BudgetExceeded (409).
5. Issuing's batch (confirmed at once; chunks of its CHUNK_SIZE, one outbox row each), one
   per programme of the request, an `api_issuances` row and an audit row per item
   with the service as actor; one commit. Any error before the commit writes nothing.

A service sees only its own issuances: another's id is IssuanceNotFound (404), as is an id
that does not exist.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.core.db import get_db, utcnow
from backend.core.errors import N_, InvalidInput
from backend.core.models import AuditLog
from backend.core.numbers import MAX_DB_ID, ascii_int, db_id_or_none
from backend.integrations import budgets
from backend.integrations.errors import (
    AmountOverCap,
    ApiIssuanceNotFound,
    IdempotencyKeyReused,
    InvalidRecipient,
    ProgrammeNotAllowed,
)
from backend.integrations.models import (
    API_STATES,
    CONFIRMED,
    FAILED,
    PENDING,
    ApiIssuance,
    ServiceAccount,
)
from backend.issuing.for_services import RowState, ServiceIssuing, service_issuing
from backend.issuing.models import READY, ROW_CONFIRMED, ROW_FAILED
from backend.issuing.recipients import MAX_RECIPIENT, _key, _reason, row_error
from backend.regions.models import Town

MAX_BATCH = 1000  # issuances in one batch request
MAX_AMOUNT = 10**12  # points in one issuance, whatever the cap
MAX_LIST = 1000  # issuances in one list answer
FIELDS = ("recipient", "amount", "programme", "reason", "idempotency_key")


@dataclass(frozen=True)
class Asked:
    """One checked issuance request."""

    recipient: str
    amount: int
    programme: int
    reason: str
    key: str
    index: int | None = None  # its place in a batch request (errors name it)

    @property
    def digest(self) -> str:
        body = {
            "recipient": self.recipient,
            "amount": self.amount,
            "programme": self.programme,
            "reason": self.reason,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class IssuanceView:
    """An issuance as its service sees it."""

    issuance: ApiIssuance
    status: str  # PENDING, CONFIRMED or FAILED
    tx_hash: str | None
    failure_reason: str
    replayed: bool = False  # answered from an earlier request with the same key

    def json(self) -> dict[str, Any]:
        i = self.issuance
        return {
            "id": i.id,
            "status": self.status,
            "idempotency_key": i.idempotency_key,
            "recipient": i.recipient,
            "amount": int(i.amount),
            "programme": i.programme_id,
            "reason": i.reason,
            "created_at": i.created_at.isoformat(),
            "tx_hash": self.tx_hash,
            "failure_reason": self.failure_reason or None,
            "replayed": self.replayed,
        }


def api_state(row_status: str) -> str:
    """Issuing's row status as the service sees it."""
    if row_status == ROW_CONFIRMED:
        return CONFIRMED
    if row_status == ROW_FAILED:
        return FAILED
    return PENDING


def _item_error(exc: InvalidInput, index: int | None) -> InvalidInput:
    if index is not None:
        exc.details["index"] = index
    return exc


def parse_item(data: object, index: int | None = None) -> Asked:
    """One issuance request checked (InvalidInput naming the field, and the item's index in a
    batch); writes nothing."""
    if not isinstance(data, dict):
        raise _item_error(InvalidInput(N_("Each issuance is a JSON object.")), index)
    try:
        recipient = data.get("recipient")
        if not isinstance(recipient, str) or not recipient.strip():
            raise InvalidInput(N_("Give the recipient."), field="recipient")
        if len(recipient.strip()) > MAX_RECIPIENT:
            raise InvalidInput(N_("The recipient is too long."), field="recipient")
        amount = data.get("amount")
        if not isinstance(amount, int) or isinstance(amount, bool) or not 1 <= amount <= MAX_AMOUNT:
            raise InvalidInput(
                N_("The amount must be a whole number of points from 1 to %(max)d."),
                field="amount",
                max=MAX_AMOUNT,
            )
        programme = data.get("programme")
        pid = db_id_or_none(programme) if isinstance(programme, int) else None
        if pid is None:
            raise InvalidInput(N_("Give the programme's id (a number)."), field="programme")
        reason = _reason(data.get("reason"))
        key = _key(data.get("idempotency_key"))
    except InvalidInput as exc:
        raise _item_error(exc, index) from None
    return Asked(recipient.strip(), amount, pid, reason, key, index)


class ApiIssuingService:
    """A service's issuances over one DB session."""

    def __init__(
        self,
        session: Session,
        *,
        issuing: ServiceIssuing,
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.session = session
        self.issuing = issuing
        self._now = now

    # ------------------------------------------------------------------ asking

    def issue(self, account: ServiceAccount, body: object) -> IssuanceView:
        """One issuance (see the module's docstring)."""
        return self._issue(account, [parse_item(body)])[0]

    def issue_batch(self, account: ServiceAccount, body: object) -> list[IssuanceView]:
        """Up to MAX_BATCH issuances in one request, answered in the request's order."""
        items = body.get("issuances") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise InvalidInput(N_("Give a list of issuances."), field="issuances")
        if len(items) > MAX_BATCH:
            raise InvalidInput(
                N_("At most %(max)d issuances in one request."), field="issuances", max=MAX_BATCH
            )
        asked = [parse_item(item, i) for i, item in enumerate(items)]
        seen: dict[str, int] = {}
        for i, a in enumerate(asked):
            if seen.setdefault(a.key, i) != i:
                raise InvalidInput(
                    N_("The idempotency key of item %(index)d is the same as item %(first)d's."),
                    field="idempotency_key",
                    index=i,
                    first=seen[a.key],
                )
        return self._issue(account, asked)

    def _issue(self, account: ServiceAccount, asked: Sequence[Asked]) -> list[IssuanceView]:
        for attempt in range(2):
            found = self._existing(account, asked)
            new = [a for a in asked if a.key not in found]
            if not new:
                return self._views([found[a.key] for a in asked], replayed={a.key for a in asked})
            try:
                self._create(account, new)
            except IntegrityError:
                # Another request with one of these keys committed first: answer with its
                # issuances (or, if that was not the cause, fail as before).
                self.session.rollback()
                if attempt == 1:
                    raise
                continue
            except Exception:
                self.session.rollback()
                raise
            found = self._existing(account, asked)
            return self._views(
                [found[a.key] for a in asked],
                replayed={a.key for a in asked} - {a.key for a in new},
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _existing(self, account: ServiceAccount, asked: Sequence[Asked]) -> dict[str, ApiIssuance]:
        """The service's issuances with these keys; IdempotencyKeyReused when one was asked
        with another body."""
        keys = [a.key for a in asked]
        found: dict[str, ApiIssuance] = {}
        for start in range(0, len(keys), 500):
            for i in self.session.scalars(
                select(ApiIssuance).where(
                    ApiIssuance.service_account_id == account.id,
                    ApiIssuance.idempotency_key.in_(keys[start : start + 500]),
                )
            ):
                found[i.idempotency_key] = i
        for index, a in enumerate(asked):
            earlier = found.get(a.key)
            if earlier is not None and earlier.request_sha256 != a.digest:
                self.session.rollback()
                raise IdempotencyKeyReused(
                    N_(
                        "This idempotency key was used for another issuance (id %(id)d) with "
                        "other values: nothing was issued."
                    ),
                    id=earlier.id,
                    index=index,
                    field="idempotency_key",
                )
        return found

    def _create(self, account: ServiceAccount, new: Sequence[Asked]) -> None:
        town = self.session.get(Town, account.town_id)
        assert town is not None
        issuable = {p.programme_id: p for p in self.issuing.issuable_programmes(town)}
        for a in new:
            if a.programme not in account.programme_ids or a.programme not in issuable:
                raise _item_error(
                    ProgrammeNotAllowed(
                        N_("This service may not issue from programme %(programme)d."),
                        programme=a.programme,
                        field="programme",
                        allowed=[p for p in account.programme_ids if p in issuable],
                    ),
                    a.index,
                )
            if account.cap_per_issuance is not None and a.amount > account.cap_per_issuance:
                raise _item_error(
                    AmountOverCap(
                        N_("One issuance of this service may give at most %(cap)d points."),
                        cap=int(account.cap_per_issuance),
                        field="amount",
                    ),
                    a.index,
                )
        rows = self.issuing.resolve(town, [(a.recipient, a.amount) for a in new])
        bad = [(i, r) for i, r in enumerate(rows) if r.status != READY]
        if bad:

            def at(j: int) -> int:  # the item's place in the request
                found = new[j].index
                return found if found is not None else j

            i, first = bad[0]
            raise InvalidRecipient(
                N_("Recipient %(index)d: %(why)s"),
                index=at(i),
                why=row_error(first),
                field="recipient",
                invalid=[{"index": at(j), "message": row_error(r)} for j, r in bad[:100]],
            )
        now = self._now()
        budgets.reserve(self.session, account, sum(a.amount for a in new), now)
        # One issuing batch per programme: its chunks carry the programme's reason on chain,
        # whatever each issuance's own reason (kept in api_issuances and the audit log), so a
        # thousand rides with a thousand reasons are still a few issueBatch calls.
        groups: dict[int, list[int]] = {}
        for i, a in enumerate(new):
            groups.setdefault(a.programme, []).append(i)
        made: list[tuple[Asked, ApiIssuance]] = []
        for pid, indexes in groups.items():
            reasons = {new[i].reason for i in indexes}
            batch = self.issuing.queue(
                service_account_id=account.id,
                town=town,
                programme=issuable[pid],
                reason=reasons.pop()
                if len(reasons) == 1
                else f"{account.name_en}: {len(indexes)} issuances",
                key=f"service:{account.id}:{uuid.uuid4().hex}",
                rows=[rows[i] for i in indexes],
            )
            for i in indexes:
                a = new[i]
                issuance = ApiIssuance(
                    service_account_id=account.id,
                    town_id=town.id,
                    idempotency_key=a.key,
                    request_sha256=a.digest,
                    recipient=a.recipient[:300],
                    amount=Decimal(a.amount),
                    programme_id=a.programme,
                    reason=a.reason,
                    batch_id=batch.id,
                    row_id=rows[i].id,
                    created_at=now,
                )
                self.session.add(issuance)
                made.append((a, issuance))
        self.session.flush()  # the UNIQUE (service, key) decides here, before the audit rows
        for a, issuance in made:
            self.session.add(
                AuditLog(
                    actor=f"service:{account.id}",
                    action="points.api_issuance.create",
                    subject_type="api_issuance",
                    subject_id=str(issuance.id),
                    amount=Decimal(a.amount),
                    reason=a.reason,
                    details={
                        "town_id": town.id,
                        "service_account_id": account.id,
                        "programme_id": a.programme,
                        "batch_id": issuance.batch_id,
                        "idempotency_key": a.key,
                    },
                )
            )
        self.session.commit()

    # ------------------------------------------------------------------ reading

    def get(self, account: ServiceAccount, issuance_id: object) -> IssuanceView:
        """One of the service's issuances, brought up to date with the outbox."""
        i = db_id_or_none(issuance_id)
        found = self.session.get(ApiIssuance, i) if i else None
        if found is None or found.service_account_id != account.id:
            raise ApiIssuanceNotFound(N_("There is no such issuance."))
        self._refresh([found])
        return self._views([found])[0]

    def page(
        self,
        account: ServiceAccount,
        *,
        status: object = None,
        after: object = None,
        limit: object = None,
    ) -> list[IssuanceView]:
        """The service's issuances in id order after `after`, at most `limit` (MAX_LIST), only
        those in `status` when given."""
        if status not in (None, "", *API_STATES):
            raise InvalidInput(N_("Unknown status."), field="status")
        n = db_id_or_none(limit) if limit not in (None, "") else 100
        if n is None or n > MAX_LIST:
            raise InvalidInput(
                N_("The limit is a number from 1 to %(max)d."), field="limit", max=MAX_LIST
            )
        start = ascii_int(after) if after not in (None, "") else 0
        if start is None or not 0 <= start <= MAX_DB_ID:
            raise InvalidInput(N_("`after` is an issuance id."), field="after")
        query = select(ApiIssuance).where(
            ApiIssuance.service_account_id == account.id, ApiIssuance.id > start
        )
        # `announced` is the settled state (events.py): "" while the issuance is on its way.
        if status:
            query = query.where(ApiIssuance.announced == ("" if status == PENDING else status))
        rows = list(self.session.scalars(query.order_by(ApiIssuance.id).limit(n)))
        self._refresh(rows)
        return self._views(rows)

    def _refresh(self, issuances: Sequence[ApiIssuance]) -> None:
        """Bring the issuances' batches up to date with the outbox (sent, failed): issuing's
        beat does it every few seconds; a reader should not wait for it."""
        pending = [i.batch_id for i in issuances if i.announced == ""]
        if pending:
            self.issuing.refresh_batches(pending)
            self.session.commit()

    def _views(
        self, issuances: Sequence[ApiIssuance], replayed: set[str] | None = None
    ) -> list[IssuanceView]:
        states = self.issuing.row_states([i.row_id for i in issuances])
        out = []
        for i in issuances:
            st = states.get(i.row_id, RowState("queued", None, ""))
            status = api_state(st.status)
            out.append(
                IssuanceView(
                    i,
                    status,
                    st.tx_hash,
                    st.error if status == FAILED else "",
                    replayed=i.idempotency_key in (replayed or set()),
                )
            )
        return out


def api_issuing_service() -> ApiIssuingService:
    """An ApiIssuingService for the current app and request."""
    return ApiIssuingService(get_db().session(), issuing=service_issuing())
