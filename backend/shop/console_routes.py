"""The staff console's collections as a JSON API (blueprint "console_shop_api"): the same
CollectionConsole calls as the pages (webui/console_shop_pages.py), with the image as base64 and
the allowlist as a list of e-mails or addresses. OpenAPI: backend/shop/console_openapi.py."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from flask import Blueprint, jsonify

from backend.accounts.roles import current_user
from backend.core.errors import N_, InvalidInput, json_object
from backend.regions.services import town_by_slug
from backend.shop.console import CollectionDetail
from backend.shop.models import Collection, Listing, Perk
from backend.shop.services import collection_console

bp = Blueprint("console_shop_api", __name__)
BASE = "/api/towns/<slug>/admin/collections"


def _collection(c: Collection, status: str | None = None) -> dict[str, Any]:
    return {
        "id": c.id,
        "slug": c.slug,
        "name_ja": c.name_ja,
        "name_en": c.name_en,
        "category": c.category,
        "max_supply": c.max_supply,
        "royalty_bps": c.royalty_bps,
        "soulbound": c.soulbound,
        "votes": c.votes,
        "contract_address": c.contract_address,
        "status": status or c.status,
    }


def _listing(li: Listing) -> dict[str, Any]:
    return {
        "id": li.id,
        "payment_kind": li.payment_kind,
        "price": int(li.price),
        "supply": li.supply,
        "wallet_cap": li.wallet_cap,
        "starts_at": li.starts_at.isoformat(),
        "ends_at": li.ends_at.isoformat(),
        "allowlist_only": li.allowlist_only,
        "chain_listing_id": li.chain_listing_id,
    }


def _perk(p: Perk, state: str | None = None) -> dict[str, Any]:
    return {
        "perk_id": p.perk_id,
        "name_ja": p.name_ja,
        "name_en": p.name_en,
        "uses_per_token": p.uses_per_token,
        "valid_until": p.valid_until.isoformat() if p.valid_until else None,
        "state": state,
    }


def _detail(d: CollectionDetail) -> dict[str, Any]:
    return {
        **_collection(d.collection, d.status),
        "calls": [{"function": c.function, "state": c.state} for c in d.calls],
        "listings": [
            {
                **_listing(li),
                "calls": [{"function": c.function, "state": c.state} for c in calls],
                "allowlist": listed,
                "vouchers_signed": signed,
            }
            for li, calls, listed, signed in d.listings
        ],
        "perks": [_perk(p, state) for p, state in d.perks],
    }


def _image(data: dict[str, Any]) -> bytes | None:
    raw = data.get("image_base64")
    if raw is None or raw == "":
        return None
    try:
        return base64.b64decode(str(raw), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(N_("The image must be a PNG, JPEG or WebP."), field="image") from None


def _lines(value: object) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(
            N_("Upload the allowlist: one e-mail or address per line."), field="allowlist"
        )
    return "\n".join(value).encode()


@bp.get(BASE)
def collections(slug: str):
    rows = collection_console().collections(current_user(), town_by_slug(slug))
    return jsonify({"collections": [_collection(c) for c in rows]})


@bp.post(BASE)
def create(slug: str):
    data = json_object()
    c = collection_console().create(
        current_user(), town_by_slug(slug), data, _image(data), data.get("idempotency_key")
    )
    return jsonify({"collection": _collection(c)}), 201


@bp.get(f"{BASE}/<int:collection_id>")
def detail(slug: str, collection_id: int):
    d = collection_console().detail(current_user(), town_by_slug(slug), collection_id)
    return jsonify({"collection": _detail(d)})


@bp.post(f"{BASE}/<int:collection_id>/listings")
def add_listing(slug: str, collection_id: int):
    data = json_object()
    listing = collection_console().add_listing(
        current_user(),
        town_by_slug(slug),
        collection_id,
        data,
        _lines(data.get("allowlist")),
        data.get("idempotency_key"),
    )
    return jsonify({"listing": _listing(listing)}), 201


@bp.post(f"{BASE}/<int:collection_id>/perks")
def set_perk(slug: str, collection_id: int):
    data = json_object()
    perk = collection_console().set_perk(
        current_user(), town_by_slug(slug), collection_id, data, data.get("idempotency_key")
    )
    return jsonify({"perk": _perk(perk)})


@bp.post(f"{BASE}/<int:collection_id>/listings/<int:listing_id>/allowlist")
def upload_allowlist(slug: str, collection_id: int, listing_id: int):
    data = json_object()
    svc = collection_console()
    town = town_by_slug(slug)
    svc.collection(current_user(), town, collection_id)
    added = svc.upload_allowlist(current_user(), town, listing_id, _lines(data.get("allowlist")))
    return jsonify({"added": added})
