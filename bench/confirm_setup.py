"""The people and things bench/confirm.py needs, made inside its platform (its environment: the
same database, chain and keys as the web process):

    python -m bench.confirm_setup PEOPLE POINTS

Signs up PEOPLE verified users bench-<n>@example.com (idempotent), grants each POINTS welcome
points in 更別村 / Sarabetsu through the outbox, and waits (up to 300 s) until every grant is
confirmed, the town's demo shop is active on chain and its cheapest points listing is on sale:
the worker must be running. Prints one JSON object: the shop's id and its clerk's sign-in, the
listing's id and price, and the people's e-mail addresses and password.
"""

from __future__ import annotations

import json
import sys
import time

from sqlalchemy import select

from backend import create_app
from backend.core.db import get_db
from backend.merchants.demo import MERCHANT_EMAIL, MERCHANT_PASSWORD, TOWNS
from backend.merchants.models import ACTIVE, Merchant
from backend.points.demo import demo_user
from backend.points.services import points_service
from backend.regions.models import Town
from backend.shop.models import Listing

TOWN = "sarabetsu"
PASSWORD = "bench-confirm-password"  # noqa: S105 - throwaway bench accounts
WAIT = 300.0


def email(n: int) -> str:
    return f"bench-{n}@example.com"


def main(people: int, points: int) -> dict[str, object]:
    app = create_app()
    with app.app_context():
        session = get_db().session
        town = session.scalar(select(Town).where(Town.slug == TOWN))
        if town is None:
            raise SystemExit(f"no town {TOWN}: load the demo data first")
        svc = points_service()
        users = [demo_user(email(n), PASSWORD, f"Bench {n}") for n in range(people)]
        grants = [svc.grant_welcome_points(u, town, amount=points) for u in users]
        ids = [g.id for g in grants]
        deadline = time.monotonic() + WAIT
        while True:
            session.commit()  # a fresh view each round
            states = svc.grant_states(ids)
            shop = session.scalar(
                select(Merchant).where(
                    Merchant.town_id == town.id, Merchant.name_en == TOWNS[TOWN].shop_en
                )
            )
            listing = session.scalar(
                select(Listing)
                .where(
                    Listing.town_id == town.id,
                    Listing.payment_kind == "points",
                    Listing.chain_listing_id.is_not(None),
                )
                .order_by(Listing.price, Listing.id)
                .limit(1)
            )
            ready = shop is not None and shop.status == ACTIVE and listing is not None
            if ready and all(s == "confirmed" for s in states.values()):
                break
            if any(s == "failed" for s in states.values()):
                raise SystemExit(f"a welcome grant failed: {states}")
            if time.monotonic() > deadline:
                raise SystemExit(f"not ready after {WAIT:.0f} s: grants {states}, shop {shop}")
            time.sleep(0.5)
        assert shop is not None and listing is not None
        return {
            "merchant_id": shop.id,
            "merchant_email": MERCHANT_EMAIL,
            "merchant_password": MERCHANT_PASSWORD,
            "listing_id": listing.id,
            "listing_price": int(listing.price),
            "collection_id": listing.collection_id,
            "people": [email(n) for n in range(people)],
            "password": PASSWORD,
        }


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), int(sys.argv[2]))))
