"""Demo data for `make run`: two partner towns, 更別村 / Sarabetsu and 洞爺湖町 / Lake Toya, each on
its own contracts (backend/deploy.py deploys them), with its own points, shop, collections,
merchant, staff and resident (each domain's backend/<domain>/demo.py: load_demo(town)).

Idempotent: running it again changes nothing. Reads contract addresses from the deployments file;
a town whose contracts are not deployed on this chain is skipped.
"""

from __future__ import annotations

import importlib
import sys

from sqlalchemy import select

from backend import create_app
from backend.chain.registry import RegistryError, load_deployments
from backend.core.db import get_db
from backend.core.discovery import import_all
from backend.regions.models import Town

SARABETSU = {
    "slug": "sarabetsu",
    "name_ja": "更別村",
    "name_en": "Sarabetsu",
    "prefecture_ja": "北海道 十勝",
    "prefecture_en": "Tokachi, Hokkaido",
    "points_symbol": "SRB",
}
TOYAKO = {
    "slug": "toyako",
    "name_ja": "洞爺湖町",
    "name_en": "Lake Toya",
    "prefecture_ja": "北海道 胆振",
    "prefecture_en": "Iburi, Hokkaido",
    "points_symbol": "TYA",
}
TOWNS = (SARABETSU, TOYAKO)


def load_demo_data(app) -> Town:  # type: ignore[no-untyped-def]
    """Load the demo towns; returns Sarabetsu's row."""
    return load_demo_towns(app)[0]


def load_demo_towns(app) -> list[Town]:  # type: ignore[no-untyped-def]
    """Load the demo towns deployed on this chain; returns their rows (Sarabetsu first)."""
    settings = app.extensions["settings"]
    loaded = []
    with app.app_context():
        chain = app.extensions["chain"].status()
        deployments = load_deployments(settings.deployments_dir, chain.chain_id)
        session = get_db().session
        for data in TOWNS:
            try:
                points = deployments.address(f"towns.{data['slug']}.RegionPoints")
            except (KeyError, RegistryError):
                continue  # not deployed on this chain
            town = session.scalar(select(Town).where(Town.slug == data["slug"]))
            if town is None:
                town = Town(**data, chain_id=chain.chain_id)
                session.add(town)
            town.points_address = points
            town.chain_id = chain.chain_id
            session.commit()
            loaded.append(town)
        # Each domain adds its own demo rows: backend/<domain>/demo.py: load_demo(town).
        for name in import_all("demo"):
            module = importlib.import_module(name)
            for town in loaded:
                module.load_demo(town)
                session.commit()
        return loaded


if __name__ == "__main__":
    towns = load_demo_towns(create_app())
    print("demo data loaded: " + ", ".join(f"{t.name_ja} / {t.name_en}" for t in towns))
    sys.exit(0)
