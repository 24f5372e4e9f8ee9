"""The staff console's "Services" section (issue 14 §1), for the town's admin:

- /towns/<slug>/admin/services: the town's services (car share, gym...) with their
  programmes, cap, budgets and what they used today and this month; a form to register one.
- Registering a service, or rotating its key, shows the new API key ONCE, on a page that is
  not cached (Cache-Control: no-store); only its hash is kept.
- /towns/<slug>/admin/services/<id>: its limits (names, programmes, cap, budgets; suspend it)
  and its keys (prefix, made, valid until, revoked), rotate (the old key stays valid for a
  week, both work meanwhile) and revoke.

Forms carry csrf_token. Rights and rules live in ServiceAccountService (the town's ADMIN only:
403 for staff and everyone else); errors are shown on the page with their 4xx status.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)

from backend.accounts.roles import current_user
from backend.core.db import get_db
from backend.core.errors import AppError
from backend.integrations.services import ROTATION_GRACE, NewKey, service_account_service
from backend.points.services import JST
from backend.regions.models import Town
from backend.regions.services import town_by_slug

bp = Blueprint("console_services", __name__)

_FIELDS = ("name_ja", "name_en", "daily_budget", "monthly_budget", "cap_per_issuance")


def _login() -> Response:
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def _jst(d: Any) -> str:
    return d.astimezone(JST).strftime("%Y-%m-%d %H:%M") if d is not None else ""


def _index(town: Town, error: AppError | None = None, form: dict[str, Any] | None = None):
    svc = service_account_service()
    user = current_user()
    accounts = svc.accounts(user, town)  # the town's ADMIN (401/403 otherwise)
    context: dict[str, Any] = {
        "town": town,
        "accounts": accounts,
        "usage": {a.id: svc.usage(a) for a in accounts},
        "valid_keys": {a.id: len(svc.valid_keys(a)) for a in accounts},
        "programmes": svc.programme_choices(user, town),
        "error": error and error.translated(),
        "error_field": error.details.get("field") if error else None,
        "form": form or {},
    }
    return render_template("console/services/index.html", **context), (
        error.status if error else 200
    )


def _key_page(town: Town, account: Any, key: NewKey, *, rotated: bool) -> Response:
    resp = make_response(
        render_template(
            "console/services/key.html",
            town=town,
            account=account,
            key=key.text,
            rotated=rotated,
            api_base=request.host_url.rstrip("/") + "/api/v1",
            grace_days=ROTATION_GRACE.days,
        )
    )
    # The key is shown once: no cache, no back-button copy.
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/towns/<slug>/admin/services")
def index(slug: str):
    if current_user() is None:
        return _login()
    return _index(town_by_slug(slug))


@bp.post("/towns/<slug>/admin/services")
def create(slug: str):
    if current_user() is None:
        return _login()
    town = town_by_slug(slug)
    form: dict[str, Any] = {k: request.form.get(k, "") for k in _FIELDS}
    form["programme_ids"] = request.form.getlist("programme_ids")
    try:
        account, key = service_account_service().create(
            current_user(),
            town,
            name_ja=form["name_ja"],
            name_en=form["name_en"],
            programme_ids=form["programme_ids"],
            daily_budget=form["daily_budget"],
            monthly_budget=form["monthly_budget"],
            cap_per_issuance=form["cap_per_issuance"],
        )
    except AppError as exc:
        get_db().session.rollback()
        return _index(town, exc, form)
    return _key_page(town, account, key, rotated=False)


def _show(
    town: Town,
    service_id: int,
    error: AppError | None = None,
    form: dict[str, Any] | None = None,
):
    svc = service_account_service()
    account = svc.account(current_user(), town, service_id)
    programmes = svc.programme_choices(current_user(), town)
    names = {p.programme_id: p for p in programmes}
    shown = form or {
        "name_ja": account.name_ja,
        "name_en": account.name_en,
        "programme_ids": [str(p) for p in account.programme_ids],
        "daily_budget": int(account.daily_budget),
        "monthly_budget": int(account.monthly_budget) if account.monthly_budget else "",
        "cap_per_issuance": int(account.cap_per_issuance) if account.cap_per_issuance else "",
        "active": account.active,
    }
    webhooks = "console_webhooks.service" in current_app.view_functions
    return render_template(
        "console/services/show.html",
        town=town,
        account=account,
        keys=svc.keys(account),
        valid=len(svc.valid_keys(account)),
        now=svc._now(),
        usage=svc.usage(account),
        programme_names=names,
        programmes=programmes,
        form=shown,
        error_field=error.details.get("field") if error else None,
        jst=_jst,
        grace_days=ROTATION_GRACE.days,
        webhooks_url=url_for("console_webhooks.service", slug=town.slug, service_id=account.id)
        if webhooks
        else None,
        notice=request.args.get("notice"),
        error=error and error.translated(),
    ), (error.status if error else 200)


@bp.get("/towns/<slug>/admin/services/<int:service_id>")
def show(slug: str, service_id: int):
    if current_user() is None:
        return _login()
    return _show(town_by_slug(slug), service_id)


@bp.post("/towns/<slug>/admin/services/<int:service_id>")
def update(slug: str, service_id: int):
    if current_user() is None:
        return _login()
    town = town_by_slug(slug)
    form: dict[str, Any] = {k: request.form.get(k, "") for k in _FIELDS}
    form["programme_ids"] = request.form.getlist("programme_ids")
    form["active"] = request.form.get("active") == "1"
    try:
        service_account_service().update(
            current_user(),
            town,
            service_id,
            name_ja=form["name_ja"],
            name_en=form["name_en"],
            programme_ids=form["programme_ids"],
            daily_budget=form["daily_budget"],
            monthly_budget=form["monthly_budget"],
            cap_per_issuance=form["cap_per_issuance"],
            active=form["active"],
        )
    except AppError as exc:
        get_db().session.rollback()
        if exc.status in (401, 403, 404):
            raise
        return _show(town, service_id, exc, form)
    return redirect(url_for(".show", slug=slug, service_id=service_id, notice="saved"), code=303)


@bp.post("/towns/<slug>/admin/services/<int:service_id>/rotate")
def rotate(slug: str, service_id: int):
    if current_user() is None:
        return _login()
    town = town_by_slug(slug)
    svc = service_account_service()
    try:
        key = svc.rotate(current_user(), town, service_id)
    except AppError as exc:
        get_db().session.rollback()
        if exc.status in (401, 403, 404):
            raise
        return _show(town, service_id, exc)
    return _key_page(town, svc.account(current_user(), town, service_id), key, rotated=True)


@bp.post("/towns/<slug>/admin/services/<int:service_id>/keys/<int:key_id>/revoke")
def revoke(slug: str, service_id: int, key_id: int):
    if current_user() is None:
        return _login()
    town = town_by_slug(slug)
    service_account_service().revoke(current_user(), town, service_id, key_id)
    return redirect(url_for(".show", slug=slug, service_id=service_id, notice="revoked"), code=303)
