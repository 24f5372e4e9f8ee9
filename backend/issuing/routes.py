"""Issuing JSON API (issue 13 §2): preview a batch (JSON rows or a CSV file), confirm it,
approve it (four eyes), and read its progress with a result per row. Town staff only."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from backend.accounts.roles import current_user
from backend.core.errors import N_, InvalidInput, json_object
from backend.issuing.models import IssuanceBatch
from backend.issuing.services import IssuingService, issuing_service, row_error, row_held_for
from backend.regions.services import town_by_slug

bp = Blueprint("issuing", __name__)


def batch_json(
    svc: IssuingService, batch: IssuanceBatch, *, with_rows: bool = True
) -> dict[str, Any]:
    """A batch, its progress and (when asked) every row with its status and error."""
    p = svc.progress(batch)
    out: dict[str, Any] = {
        "id": batch.id,
        "state": batch.state,
        "programme_id": batch.programme_id,
        "reason": batch.reason,
        "source": batch.source,
        "total": int(batch.total),
        "ready_rows": batch.ready_rows,
        "invalid_rows": batch.invalid_rows,
        "needs_approval": batch.needs_approval,
        "four_eyes_amount": int(batch.four_eyes_amount),
        "created_by": batch.created_by,
        "confirmed_by": batch.confirmed_by,
        "approved_by": batch.approved_by,
        "created_at": batch.created_at.isoformat(),
        "progress": {
            "queued": p.queued,
            "sent": p.sent,
            "confirmed": p.confirmed,
            "failed": p.failed,
            "invalid": p.invalid,
            "percent": p.percent,
        },
    }
    if with_rows:
        out["rows"] = [
            {
                "line": r.line,
                "recipient": r.recipient,
                "kind": r.kind,
                "address": r.address,
                "amount": int(r.amount) if r.amount is not None else None,
                "note": r.note,
                "status": r.status,
                "error": row_error(r),
                "held": r.held and r.status != "invalid",
                "held_for": row_held_for(r),
            }
            for r in svc.rows(batch)
        ]
    return out


@bp.get("/api/towns/<slug>/issuances")
def list_issuances(slug: str) -> Response:
    svc = issuing_service()
    rows = svc.batches(current_user(), town_by_slug(slug))
    return jsonify(issuances=[batch_json(svc, b, with_rows=False) for b in rows])


@bp.post("/api/towns/<slug>/issuances")
def create_issuance(slug: str) -> tuple[Response, int]:
    """A previewed batch from JSON rows, or from a CSV file (multipart: file, programme_id,
    reason, idempotency_key). Nothing is issued before confirm."""
    town = town_by_slug(slug)
    svc = issuing_service()
    if request.mimetype == "multipart/form-data":
        f = request.files.get("file")
        if f is None:
            raise InvalidInput(N_("Choose a CSV file."), field="file")
        batch = svc.preview_csv(
            current_user(),
            town,
            f.read(),
            file_name=f.filename or "",
            programme_id=request.form.get("programme_id"),
            reason=request.form.get("reason"),
            key=request.form.get("idempotency_key"),
        )
    else:
        data = json_object()
        batch = svc.preview(
            current_user(),
            town,
            data.get("rows"),  # type: ignore[arg-type]
            programme_id=data.get("programme_id"),
            reason=data.get("reason"),
            key=data.get("idempotency_key"),
        )
    return jsonify(issuance=batch_json(svc, batch)), 201


@bp.get("/api/towns/<slug>/issuances/<int:batch_id>")
def issuance(slug: str, batch_id: int) -> Response:
    svc = issuing_service()
    batch = svc.batch(current_user(), town_by_slug(slug), batch_id)
    return jsonify(issuance=batch_json(svc, batch, with_rows=request.args.get("rows") != "0"))


@bp.post("/api/towns/<slug>/issuances/<int:batch_id>/confirm")
def confirm_issuance(slug: str, batch_id: int) -> Response:
    svc = issuing_service()
    batch = svc.batch(current_user(), town_by_slug(slug), batch_id)
    batch = svc.confirm(current_user(), batch.id)
    return jsonify(issuance=batch_json(svc, batch, with_rows=False))


@bp.post("/api/towns/<slug>/issuances/<int:batch_id>/approve")
def approve_issuance(slug: str, batch_id: int) -> Response:
    svc = issuing_service()
    batch = svc.batch(current_user(), town_by_slug(slug), batch_id)
    batch = svc.approve(current_user(), batch.id)
    return jsonify(issuance=batch_json(svc, batch, with_rows=False))
