"""The staff console's "Events" at /towns/<slug>/admin/events (issue 14 §4):

- town staff create an event (names in ja/en, place, start and end in Japan time, the points
  for attending and the "event prize" programme they come from), edit it, cancel it, and
  show its check-in QR to print or put on a screen (/qr), or renew the QR when a photo of it
  travels beyond the venue;
- venue staff (and town staff) check attendees in by their customer code or printed card and
  see who checked in with the state of their points. The code field (id "attendee-code") has
  the camera scanner (components/qr_scan.html); typing always works.

Forms carry csrf_token (and the create form a one-time key), so a double submit is one event
and one check-in. Rights and rules live in EventService; an error is shown on the page with
its 4xx status and changes nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, url_for
from flask_babel import get_locale

from backend.accounts.roles import STAFF, current_user, has_town_role
from backend.core.db import get_db
from backend.core.errors import AppError
from backend.events.models import CANCELLED
from backend.events.services import MAX_POINTS, event_service, jst_input
from backend.regions.models import Town
from backend.regions.services import town_by_slug
from webui.shared import qr_svg

bp = Blueprint("console_events", __name__)

FIELDS = (
    "name_ja",
    "name_en",
    "place_ja",
    "place_en",
    "starts_at",
    "ends_at",
    "points",
    "programme_id",
)


def _locale() -> str:
    return str(get_locale() or "ja")


def _login() -> Response:
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def _form() -> dict[str, str]:
    return {k: request.form.get(k, "") for k in FIELDS}


def _index(town: Town, error: AppError | None = None, form: dict[str, str] | None = None):
    user = current_user()
    svc = event_service()
    events = svc.town_events(user, town)  # STAFF or venue staff (403 otherwise)
    is_staff = has_town_role(user, town.id, STAFF)
    context: dict[str, Any] = {
        "town": town,
        "events": events,
        "is_staff": is_staff,
        "programmes": svc.programmes(user, town) if is_staff else [],
        "key": uuid.uuid4().hex,
        "form": form or {},
        "error": error and error.translated(),
        "error_field": error.details.get("field") if error else None,
        "running": svc.is_running,
        "now": svc.now(),
        "max_points": MAX_POINTS,
    }
    return render_template("console/events/index.html", **context), (error.status if error else 200)


@bp.get("/towns/<slug>/admin/events")
def index(slug: str):
    if current_user() is None:
        return _login()
    return _index(town_by_slug(slug))


@bp.post("/towns/<slug>/admin/events")
def create(slug: str):
    if current_user() is None:
        return _login()
    town = town_by_slug(slug)
    form = _form()
    try:
        ev = event_service().create(current_user(), town, form, request.form.get("key"))
    except AppError as exc:
        get_db().session.rollback()
        return _index(town, exc, form)
    return redirect(url_for(".event", slug=slug, event_id=ev.id, notice="created"), code=303)


def _event(
    town: Town,
    event_id: int,
    error: AppError | None = None,
    form: dict[str, str] | None = None,
    which: str = "",
):
    user = current_user()
    svc = event_service()
    ev = svc.staff_event(user, town, event_id)
    is_staff = has_town_role(user, town.id, STAFF)
    values = form or {
        "name_ja": ev.name_ja,
        "name_en": ev.name_en,
        "place_ja": ev.place_ja,
        "place_en": ev.place_en,
        "starts_at": jst_input(ev.starts_at),
        "ends_at": jst_input(ev.ends_at),
        "points": str(ev.points),
        "programme_id": str(ev.programme_id),
    }
    context: dict[str, Any] = {
        "town": town,
        "event": ev,
        "is_staff": is_staff,
        "cancelled": ev.status == CANCELLED,
        "running": svc.is_running(ev),
        "programmes": svc.programmes(user, town) if is_staff else [],
        "programme_name": svc.programme_name(town, ev.programme_id, _locale()),
        "attendees": svc.attendees(user, town, ev),
        "form": values,
        "which": which,
        "code": request.form.get("code", "") if which == "check_in" else "",
        "error": error and error.translated(),
        "error_field": error.details.get("field") if error else None,
        "notice": request.args.get("notice", ""),
        "max_points": MAX_POINTS,
    }
    return render_template("console/events/event.html", **context), (error.status if error else 200)


@bp.get("/towns/<slug>/admin/events/<int:event_id>")
def event(slug: str, event_id: int):
    if current_user() is None:
        return _login()
    return _event(town_by_slug(slug), event_id)


@bp.post("/towns/<slug>/admin/events/<int:event_id>/edit")
def edit(slug: str, event_id: int):
    if current_user() is None:
        return _login()
    town = town_by_slug(slug)
    form = _form()
    try:
        event_service().update(current_user(), town, event_id, form)
    except AppError as exc:
        get_db().session.rollback()
        return _event(town, event_id, exc, form, "edit")
    return redirect(url_for(".event", slug=slug, event_id=event_id, notice="saved"), code=303)


@bp.post("/towns/<slug>/admin/events/<int:event_id>/cancel")
def cancel(slug: str, event_id: int):
    if current_user() is None:
        return _login()
    town = town_by_slug(slug)
    try:
        event_service().cancel(current_user(), town, event_id)
    except AppError as exc:
        get_db().session.rollback()
        return _event(town, event_id, exc, which="cancel")
    return redirect(url_for(".event", slug=slug, event_id=event_id, notice="cancelled"), code=303)


@bp.post("/towns/<slug>/admin/events/<int:event_id>/qr")
def renew_qr(slug: str, event_id: int):
    if current_user() is None:
        return _login()
    town = town_by_slug(slug)
    try:
        event_service().renew_qr(current_user(), town, event_id)
    except AppError as exc:
        get_db().session.rollback()
        return _event(town, event_id, exc, which="qr")
    return redirect(url_for(".event", slug=slug, event_id=event_id, notice="renewed"), code=303)


@bp.post("/towns/<slug>/admin/events/<int:event_id>/check-in")
def check_in(slug: str, event_id: int):
    if current_user() is None:
        return _login()
    town = town_by_slug(slug)
    try:
        event_service().check_in_by_staff(
            current_user(), town, event_id, request.form.get("code", "")
        )
    except AppError as exc:
        get_db().session.rollback()
        return _event(town, event_id, exc, which="check_in")
    return redirect(url_for(".event", slug=slug, event_id=event_id, notice="checked_in"), code=303)


@bp.get("/towns/<slug>/admin/events/<int:event_id>/qr")
def qr(slug: str, event_id: int):
    """The event's check-in QR, big, to print or show on a screen at the venue."""
    if current_user() is None:
        return _login()
    town = town_by_slug(slug)
    svc = event_service()
    ev = svc.staff_event(current_user(), town, event_id)
    link = url_for(
        "events.check_in", slug=slug, event_id=ev.id, t=svc.check_in_token(ev), _external=True
    )
    resp = Response(
        render_template("console/events/qr.html", town=town, event=ev, link=link, qr=qr_svg(link))
    )
    resp.headers["Cache-Control"] = "no-store"
    return resp
