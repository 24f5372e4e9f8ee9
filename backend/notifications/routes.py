"""Notifications JSON API: the signed-in person's notifications (newest first, in the request's
language), marking them read, and their switches per kind and channel. The same rules as the
pages (webui/notifications_pages.py), all in backend/notifications/services.py."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from flask_babel import get_locale

from backend.accounts.errors import AuthenticationRequired
from backend.accounts.models import User
from backend.accounts.roles import current_user
from backend.core.errors import N_, json_object
from backend.notifications.models import CHANNELS, KINDS, Notification
from backend.notifications.services import NotificationService, notification_service
from backend.notifications.texts import describe

bp = Blueprint("notifications", __name__)


def _signed_in() -> User:
    user = current_user()
    if user is None:
        raise AuthenticationRequired(N_("Please sign in."))
    return user


def _item(n: Notification, locale: str) -> dict[str, Any]:
    text = describe(n.kind, n.params, locale)
    return {
        "id": n.id,
        "kind": n.kind,
        "title": text.title,
        "body": text.body,
        "link": text.link,
        "created_at": n.created_at.isoformat(),
        "read_at": n.read_at.isoformat() if n.read_at else None,
    }


def _switches(svc: NotificationService, user: User) -> dict[str, Any]:
    on = svc.switches(user)
    return {
        "switches": {k: {c: on[(k, c)] for c in CHANNELS} for k in KINDS},
        # Mail goes to verified addresses only (ADR 0011): a client says why none arrives.
        "email_verified": user.email is not None and user.email_verified_at is not None,
    }


@bp.get("/api/me/notifications")
def inbox() -> Response:
    user = _signed_in()
    svc = notification_service()
    box = svc.inbox(user, request.args.get("before"))
    locale = str(get_locale())
    return jsonify(
        notifications=[_item(n, locale) for n in box.items],
        older=box.older,
        unread=svc.unread_count(user),
    )


@bp.post("/api/me/notifications/<int:nid>/read")
def mark_read(nid: int) -> Response:
    user = _signed_in()
    svc = notification_service()
    svc.mark_read(user, nid)
    return jsonify(unread=svc.unread_count(user))


@bp.post("/api/me/notifications/read-all")
def mark_all_read() -> Response:
    user = _signed_in()
    svc = notification_service()
    marked = svc.mark_all_read(user)
    return jsonify(marked=marked, unread=svc.unread_count(user))


@bp.get("/api/me/notifications/settings")
def settings() -> Response:
    user = _signed_in()
    return jsonify(_switches(notification_service(), user))


@bp.patch("/api/me/notifications/settings")
def change_settings() -> Response:
    user = _signed_in()
    data = json_object()
    svc = notification_service()
    svc.change_switches(user, data.get("switches"))
    return jsonify(_switches(svc, user))
