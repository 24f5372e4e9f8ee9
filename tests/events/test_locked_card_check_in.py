"""A printed card the town locked (lost or stolen) is refused at an event's check-in, as every
shop refuses it: whoever shows it is not its holder, and a check-in would use up the holder's
one check-in of the event. Nothing is written; once staff unlock it, the card checks in. Before this
fix the locked card was accepted (events read the card's holder without its lock)."""

from __future__ import annotations

import pytest

from backend.accounts.models import User
from backend.chain.outbox import outbox_service
from backend.core.db import get_db, utcnow
from backend.events.services import event_service
from backend.merchants import cards, town_hall
from backend.merchants.errors import CardLocked
from backend.merchants.services import merchant_service
from backend.regions.models import Town
from tests.events.conftest import counts, make_event


@pytest.fixture
def app(make_app, deployed):
    app = make_app()
    with app.app_context():
        outbox_service().auto_dispatch = False  # only the rows count here
    return app


def test_a_locked_card_is_refused_at_check_in_and_checks_in_once_unlocked(app, town):
    event_id = make_event(app, town.town_id, points=200)
    staff_id, verifier_id = town.user_id("staff"), town.user_id("verifier")
    with app.app_context():
        s = get_db().session
        t = s.get(Town, town.town_id)
        card = merchant_service().issue_card(
            s.get(User, staff_id), t, s.get(User, town.user_id("customer")), "482913"
        )
        card_id, card_code = card.id, card.card_code
        s.commit()
        town_hall.lock_card(s, s.get(User, staff_id), t, card_id, utcnow())
    before = counts(app)

    with app.app_context():
        s = get_db().session
        with pytest.raises(CardLocked) as refused:
            event_service().check_in_by_staff(
                s.get(User, verifier_id), s.get(Town, town.town_id), event_id, card_code
            )
        assert refused.value.status == 423
    assert counts(app) == before  # no check-in, no grant, no call, no audit row

    with app.app_context():
        s = get_db().session
        cards.unlock_card(s, s.get(User, staff_id), card_id)
        row = event_service().check_in_by_staff(
            s.get(User, verifier_id), s.get(Town, town.town_id), event_id, card_code
        )
        assert row.user_id == town.user_id("customer")
    after = counts(app)
    assert after["event_check_ins"] - before["event_check_ins"] == 1
