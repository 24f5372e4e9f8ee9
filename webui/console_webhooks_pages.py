"""The staff console's Webhooks section (issue 14 §2), for the town's admin:

- /towns/<slug>/admin/webhooks: the town's services, each with its webhook URL and how many of
  its deliveries are delivered, waiting or failed.
- /towns/<slug>/admin/webhooks/<service>: set, change or remove the URL; the signing secret is
  shown once, on the answer to the form that made or rotated it (never again: it is kept
  sealed); the recent deliveries, and the failed ones with "Send again".

Rights and rules live in ServiceWebhookService; an error is shown on the page with its 4xx.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, make_response, redirect, render_template, request, url_for

from backend.accounts.roles import current_user
from backend.core.db import get_db
from backend.core.errors import AppError
from backend.integrations.service_webhooks import service_webhook_service, webhook_owner
from backend.integrations.services import service_account_service
from backend.regions.services import town_by_slug
from backend.webhooks.services import webhook_service

bp = Blueprint("console_webhooks", __name__)


def _login() -> Response:
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


@bp.get("/towns/<slug>/admin/webhooks")
def services(slug: str):
    user = current_user()
    if user is None:
        return _login()
    town = town_by_slug(slug)
    accounts = service_account_service().accounts(user, town)  # the town's ADMIN (403 else)
    hooks = webhook_service(get_db().session())
    rows = [(a, hooks.counts(webhook_owner(a.id))) for a in accounts]
    return render_template("console/webhooks.html", town=town, rows=rows)


def _page(
    slug: str,
    service_id: int,
    *,
    secret: str | None = None,
    error: AppError | None = None,
    form: dict[str, str] | None = None,
) -> Any:
    town = town_by_slug(slug)
    view = service_webhook_service().view(current_user(), town, service_id)
    body = render_template(
        "console/webhook.html",
        town=town,
        view=view,
        secret=secret,
        error=error and error.translated(),
        form=form or {},
        notice=request.args.get("notice"),
    )
    resp = make_response(body, error.status if error else 200)
    if secret:
        resp.headers["Cache-Control"] = "no-store"  # the secret is shown once: never cached
    return resp


@bp.get("/towns/<slug>/admin/webhooks/<int:service_id>")
def service(slug: str, service_id: int):
    if current_user() is None:
        return _login()
    return _page(slug, service_id)


@bp.post("/towns/<slug>/admin/webhooks/<int:service_id>/url")
def set_url(slug: str, service_id: int):
    if current_user() is None:
        return _login()
    url = request.form.get("url", "")
    try:
        secret = service_webhook_service().set_url(
            current_user(), town_by_slug(slug), service_id, url
        )
    except AppError as exc:
        get_db().session.rollback()
        if exc.status in (401, 403, 404):
            raise
        return _page(slug, service_id, error=exc, form={"url": url})
    if secret:
        return _page(slug, service_id, secret=secret)
    notice = "saved" if url.strip() else "removed"
    return redirect(url_for(".service", slug=slug, service_id=service_id, notice=notice), 303)


@bp.post("/towns/<slug>/admin/webhooks/<int:service_id>/rotate")
def rotate(slug: str, service_id: int):
    if current_user() is None:
        return _login()
    try:
        secret = service_webhook_service().rotate_secret(
            current_user(), town_by_slug(slug), service_id
        )
    except AppError as exc:
        get_db().session.rollback()
        if exc.status in (401, 403):
            raise
        return _page(slug, service_id, error=exc)
    return _page(slug, service_id, secret=secret)


@bp.post("/towns/<slug>/admin/webhooks/<int:service_id>/deliveries/<int:delivery_id>/resend")
def resend(slug: str, service_id: int, delivery_id: int):
    if current_user() is None:
        return _login()
    try:
        service_webhook_service().resend(
            current_user(), town_by_slug(slug), service_id, delivery_id
        )
    except AppError as exc:
        get_db().session.rollback()
        if exc.status in (401, 403):
            raise
        return _page(slug, service_id, error=exc)
    return redirect(url_for(".service", slug=slug, service_id=service_id, notice="resent"), 303)
