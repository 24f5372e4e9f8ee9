"""A gift whose transfer cannot be queued, or whose transfer fails on chain, does not hold the
card for ever: nothing is left "on its way" when queueing fails (the gift row and its outbox
call commit together, on SQLite too), and a gift whose call failed is marked failed when the
holder gives the card again, so the new gift goes. PostgreSQL and SQLite."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from backend.accounts.models import User
from backend.chain.outbox.service import OutboxService
from backend.chain.outbox.states import S, transition
from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.core.errors import AppError
from backend.shop.gifts import GIVE
from backend.shop.models import Gift
from backend.shop.services import gift_service
from tests.shop.shop_helpers import PASSWORD, Api, bought_card, confirm_email


def _states(app) -> list[str]:
    with app.app_context():
        return list(get_db().session.scalars(sa.select(Gift.state).order_by(Gift.id)))


def test_a_gift_that_cannot_be_queued_or_failed_on_chain_does_not_hold_the_card(
    any_db_shop, w3, monkeypatch
):
    app = any_db_shop
    fan, token = bought_card(app, w3)
    Api(app.test_client()).signup("friend@example.com")
    confirm_email(app, "friend@example.com")
    fan_id = fan.get("/api/accounts/me").get_json()["user"]["id"]

    def give(key: str) -> Gift:
        with app.app_context():
            s = get_db().session
            try:
                gift = gift_service().give(
                    s.get(User, fan_id), token["collection_id"], token["token_id"],
                    recipient="friend@example.com", password=PASSWORD, request_key=key,
                    kind=GIVE,
                )  # fmt: skip
            except AppError:
                s.rollback()  # as the page does
                raise
            s.expunge(gift)
            return gift

    real = OutboxService.enqueue

    def refuse(*_a, **_k):
        raise AppError("the outbox is not taking calls")

    monkeypatch.setattr(OutboxService, "enqueue", refuse)
    with pytest.raises(AppError):
        give("form-0001")
    assert _states(app) == []  # nothing left on its way without a call
    monkeypatch.setattr(OutboxService, "enqueue", real)

    first = give("form-0002")
    assert _states(app) == ["queued"]
    with app.app_context():
        s = get_db().session
        tx = s.get(OutboxTx, first.outbox_tx_id)
        tx.error = "ERC721InsufficientApproval(0x0, 1)"
        transition(tx, S.FAILED, "estimate reverted: ERC721InsufficientApproval(0x0, 1)")
        s.commit()
    # The holder gives the card again straight away (no page read the failure first).
    second = give("form-0003")
    assert second.id != first.id and second.outbox_tx_id != first.outbox_tx_id
    assert _states(app) == ["failed", "queued"]
