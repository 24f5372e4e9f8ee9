"""Shop JSON API: listings, NFT metadata (OpenSea), my collection, ticket codes and check-in."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify
from flask_babel import get_locale

from backend.accounts.roles import current_user, require_user
from backend.core.db import get_db
from backend.core.errors import N_, NotFound, json_object
from backend.core.page_cache import cached_json
from backend.shop.images import collection_svg
from backend.shop.resident_meta import ResidentMetadata
from backend.shop.services import checkin_service, shop_service

bp = Blueprint("nfts", __name__)


def _locale() -> str:
    return str(get_locale() or "ja")


@bp.get("/api/shop/towns/<slug>/listings")
def listings(slug: str):
    """The town's collections and listings with what is left, from SQL (never the node), kept
    by the page cache until the data changes."""
    return cached_json(
        get_db().session(), "shop.listings", lambda: _listings(slug), user_id=None, locale=_locale()
    )


def _listings(slug: str) -> dict[str, Any]:
    shop = shop_service()
    town = shop.town(slug)
    out = []
    for view in shop.shop(town, _locale()):
        c = view.collection
        out.append(
            {
                "collection": {
                    "id": c.id,
                    "slug": c.slug,
                    "name": c.name(_locale()),
                    "category": c.category,
                    "image": view.image_url,
                    "contract_address": c.contract_address,
                },
                "perks": [
                    {"perk_id": p.perk_id, "name": p.name, "uses_per_token": p.uses_per_token}
                    for p in view.perks
                ],
                "listings": [
                    {
                        "id": li.listing.id,
                        "chain_listing_id": li.listing.chain_listing_id,
                        "payment_kind": li.listing.payment_kind,
                        "price": li.price,
                        "remaining": li.remaining,
                        "wallet_cap": li.listing.wallet_cap,
                        "starts_at": li.listing.starts_at.isoformat(),
                        "ends_at": li.listing.ends_at.isoformat(),
                        "open": li.is_open,
                    }
                    for li in view.listings
                ],
            }
        )
    return {"town": town.slug, "collections": out}


# Static segments win over variables in Flask's router: these take /meta/<town>/resident/...
@bp.get("/meta/<town>/resident/<int:token_id>")
def resident_metadata(town: str, token_id: int):
    base = current_app.extensions["settings"].public_url
    return jsonify(ResidentMetadata(get_db().session).metadata(town, token_id, base))


@bp.get("/meta/<town>/resident/image.svg")
def resident_image(town: str):
    resp = Response(ResidentMetadata(get_db().session).image_svg(town), mimetype="image/svg+xml")
    resp.headers["Cache-Control"] = "public, max-age=3600"
    return resp


@bp.get("/meta/<town>/<collection>/<int:token_id>")
def metadata(town: str, collection: str, token_id: int):
    base = current_app.extensions["settings"].public_url
    return jsonify(shop_service().metadata(town, collection, token_id, base))


@bp.get("/meta/<town>/<collection>/image.svg")
def image(town: str, collection: str):
    c = shop_service().collection(town, collection)
    resp = Response(collection_svg(c), mimetype="image/svg+xml")
    resp.headers["Cache-Control"] = "public, max-age=3600"
    return resp


@bp.get("/meta/<town>/<collection>/image")
def uploaded_image(town: str, collection: str):
    """The image uploaded in the staff console (its type was checked from its bytes)."""
    c = shop_service().collection(town, collection)
    if not c.image_type or c.image_data is None:
        raise NotFound(N_("There is no such collection."))
    resp = Response(c.image_data, mimetype=c.image_type)
    resp.headers["Cache-Control"] = "public, max-age=3600"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


@bp.get("/api/shop/my/collection")
def my_collection():
    user = require_user()
    items = shop_service().my_collection(user, _locale())
    return jsonify(
        {
            "tokens": [
                {
                    "collection_id": i["collection"].id,
                    "collection": i["collection"].slug,
                    "town": i["town"].slug,
                    "token_id": i["token_id"],
                    "holder": i["holder"],
                    "perks": [
                        {
                            "perk_id": p.perk_id,
                            "name": p.name,
                            "uses_left": p.uses_left,
                            "uses_per_token": p.uses_per_token,
                        }
                        for p in i["perks"]
                    ],
                    "ticket_code": i["ticket_code"],
                }
                for i in items
            ]
        }
    )


@bp.get("/api/shop/tickets/<int:collection_id>/<int:token_id>")
def ticket(collection_id: int, token_id: int):
    code = shop_service().ticket_code_for(require_user(), collection_id, token_id)
    return jsonify({"ticket_code": code})


def ticket_json(view: Any) -> dict[str, Any]:
    return {
        "town": view.town.slug,
        "collection": view.collection.slug,
        "token_id": view.token_id,
        "holder": view.holder,
        "perks": [
            {
                "perk_id": p.perk_id,
                "name": p.name,
                "uses_left": p.uses_left,
                "uses_per_token": p.uses_per_token,
            }
            for p in view.perks
        ],
    }


@bp.post("/api/shop/towns/<slug>/checkin/lookup")
def checkin_lookup(slug: str):
    shop = shop_service()
    town = shop.town(slug)
    view = checkin_service(shop).lookup(current_user(), town, json_object().get("code"), _locale())
    return jsonify(ticket_json(view))


@bp.post("/api/shop/towns/<slug>/checkin")
def checkin(slug: str):
    shop = shop_service()
    town = shop.town(slug)
    data = json_object()
    row = checkin_service(shop).check_in(
        current_user(),
        town,
        data.get("code"),
        data.get("perk_id"),
        data.get("idempotency_key"),
        _locale(),
    )
    return jsonify(
        {
            "checkin": {
                "id": row.id,
                "status": row.status,
                "token_id": row.token_id,
                "perk_id": row.perk_id,
            }
        }
    ), 201
