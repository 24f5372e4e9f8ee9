"""The public events pages (issue 14 §4):

- /towns/<slug>/events: the upcoming events of the town and of its partner towns, so that
  point users of both towns hear of each other's events;
- /towns/<slug>/events/<id>: one event (names, place, time in Japan time, the points);
- /towns/<slug>/events/<id>/check-in?t=<token>: where the event's QR points. A signed-in
  person confirms (POST, csrf_token) and gets the points once; the page then shows them on
  their way and, once the chain has confirmed them, arrived (it reloads itself while they
  are pending). Opening it again says they already checked in.

Rights and rules (the token, the window, once per person) live in EventService; an error is
shown on the page with its 4xx status.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, url_for
from flask_babel import get_locale

from backend.accounts.roles import current_user
from backend.core.db import get_db
from backend.core.errors import AppError
from backend.events.errors import CheckInTokenInvalid
from backend.events.models import CANCELLED
from backend.events.services import event_service, jst
from backend.regions.services import town_by_slug

bp = Blueprint("events", __name__)

PENDING_REFRESH_SECONDS = 3  # how often the check-in page looks again while points are on their way


def _locale() -> str:
    return str(get_locale() or "ja")


@bp.get("/towns/<slug>/events")
def upcoming(slug: str):
    town = town_by_slug(slug)
    svc = event_service()
    return render_template(
        "events/list.html",
        town=town,
        listed=svc.upcoming(town),
        running=svc.is_running,
        jst=jst,
    )


@bp.get("/towns/<slug>/events/<int:event_id>")
def event(slug: str, event_id: int):
    town = town_by_slug(slug)
    svc = event_service()
    ev = svc.public_event(town, event_id)
    return render_template(
        "events/event.html",
        town=town,
        event=ev,
        running=svc.is_running(ev),
        cancelled=ev.status == CANCELLED,
        now=svc.now(),
        jst=jst,
    )


def _check_in_page(slug: str, event_id: int, error: AppError | None = None) -> tuple[str, int]:
    town = town_by_slug(slug)
    svc = event_service()
    ev = svc.public_event(town, event_id)
    token = request.values.get("t", "")
    user = current_user()
    assert user is not None  # noqa: S101 - the routes sign in first
    svc.check_token(ev, token)  # a guessed or old link is 403 before anything is shown
    mine = svc.my_check_in(user, ev)
    closed: str = ""
    if mine is None and error is None:
        try:
            svc.require_running(ev)
        except AppError as exc:
            closed = exc.translated()
    context: dict[str, Any] = {
        "town": town,
        "event": ev,
        "token": token,
        "mine": mine,
        "closed": closed,
        "error": error and error.translated(),
        "error_code": error.code if error else "",
        "just_done": request.args.get("done") == "1",
        "refresh": PENDING_REFRESH_SECONDS if mine and mine.points_state == "pending" else 0,
        "jst": jst,
    }
    return render_template("events/check_in.html", **context), (error.status if error else 200)


def _login() -> Response:
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


@bp.get("/towns/<slug>/events/<int:event_id>/check-in")
def check_in(slug: str, event_id: int):
    if current_user() is None:
        event_service().public_event(town_by_slug(slug), event_id)  # 404 first
        return _login()
    body, status = _check_in_page(slug, event_id)
    resp = Response(body, status)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.post("/towns/<slug>/events/<int:event_id>/check-in")
def check_in_post(slug: str, event_id: int):
    town = town_by_slug(slug)
    svc = event_service()
    svc.public_event(town, event_id)  # 404 before anything else
    token = request.form.get("t", "")
    if current_user() is None:
        return redirect(
            url_for("auth.login", next=url_for(".check_in", slug=slug, event_id=event_id, t=token))
        )
    try:
        svc.check_in_self(current_user(), town, event_id, token)
    except CheckInTokenInvalid:
        get_db().session.rollback()
        raise  # the error page: nothing about the event is shown for a bad link
    except AppError as exc:
        get_db().session.rollback()
        return _check_in_page(slug, event_id, exc)
    return redirect(url_for(".check_in", slug=slug, event_id=event_id, t=token, done="1"), code=303)
