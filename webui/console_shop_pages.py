"""The staff console's collections at /towns/<slug>/admin/collections: the list, a new
collection (with an uploaded image), and a collection's page with its on-chain set-up (queued ->
confirmed), listings (with an allowlist upload) and perks.

Forms carry csrf_token and a one-time request key, so a double submit has one effect. Rules,
rights (town staff) and audit rows live in CollectionConsole (backend/shop/console.py); an error
is shown on the page with its 4xx status and nothing written.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, url_for

from backend.accounts.roles import current_user
from backend.core.errors import N_, AppError, Forbidden, NotFound
from backend.regions.services import town_by_slug
from backend.shop.categories import CATEGORIES
from backend.shop.console import MAX_ROYALTY_BPS, MAX_SUPPLY
from backend.shop.services import collection_console

bp = Blueprint("console_shop", __name__)
STATUS_LABELS = {
    "creating": N_("Being created on chain"),
    "setting_up": N_("Being set up on chain"),
    "live": N_("Live"),
    "failed": N_("Failed on chain"),
}


def _login() -> Response:
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def _key() -> str:
    return uuid.uuid4().hex


def _upload(name: str) -> bytes | None:
    f = request.files.get(name)
    if f is None or not f.filename:
        return None
    return f.read()


def _fail(exc: AppError) -> None:
    """Someone who may not see the page gets the error page itself (403 / 404)."""
    if isinstance(exc, Forbidden | NotFound):
        raise exc


@bp.get("/towns/<slug>/admin/collections")
def collections(slug: str):
    if current_user() is None:
        return _login()
    town = town_by_slug(slug)
    rows = collection_console().collections(current_user(), town)
    return render_template("console_shop/collections.html", town=town, collections=rows)


def _new(slug: str, error: AppError | None = None, form: dict[str, Any] | None = None):
    town = town_by_slug(slug)
    collection_console().collections(current_user(), town)  # staff only
    return render_template(
        "console_shop/new.html",
        town=town,
        categories=CATEGORIES,
        form=form or {},
        key=_key(),
        max_supply=MAX_SUPPLY,
        max_royalty=MAX_ROYALTY_BPS,
        error=error and error.translated(),
        error_field=error and error.details.get("field"),
    ), (error.status if error else 200)


@bp.get("/towns/<slug>/admin/collections/new")
def new(slug: str):
    if current_user() is None:
        return _login()
    return _new(slug)


@bp.post("/towns/<slug>/admin/collections")
def create(slug: str):
    if current_user() is None:
        return _login()
    town = town_by_slug(slug)
    svc = collection_console()
    try:
        c = svc.create(
            current_user(), town, request.form, _upload("image"), request.form.get("key")
        )
    except AppError as exc:
        svc.session.rollback()
        _fail(exc)
        return _new(slug, exc, request.form.to_dict())
    return redirect(url_for(".detail", slug=slug, collection_id=c.id), code=303)


def _detail(slug: str, collection_id: int, error: AppError | None = None):
    town = town_by_slug(slug)
    d = collection_console().detail(current_user(), town, collection_id)
    return render_template(
        "console_shop/detail.html",
        town=town,
        d=d,
        status_labels=STATUS_LABELS,
        key=_key(),
        error=error and error.translated(),
        error_field=error and error.details.get("field"),
        form=request.form.to_dict() if error else {},
    ), (error.status if error else 200)


@bp.get("/towns/<slug>/admin/collections/<int:collection_id>")
def detail(slug: str, collection_id: int):
    if current_user() is None:
        return _login()
    return _detail(slug, collection_id)


@bp.post("/towns/<slug>/admin/collections/<int:collection_id>/listings")
def add_listing(slug: str, collection_id: int):
    if current_user() is None:
        return _login()
    svc = collection_console()
    try:
        svc.add_listing(
            current_user(),
            town_by_slug(slug),
            collection_id,
            request.form,
            _upload("allowlist"),
            request.form.get("key"),
        )
    except AppError as exc:
        svc.session.rollback()
        _fail(exc)
        return _detail(slug, collection_id, exc)
    return redirect(url_for(".detail", slug=slug, collection_id=collection_id), code=303)


@bp.post("/towns/<slug>/admin/collections/<int:collection_id>/perks")
def set_perk(slug: str, collection_id: int):
    if current_user() is None:
        return _login()
    svc = collection_console()
    try:
        svc.set_perk(
            current_user(), town_by_slug(slug), collection_id, request.form, request.form.get("key")
        )
    except AppError as exc:
        svc.session.rollback()
        _fail(exc)
        return _detail(slug, collection_id, exc)
    return redirect(url_for(".detail", slug=slug, collection_id=collection_id), code=303)


@bp.post("/towns/<slug>/admin/collections/<int:collection_id>/listings/<int:listing_id>/allowlist")
def upload_allowlist(slug: str, collection_id: int, listing_id: int):
    if current_user() is None:
        return _login()
    svc = collection_console()
    try:
        svc.collection(current_user(), town_by_slug(slug), collection_id)
        svc.upload_allowlist(current_user(), town_by_slug(slug), listing_id, _upload("allowlist"))
    except AppError as exc:
        svc.session.rollback()
        _fail(exc)
        return _detail(slug, collection_id, exc)
    return redirect(url_for(".detail", slug=slug, collection_id=collection_id), code=303)
