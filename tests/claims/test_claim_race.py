"""Claims under races, on PostgreSQL and on SQLite: ten requests taking one address's claims at
once (the verified owner's pages and the beat) take them once, for the owner; ten previews
reserving a wallet for one new address at once reserve one. Someone who has not verified the
address, or whose account has another address, takes nothing and changes nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from flask import Flask

from backend.accounts.models import User
from backend.accounts.services import AccountService
from backend.chain.api import get_vault
from backend.chain.outbox import outbox_service
from backend.claims.models import HELD, TAKEN, ClaimWallet, PointsClaim
from backend.claims.services import HeldRow, claim_service
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.regions.models import Town
from tests.concurrency import n_at_once

EMAIL = "racer@example.com"
PASSWORD = "correct horse battery"


@pytest.fixture
def app(make_app, deployed, any_db_url) -> Flask:
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False
    return app


def _user(app: Flask, email: str, *, verified: bool) -> int:
    with app.app_context():
        svc = AccountService(get_db().session(), lambda: get_vault(app))
        return svc.signup(email, PASSWORD, verified=verified).id


@pytest.fixture
def held(app: Flask) -> int:
    """Two claims of one town held for EMAIL (as two issuances leave them); the town's id."""
    with app.app_context():
        s = get_db().session
        town = Town(slug="sarabetsu", name_ja="更別村", name_en="Sarabetsu", chain_id=31337)
        s.add(town)
        s.flush()
        svc = claim_service()
        address = svc.wallets_for([EMAIL])[EMAIL]
        for n, amount in enumerate((700, 300)):
            svc.hold(
                town_id=town.id,
                programme_id=3,
                batch_id=n + 1,
                rows=[HeldRow(n + 1, address, amount)],
                actor="user:1",
                reason="Snow clearing",
            )
        s.commit()
        return town.id


def _at_once(app: Flask, n: int, work: Callable[[int], object]) -> list[object]:
    return n_at_once(app, n, work)


def _state(app: Flask) -> tuple[list[tuple[str, int | None]], list[int | None], int]:
    with app.app_context():
        s = get_db().session
        claims = [
            (c.state, c.taken_by)
            for c in s.scalars(sa.select(PointsClaim).order_by(PointsClaim.id))
        ]
        wallets = [w.claimed_by for w in s.scalars(sa.select(ClaimWallet))]
        takes = s.scalar(
            sa.select(sa.func.count())
            .select_from(AuditLog)
            .where(AuditLog.action == "points.claim.take")
        )
        return claims, wallets, int(takes or 0)


def test_ten_takes_at_once_claim_once_for_the_verified_owner(app, held):
    owner = _user(app, EMAIL, verified=True)

    def take(i: int) -> object:
        if i % 2:  # the beat's sweep, racing the pages
            return claim_service().take_verified()
        return claim_service().take(get_db().session.get(User, owner))

    results = _at_once(app, 10, take)
    assert len(results) == 10 and all(isinstance(r, int) for r in results), results
    assert sorted(results) == [0] * 9 + [2]  # one winner took both claims
    assert _state(app) == ([(TAKEN, owner), (TAKEN, owner)], [owner], 2)
    # Again later: nothing more to take.
    with app.app_context():
        assert claim_service().take(get_db().session.get(User, owner)) == 0
    assert _state(app)[2] == 2


def test_an_unverified_sign_up_or_another_account_takes_nothing(app, held):
    squatter = _user(app, EMAIL, verified=False)
    other = _user(app, "someone-else@example.com", verified=True)
    before = _state(app)
    assert before == ([(HELD, None), (HELD, None)], [None], 0)

    def take(i: int) -> object:
        user_id = squatter if i % 2 else other
        return claim_service().take(get_db().session.get(User, user_id))

    assert _at_once(app, 10, take) == [0] * 10
    with app.app_context():
        assert claim_service().take_verified() == 0
    assert _state(app) == before


def test_ten_previews_reserving_for_one_new_address_reserve_one_wallet(app):
    def reserve(_i: int) -> object:
        s = get_db().session
        address = claim_service().wallets_for(["New@Example.com ".strip().lower()])
        s.commit()
        return address["new@example.com"]

    results = _at_once(app, 10, reserve)
    assert all(isinstance(r, str) for r in results), results
    assert len(set(results)) == 1
    with app.app_context():
        wallets = get_db().session.scalars(sa.select(ClaimWallet)).all()
        assert [(w.email, w.address) for w in wallets] == [("new@example.com", results[0])]
