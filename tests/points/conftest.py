"""Points fixtures: the deployed towns (Sarabetsu, and Lake Toya on its own contracts), one
signed-up user, and a chain driver."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from web3 import Web3

from backend.accounts.services import AccountService
from backend.chain.custody import get_vault
from backend.chain.indexer_tasks import index_blocks
from backend.chain.outbox import outbox_service
from backend.chain.registry import Deployments
from backend.core.db import get_db
from backend.regions.models import Town
from tests.anvil_pool import outbox_round

PASSWORD = "correct horse battery"


@pytest.fixture
def app(make_app: Callable[..., Flask], deployed: Deployments) -> Flask:
    app = make_app()
    with app.app_context():
        outbox_service().auto_dispatch = False
    return app


def _town(app: Flask, deployed: Deployments, slug: str, name_ja: str, name_en: str) -> int:
    with app.app_context():
        town = Town(
            slug=slug,
            name_ja=name_ja,
            name_en=name_en,
            chain_id=deployed.chain_id,
            points_address=deployed.address(f"towns.{slug}.RegionPoints"),
        )
        get_db().session.add(town)
        get_db().session.commit()
        return town.id


@pytest.fixture
def town_id(app: Flask, deployed: Deployments) -> int:
    return _town(app, deployed, "sarabetsu", "更別村", "Sarabetsu")


@pytest.fixture
def toyako_id(app: Flask, deployed: Deployments) -> int:
    """洞爺湖町 / Lake Toya: the second demo town, with its own points contract."""
    return _town(app, deployed, "toyako", "洞爺湖町", "Lake Toya")


@pytest.fixture
def user_id(app: Flask) -> int:
    with app.app_context():
        svc = AccountService(get_db().session(), lambda: get_vault(app))
        return svc.signup("fan@example.com", PASSWORD, verified=True).id


def run_chain(app: Flask, w3: Web3) -> None:
    """Send queued outbox rows, mine, read receipts, index (what the worker's beat does)."""
    with app.app_context():
        svc = outbox_service()
        session = get_db().session
        for _ in range(2):
            outbox_round(svc, session, w3)
            session.commit()
        index_blocks()
