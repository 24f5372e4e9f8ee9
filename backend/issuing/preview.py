"""Previewing an issuance (issue 13 §2): rows from an uploaded CSV (csv_upload.py) or a
form/API list, each resolved to a ready row or its error, stored as a previewed batch. The
batch's idempotency key is UNIQUE: the same form or upload twice is one batch.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from backend.accounts.models import User
from backend.accounts.roles import STAFF, require_town_role
from backend.core.errors import N_, InvalidInput
from backend.core.models import AuditLog
from backend.issuing.csv_upload import MAX_ROWS, RawRow, read_rows
from backend.issuing.models import (
    PREVIEWED,
    READY,
    IssuanceBatch,
    IssuanceRow,
)
from backend.issuing.recipients import (
    FOUR_EYES_FIELD,
    IssuableProgramme,
    IssuingBase,
    _key,
    _reason,
)
from backend.merchants import limits
from backend.points.errors import PointsNotAvailable
from backend.regions.models import Town


class IssuingPreview(IssuingBase):
    """Preview: nothing is issued until IssuingService.confirm."""

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
        return self._preview(actor, town, rows, prog, why, k, "csv", _file_name(file_name))

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


def _file_name(name: object) -> str:
    """The uploaded file's name as shown with its batch: without control characters (a NUL,
    which PostgreSQL cannot store, was a 500; a lone surrogate likewise), at most 200."""
    text = name if isinstance(name, str) else ""
    return "".join(c for c in text if unicodedata.category(c)[0] != "C")[:200]
