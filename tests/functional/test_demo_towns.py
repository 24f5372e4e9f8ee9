"""The `make run` demo (scripts/demo_data.py and each domain's demo.py): two partner towns,
更別村 / Sarabetsu and 洞爺湖町 / Lake Toya, each on its own contracts with its own points, shop,
collections, merchant, staff and resident; it loads idempotently; and a visitor who signs up in
Lake Toya gets welcome points that buy one of its items, end to end on anvil."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from flask import Flask
from web3 import Web3

from backend.accounts.models import Membership, User
from backend.accounts.services import AccountService
from backend.chain.api import get_vault, outbox_service
from backend.chain.registry import Deployments
from backend.core.db import get_db
from backend.merchants.models import Merchant, ResidentCard
from backend.partners.models import ACTIVE, Partnership
from backend.points.models import PointsGrant
from backend.regions.models import Town
from backend.shop.models import Collection, Listing, Order, Perk
from backend.shop.services import order_service
from scripts.demo_data import load_demo_data, load_demo_towns
from tests.chain_admin import as_role
from tests.shop.shop_helpers import PASSWORD, contract, drive
from webui.account_pages import grant_welcome

ITEMS = {"ticket": "event_ticket", "experience": "experience", "supporter": "donation_certificate"}


@pytest.fixture
def demo_app(make_app: Callable[..., Flask], deployed: Deployments, w3: Web3) -> Flask:
    app = make_app()
    with app.app_context():
        outbox_service().auto_dispatch = False  # the test drives the outbox
    return app


def _rows(app: Flask) -> dict[str, int]:
    with app.app_context():
        s = get_db().session
        return {
            m.__tablename__: s.scalar(sa.select(sa.func.count()).select_from(m))
            for m in (Town, Collection, Listing, Perk, User, Membership, Merchant, ResidentCard)
        }


def test_two_partner_towns_each_on_its_own_contracts_load_idempotently(demo_app, deployed):
    app = demo_app
    towns = load_demo_towns(app)
    first = _rows(app)
    assert load_demo_data(app).slug == "sarabetsu"  # the older entry point: Sarabetsu's row
    assert _rows(app) == first  # a second run changes nothing
    assert [t.slug for t in towns] == ["sarabetsu", "toyako"]
    with app.app_context():
        s = get_db().session
        for town in s.scalars(sa.select(Town)):
            assert town.points_address == deployed.address(f"towns.{town.slug}.RegionPoints")
            colls = {c.slug: c for c in s.scalars(sa.select(Collection).filter_by(town_id=town.id))}
            assert set(colls) == {"ambassador", *ITEMS}
            for slug, c in colls.items():
                assert c.contract_address == deployed.address(
                    f"towns.{town.slug}.collections.{slug}"
                )
                assert c.name_ja and c.name_en and c.description_ja and c.description_en
            # the three items: a ticket, an experience and a donation certificate, for points
            items = s.scalars(
                sa.select(Listing)
                .join(Collection)
                .where(Listing.town_id == town.id, Collection.slug.in_(ITEMS))
            ).all()
            assert sorted((li.collection.slug, li.collection.category) for li in items) == sorted(
                ITEMS.items()
            )
            assert {li.payment_kind for li in items} == {"points"}
            assert min(int(li.price) for li in items) <= 500  # the welcome grant buys one
            assert s.scalar(sa.select(Merchant.id).where(Merchant.town_id == town.id))
            staff = s.scalars(sa.select(Membership.user_id).where(Membership.town_id == town.id))
            assert len(set(staff)) >= 2  # town staff and venue staff
        addresses = [c.contract_address for c in s.scalars(sa.select(Collection))]
        assert len(set(addresses)) == len(addresses) == 8  # no town shares a contract
        # The session's towns do not declare each other on chain: no partnership is recorded.
        assert s.scalar(sa.select(sa.func.count()).select_from(Partnership)) == 0


def test_towns_that_are_partners_on_chain_are_partners_in_the_demo(demo_app, w3, deployed):
    """As `make run` deploys them (tests/functional/test_deploy.py checks the deploy itself)."""
    srb = contract(w3, deployed, "towns.sarabetsu.RegionPoints")
    tya = contract(w3, deployed, "towns.toyako.RegionPoints")
    as_role(w3, "town_settings", srb.functions.setPartner(tya.address, True))
    as_role(w3, "town_settings", tya.functions.setPartner(srb.address, True))
    load_demo_towns(demo_app)
    load_demo_towns(demo_app)
    with demo_app.app_context():
        (p,) = get_db().session.scalars(sa.select(Partnership)).all()
        assert p.status == ACTIVE and p.a_confirmed_at and p.b_confirmed_at


def test_a_visitor_to_lake_toya_gets_points_and_buys_an_item_with_them(demo_app, w3, deployed):
    app = demo_app
    load_demo_towns(app)
    drive(app, w3)  # the demo's listings, shops and grants go on chain
    with app.app_context():
        s = get_db().session
        visitor = AccountService(s(), lambda: get_vault(app)).signup(
            "visitor@example.com", PASSWORD, "旅人", verified=True
        )
        grant_welcome(visitor, "toyako")  # what following the sign-up mail's link does
        toyako = s.scalar(sa.select(Town).where(Town.slug == "toyako"))
        (grant,) = s.scalars(sa.select(PointsGrant).where(PointsGrant.user_id == visitor.id))
        assert grant.town_id == toyako.id
        visitor_id, address = visitor.id, visitor.addresses[0].address
        listing = s.scalar(
            sa.select(Listing)
            .join(Collection)
            .where(Listing.town_id == toyako.id, Collection.slug == "ticket")
        )
        listing_id, price = listing.id, int(listing.price)
        s.commit()
    drive(app, w3)
    tya = contract(w3, deployed, "towns.toyako.RegionPoints")
    srb = contract(w3, deployed, "towns.sarabetsu.RegionPoints")
    assert tya.functions.balanceOf(address).call() == 500 >= price
    assert srb.functions.balanceOf(address).call() == 0

    with app.app_context():
        s = get_db().session
        placed = order_service().place(s.get(User, visitor_id), listing_id, 1, "visitor-ticket-1")
        public_id = placed.order.public_id
        s.commit()
    drive(app, w3)
    with app.app_context():
        order = get_db().session.scalar(sa.select(Order).where(Order.public_id == public_id))
        assert order.status == "completed", order.status
    ticket = contract(w3, deployed, "towns.toyako.collections.ticket")
    assert ticket.functions.balanceOf(address).call() == 1
    assert tya.functions.balanceOf(address).call() == 500 - price
