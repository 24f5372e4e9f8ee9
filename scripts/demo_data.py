"""Demo data for `make run`: the town 更別村 / Sarabetsu, its points and one NFT collection.

Idempotent: running it again changes nothing. Reads contract addresses from the deployments file.
"""

from __future__ import annotations

import importlib
import sys
from decimal import Decimal

from sqlalchemy import select

from backend import create_app
from backend.chain.registry import load_deployments
from backend.core.db import get_db
from backend.core.discovery import import_all
from backend.regions.models import Town
from backend.shop.models import Collection

SARABETSU = {
    "slug": "sarabetsu",
    "name_ja": "更別村",
    "name_en": "Sarabetsu",
    "prefecture_ja": "北海道 十勝",
    "prefecture_en": "Tokachi, Hokkaido",
    "points_symbol": "SRB",
}


def load_demo_data(app) -> Town:  # type: ignore[no-untyped-def]
    settings = app.extensions["settings"]
    with app.app_context():
        chain = app.extensions["chain"].status()
        deployments = load_deployments(settings.deployments_dir, chain.chain_id)
        session = get_db().session
        town = session.scalar(select(Town).where(Town.slug == SARABETSU["slug"]))
        if town is None:
            town = Town(**SARABETSU, chain_id=chain.chain_id)
            session.add(town)
        town.points_address = deployments.address("towns.sarabetsu.RegionPoints")
        town.chain_id = chain.chain_id
        session.flush()
        coll = session.scalar(
            select(Collection).where(Collection.town_id == town.id, Collection.slug == "ambassador")
        )
        if coll is None:
            coll = Collection(
                town_id=town.id,
                slug="ambassador",
                name_ja="更別村アンバサダーカード",
                name_en="Sarabetsu Ambassador Card",
                description_ja="村のDAOで1枚につき1票。村のイベントで特典が使えます。",
                description_en=(
                    "One vote per card in the village DAO, with perks at village events."
                ),
                category="ambassador_card",
                max_supply=500,
                price_yen=Decimal(5000),
                price_points=Decimal(5000),
            )
            session.add(coll)
        coll.contract_address = deployments.address("towns.sarabetsu.collections.ambassador")
        session.commit()
        # Each domain may add its own demo rows: backend/<domain>/demo.py: load_demo(town).
        for name in import_all("demo"):
            importlib.import_module(name).load_demo(town)
            session.commit()
        return town


if __name__ == "__main__":
    load_demo_data(create_app())
    print("demo data loaded: 更別村 / Sarabetsu")
    sys.exit(0)
