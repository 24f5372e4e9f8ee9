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


def _demo_spec(slug: str, name: str, symbol: str, partners: tuple[str, ...] = ()) -> TownSpec:
    """A demo town: the points programme presets of backend/points/programmes.py (welcome 180
    days; paid points 180 days, the 資金決済法 6-month rule; thank-you 90; event prize 30); an
    ambassador card collection that votes (perk 1: event entry, 3 uses), and the three items
    its shop lists (backend/shop/demo.py): an event ticket and an experience (perk 1: one entry
    each) and a donation certificate (soulbound: a thank-you, not for resale)."""
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
            CollectionSpec(
                "ticket",
                f"{name} Festival Ticket",
                f"{symbol}TIX",
                300,
                "event_ticket",
                perks=((1, 1, 0),),
            ),
            CollectionSpec(
                "experience",
                f"{name} Experience",
                f"{symbol}EXP",
                50,
                "experience",
                perks=((1, 1, 0),),
            ),
            CollectionSpec(
                "supporter",
                f"{name} Supporter Certificate",
                f"{symbol}SUP",
                1000,
                "donation_certificate",
                soulbound=True,
            ),
        ),
        dao=demo_dao(),  # short periods: refused on any chain but a local test chain
        categories=CATEGORY_KEYS,  # backend/shop/categories.py, in the enum's order
        partners=partners,
    )


def demo_town(partners: bool = False) -> TownSpec:
    """更別村 / Sarabetsu as `make run` shows it (Lake Toya's partner with `partners`)."""
    return _demo_spec("sarabetsu", "Sarabetsu", "SRB", ("toyako",) if partners else ())


def toyako_town(partners: bool = False) -> TownSpec:
    """洞爺湖町 / Lake Toya, Sarabetsu's partner town in the demo: its own contracts throughout."""
    return _demo_spec("toyako", "Lake Toya", "TYA", ("sarabetsu",) if partners else ())


def demo_towns(partners: bool = True) -> list[TownSpec]:
    """The demo's two towns. `make run` deploys them as partner towns (each points contract
    declares the other); the tests deploy them unpartnered, so that agreeing to a partnership
    can be tested (tests/conftest.py `deployed`)."""
    return [demo_town(partners), toyako_town(partners)]


if __name__ == "__main__":
    sys.exit(main(demo=demo_towns))
