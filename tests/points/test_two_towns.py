"""Two towns side by side, each on contracts of its own (backend/deploy.py deploys both demo
towns): no contract is shared, and a welcome grant in Lake Toya lands on Lake Toya's points."""

from __future__ import annotations

import sqlalchemy as sa

from backend.accounts.models import User
from backend.chain.deploy import town_keys
from backend.chain.registry import artifact
from backend.core.db import get_db
from backend.deploy import demo_towns
from backend.points.models import PointsGrant
from backend.points.services import points_service
from backend.regions.models import Town
from tests.points.conftest import run_chain


def test_the_two_demo_towns_share_no_contract(deployed):
    sarabetsu, toyako = demo_towns()
    assert (sarabetsu.slug, sarabetsu.points_symbol) == ("sarabetsu", "SRB")
    assert (toyako.slug, toyako.points_symbol) == ("toyako", "TYA")
    here = [deployed.address(k) for k in town_keys(sarabetsu)]
    there = [deployed.address(k) for k in town_keys(toyako)]
    # points, treasury, sale, pass, both chambers, polls, guardian and the four collections
    assert len(here) == len(there) == 12
    assert len(set(here) | set(there)) == 24


def test_a_welcome_grant_in_each_town_lands_on_that_towns_points(
    app, w3, user_id, toyako_id, town_id
):
    with app.app_context():
        s = get_db().session
        toyako = s.get(Town, toyako_id)
        grant = points_service().grant_welcome_points(s.get(User, user_id), toyako)
        assert grant.town_id == toyako_id
        address = s.get(User, user_id).addresses[0].address
        points = {
            t.slug: w3.eth.contract(address=t.points_address, abi=artifact("RegionPoints").abi)
            for t in s.scalars(sa.select(Town))
        }
        s.commit()
    run_chain(app, w3)
    assert points["toyako"].functions.symbol().call() == "TYA"
    assert points["toyako"].functions.balanceOf(address).call() == 500
    assert points["sarabetsu"].functions.balanceOf(address).call() == 0

    # The same user's Sarabetsu welcome is another grant, on Sarabetsu's points.
    with app.app_context():
        s = get_db().session
        points_service().grant_welcome_points(s.get(User, user_id), s.get(Town, town_id))
        s.commit()
    run_chain(app, w3)
    assert points["sarabetsu"].functions.balanceOf(address).call() == 500
    assert points["toyako"].functions.balanceOf(address).call() == 500
    with app.app_context():
        grants = get_db().session.scalars(sa.select(PointsGrant).order_by(PointsGrant.id)).all()
        assert [(g.town_id, g.status) for g in grants] == [
            (toyako_id, "confirmed"),
            (town_id, "confirmed"),
        ]
