"""`make run`'s demo (scripts/demo_data.py, backend/events/demo.py): each demo town holds an
event running this week, loaded once however often the demo loads, and each town's public
events page lists its partner town's event too."""

from __future__ import annotations

import sqlalchemy as sa

from backend.chain.api import outbox_service
from backend.core.db import get_db
from backend.events.models import Event
from scripts.demo_data import load_demo_towns
from tests.chain_admin import as_role
from tests.shop.shop_helpers import contract


def test_the_demo_towns_list_each_others_events(make_app, deployed, w3):
    app = make_app()
    with app.app_context():
        outbox_service().auto_dispatch = False
    # As `make run` deploys them: each town's points declare the other a partner.
    srb = contract(w3, deployed, "towns.sarabetsu.RegionPoints")
    tya = contract(w3, deployed, "towns.toyako.RegionPoints")
    as_role(w3, "town_settings", srb.functions.setPartner(tya.address, True))
    as_role(w3, "town_settings", tya.functions.setPartner(srb.address, True))
    load_demo_towns(app)
    load_demo_towns(app)  # idempotent
    with app.app_context():
        names = sorted(get_db().session.scalars(sa.select(Event.name_en)))
    assert names == ["Autumn harvest fair", "Lakeside fireworks"]
    client = app.test_client()
    for slug in ("sarabetsu", "toyako"):
        body = client.get(f"/towns/{slug}/events", headers={"Accept-Language": "ja"}).get_data(
            as_text=True
        )
        assert "秋の収穫祭" in body and "湖畔の花火大会" in body and "開催中" in body
