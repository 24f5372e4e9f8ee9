"""The deployment as the operator runs it: the demo towns and the deploy command.

    python -m backend.deploy --rpc-url http://127.0.0.1:8545 [--town sarabetsu:SRB] [--demo] ...

backend/chain/deploy.py deploys whatever `TownSpec`s it is given and knows no domain; the
domain data a town needs (the points programme presets, the collection categories' order)
comes from here, the composition level, which may read the domains.

The demo has two partner towns, each with every contract of its own: 更別村 / Sarabetsu (SRB)
and 洞爺湖町 / Lake Toya (TYA).
"""

from __future__ import annotations

import sys

from backend.chain.dao_settings import demo_dao
from backend.chain.deploy import CollectionSpec, ProgrammeSpec, TownSpec, main
from backend.points.programmes import PRESETS
from backend.shop.categories import KEYS as CATEGORY_KEYS

__all__ = ["CATEGORY_KEYS", "demo_town", "demo_towns", "main", "programmes", "toyako_town"]


def programmes() -> tuple[ProgrammeSpec, ...]:
    """The points programme presets of backend/points/programmes.py, as the deploy sets them."""
    return tuple(ProgrammeSpec(p.programme_id, p.expiry_days) for p in PRESETS)


def _demo_spec(slug: str, name: str, symbol: str) -> TownSpec:
    """A demo town: the points programme presets of backend/points/programmes.py (welcome 180
    days; paid points 180 days, the 資金決済法 6-month rule; thank-you 90; event prize 30); one
    ambassador card collection that votes (perk 1: event entry, 3 uses, backend/shop/demo.py)."""
    return TownSpec(
        slug,
        f"{name} Points",
        symbol,
        programmes=programmes(),
        collections=(
            CollectionSpec(
                "ambassador",
                f"{name} Ambassador Card",
                f"{symbol}AMB",
                500,
                "ambassador_card",
                votes=True,
                perks=((1, 3, 0),),
            ),
        ),
        dao=demo_dao(),  # short periods: refused on any chain but a local test chain
        categories=CATEGORY_KEYS,  # backend/shop/categories.py, in the enum's order
    )


def demo_town() -> TownSpec:
    """更別村 / Sarabetsu as `make run` shows it."""
    return _demo_spec("sarabetsu", "Sarabetsu", "SRB")


def toyako_town() -> TownSpec:
    """洞爺湖町 / Lake Toya, Sarabetsu's partner town in the demo: its own contracts throughout."""
    return _demo_spec("toyako", "Lake Toya", "TYA")


def demo_towns() -> list[TownSpec]:
    """The demo's two partner towns, as `make run` and the tests deploy them."""
    return [demo_town(), toyako_town()]


if __name__ == "__main__":
    sys.exit(main(demo=demo_towns))
