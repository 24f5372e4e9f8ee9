"""A person's notifications (issue 15 §6): the list (newest first, unread marked), marking read,
the switches per kind and channel, the mailed link that switches one kind's mail off, and the
header's count of unread ones. The rules are backend/notifications/services.py."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from flask_babel import get_locale

from backend.accounts.roles import current_user
from backend.notifications.models import CHANNELS, KINDS
from backend.notifications.services import BADGE_CAP, notification_service
from backend.notifications.texts import CHANNEL_LABELS, KIND_LABELS, describe

bp = Blueprint("notifications_pages", __name__)


@bp.app_context_processor
def _inject_badge() -> dict[str, Any]:
    """`unread_notifications()` for the header: counted only when a signed-in page asks."""

    def unread_notifications() -> int:
        user = current_user()
        return 0 if user is None else notification_service().unread_count(user)

    return {"unread_notifications": unread_notifications, "notifications_cap": BADGE_CAP}


def _login():  # type: ignore[no-untyped-def]
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


@bp.get("/me/notifications")
def inbox():
    user = current_user()
    if user is None:
        return _login()
    box = notification_service().inbox(user, request.args.get("before"))
    locale = str(get_locale())
    return render_template(
        "notifications/list.html",
        items=[(n, describe(n.kind, n.params, locale)) for n in box.items],
        older=box.older,
    )


@bp.post("/me/notifications/<int:nid>/read")
def mark_read(nid: int):
    user = current_user()
    if user is None:
        return _login()
    notification_service().mark_read(user, nid)
    return redirect(url_for("notifications_pages.inbox"))


@bp.post("/me/notifications/read-all")
def mark_all_read():
    user = current_user()
    if user is None:
        return _login()
    notification_service().mark_all_read(user)
    return redirect(url_for("notifications_pages.inbox"))


@bp.route("/me/notifications/settings", methods=["GET", "POST"])
def settings():
    user = current_user()
    if user is None:
        return _login()
    svc = notification_service()
    saved = False
    if request.method == "POST":
        svc.set_switches(user, request.form)
        saved = True
    return render_template(
        "notifications/settings.html",
        switches=svc.switches(user),
        kinds=[(k, KIND_LABELS[k]) for k in KINDS],
        channels=[(c, CHANNEL_LABELS[c]) for c in CHANNELS],
        saved=saved,
        email_verified=user.email is not None and user.email_verified_at is not None,
    )


@bp.route("/notifications/off/<token>", methods=["GET", "POST"])
def switch_off(token: str):
    """The link in every notification mail: GET asks (a mail scanner that opens links changes
    nothing), POST switches that kind's mail off; no sign-in needed, the signed link is the key."""
    svc = notification_service()
    if request.method == "POST":
        kind = svc.switch_mail_off(token)
        return render_template("notifications/off.html", kind=KIND_LABELS[kind], done=True)
    _user, kind = svc.read_off_token(token)
    return render_template("notifications/off.html", kind=KIND_LABELS[kind], done=False)
