"""The staff console's "Issuing points" at /towns/<slug>/admin/issue (issue 13 §2): issue to
one person (email, customer code, printed card or address), or upload a CSV of many: preview
-> confirm -> issueBatch on chain, with a progress bar and a result per row (the page polls the
JSON status, webui/static/js/console_issuing.js; without JS it refreshes itself while in
flight). Above the town's four-eyes amount another member of staff approves.

Forms carry csrf_token and a one-time request key, so a double submit is one batch. Rights and
rules live in IssuingService; errors are shown on the page with their 4xx status.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, url_for
from flask_babel import get_locale

from backend.accounts.roles import STAFF, current_user, require_town_role
from backend.claims.services import claim_service
from backend.core.db import get_db
from backend.core.errors import N_, AppError, InvalidInput
from backend.issuing.csv_upload import MAX_FILE_BYTES, MAX_ROWS
from backend.issuing.models import IN_FLIGHT
from backend.issuing.services import issuing_service, row_error, row_held_for
from backend.regions.services import town_by_slug

bp = Blueprint("console_issuing", __name__)


def get_locale_name() -> str:
    return str(get_locale() or "ja")


def _login() -> Response:
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def _index(slug: str, error: AppError | None = None, form: dict[str, str] | None = None):
    town = town_by_slug(slug)
    svc = issuing_service()
    batches = svc.batches(current_user(), town, limit=20)
    context: dict[str, Any] = {
        "town": town,
        "programmes": svc.programmes(current_user(), town),
        "batches": batches,
        "waiting": claim_service().waiting(current_user(), town),
        "one_key": uuid.uuid4().hex,
        "upload_key": uuid.uuid4().hex,
        "error": error and error.translated(),
        "error_form": (form or {}).get("form"),
        "form": form or {},
        "max_rows": MAX_ROWS,
        "max_kb": MAX_FILE_BYTES // 1024,
    }
    return render_template("console/issuing/index.html", **context), (
        error.status if error else 200
    )


@bp.get("/towns/<slug>/admin/issue")
def index(slug: str):
    if current_user() is None:
        return _login()
    return _index(slug)


@bp.post("/towns/<slug>/admin/issue/one")
def issue_one(slug: str):
    if current_user() is None:
        return _login()
    town = town_by_slug(slug)
    f = request.form
    form = {k: f.get(k, "") for k in ("recipient", "amount", "programme_id", "reason", "note")}
    try:
        batch = issuing_service().issue_one(
            current_user(),
            town,
            recipient=f.get("recipient"),
            amount=f.get("amount"),
            programme_id=f.get("programme_id"),
            reason=f.get("reason"),
            key=f.get("key"),
            note=f.get("note", ""),
        )
    except AppError as exc:
        get_db().session.rollback()
        return _index(slug, exc, form | {"form": "one"})
    return redirect(url_for(".batch", slug=slug, batch_id=batch.id), code=303)


@bp.post("/towns/<slug>/admin/issue/upload")
def upload(slug: str):
    if current_user() is None:
        return _login()
    town = town_by_slug(slug)
    f = request.form
    form = {k: f.get(k, "") for k in ("programme_id", "reason")} | {"form": "upload"}
    try:
        require_town_role(current_user(), town.id, STAFF)
        file = request.files.get("file")
        if file is None or not file.filename:
            raise InvalidInput(N_("Choose a CSV file."), field="file")
        batch = issuing_service().preview_csv(
            current_user(),
            town,
            file.read(),
            file_name=file.filename,
            programme_id=f.get("programme_id"),
            reason=f.get("reason"),
            key=f.get("key"),
        )
    except AppError as exc:
        get_db().session.rollback()
        return _index(slug, exc, form)
    return redirect(url_for(".batch", slug=slug, batch_id=batch.id), code=303)


def _batch(slug: str, batch_id: int, error: AppError | None = None):
    town = town_by_slug(slug)
    svc = issuing_service()
    user = current_user()
    batch = svc.batch(user, town, batch_id)
    rows = svc.rows(batch)
    return render_template(
        "console/issuing/batch.html",
        town=town,
        batch=batch,
        rows=rows,
        errors={r.id: row_error(r) for r in rows if r.error},
        held={r.id: text for r in rows if (text := row_held_for(r))},
        progress=svc.progress(batch),
        programme_name=svc.programme_name(town, batch.programme_id, get_locale_name()),
        can_approve=svc.can_approve(user, batch),
        in_flight=batch.state in IN_FLIGHT,
        poll_url=url_for("issuing.issuance", slug=slug, batch_id=batch.id),
        error=error and error.translated(),
    ), (error.status if error else 200)


@bp.get("/towns/<slug>/admin/issue/<int:batch_id>")
def batch(slug: str, batch_id: int):
    if current_user() is None:
        return _login()
    return _batch(slug, batch_id)


@bp.post("/towns/<slug>/admin/issue/<int:batch_id>/confirm")
def confirm(slug: str, batch_id: int):
    if current_user() is None:
        return _login()
    svc = issuing_service()
    try:
        svc.batch(current_user(), town_by_slug(slug), batch_id)  # of this town, staff only
        svc.confirm(current_user(), batch_id)
    except AppError as exc:
        get_db().session.rollback()
        return _batch(slug, batch_id, exc)
    return redirect(url_for(".batch", slug=slug, batch_id=batch_id), code=303)


@bp.post("/towns/<slug>/admin/issue/<int:batch_id>/approve")
def approve(slug: str, batch_id: int):
    if current_user() is None:
        return _login()
    svc = issuing_service()
    try:
        svc.batch(current_user(), town_by_slug(slug), batch_id)
        svc.approve(current_user(), batch_id)
    except AppError as exc:
        get_db().session.rollback()
        return _batch(slug, batch_id, exc)
    return redirect(url_for(".batch", slug=slug, batch_id=batch_id), code=303)
