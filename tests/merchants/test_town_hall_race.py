"""The town hall's forms at once, on PostgreSQL and on SQLite: the same registration form sent
ten times registers one resident (UNIQUE town + request key), ten "lock" presses on one card
write one audit row, and ten "replace" presses give one new code and PIN (the PIN the staff
member sees is the card's); every caller gets an answer (no 500)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from werkzeug.security import check_password_hash

from backend.accounts.models import Address, User
from backend.accounts.services import account_service
from backend.chain.outbox import outbox_service
from backend.core.db import get_db, utcnow
from backend.core.models import AuditLog
from backend.merchants import town_hall
from backend.merchants.models import ResidentCard, TownHallRegistration
from tests.concurrency import n_at_once


@pytest.fixture
def app(make_app, deployed, any_db_url):
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False
    return app


def _register(world, key: str) -> town_hall.Registered:
    s = get_db().session
    return town_hall.register_resident(
        s,
        account_service().vault,
        world.user(world.staff),
        world.town(),
        name="同時 太郎",
        id_seen=True,
        request_key=key,
        now=utcnow(),
    )


def _count(model) -> int:
    return int(get_db().session.scalar(sa.select(sa.func.count()).select_from(model)))


def test_ten_sends_of_one_registration_form_register_one_resident(app, world):
    with app.app_context():
        before = {m: _count(m) for m in (User, Address, ResidentCard, TownHallRegistration)}
    results = n_at_once(app, 10, lambda i: _register(world, "one-form-key-0001"))
    done = [r for r in results if isinstance(r, town_hall.Registered)]
    repeated = [r for r in results if isinstance(r, town_hall.RegistrationRepeated)]
    assert (len(done), len(repeated)) == (1, 9), results
    with app.app_context():
        after = {m: _count(m) for m in before}
        assert all(after[m] == before[m] + 1 for m in before), (before, after)
        creates = get_db().session.scalar(
            sa.select(sa.func.count())
            .select_from(AuditLog)
            .where(AuditLog.action == town_hall.CREATE)
        )
        assert creates == 1


def test_ten_lock_presses_lock_the_card_once(app, world):
    with app.app_context():
        card_id = _register(world, "lock-form-key-001").card.id

    def lock(_i: int) -> bool:
        s = get_db().session
        card = town_hall.lock_card(s, world.user(world.staff), world.town(), card_id, utcnow())
        return card.locked_at is not None

    results = n_at_once(app, 10, lock)
    assert results == [True] * 10, results
    with app.app_context():
        locks = get_db().session.scalar(
            sa.select(sa.func.count()).select_from(AuditLog).where(AuditLog.action == "card.lock")
        )
        assert locks == 1


def test_ten_replace_presses_replace_the_card_once(app, world):
    with app.app_context():
        card = _register(world, "repl-form-key-001").card
        card_id, old_code = card.id, card.card_code

    def replace(_i: int) -> str:
        s = get_db().session
        _card, pin = town_hall.replace_card(
            s, world.user(world.staff), world.town(), card_id, old_code, utcnow()
        )
        return pin

    results = n_at_once(app, 10, replace)
    pins = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, town_hall.CardAlreadyReplaced)]
    assert (len(pins), len(refused)) == (1, 9), results
    with app.app_context():
        s = get_db().session
        card = s.get(ResidentCard, card_id)
        assert card.card_code != old_code and check_password_hash(card.pin_hash, pins[0])
        replaces = s.scalar(
            sa.select(sa.func.count())
            .select_from(AuditLog)
            .where(AuditLog.action == "card.replace")
        )
        assert replaces == 1
