"""A double submit of "propose" or "create poll" (one idempotency key) whose twin commits between
the key look-up and the insert: the second request answers the twin's proposal or poll (201),
not a 500 from the UNIQUE key, and one row and one transaction are queued. On PostgreSQL and
SQLite; the exact interleaving is forced with tests/concurrency.py `twin_first`."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.dao.common import DaoService
from backend.dao.models import DaoPoll, DaoProposal
from tests.accounts.conftest import Api
from tests.concurrency import twin_first
from tests.dao.conftest import SLUG, make_staff, signup
from tests.dao.test_dao_api import BASE, proposal_body


@pytest.fixture
def app(make_app, deployed, any_db_url) -> Flask:  # type: ignore[no-untyped-def]
    """The DAO fixtures' app, on each database in turn."""
    return make_app(database_url=any_db_url)


@pytest.fixture
def staff(manual_outbox: Flask, town: Any) -> Any:
    api, uid, _addr = signup(manual_outbox)
    make_staff(manual_outbox, town, uid)
    return api


def _rows(app: Flask, model: Any, key_prefix: str) -> tuple[int, int]:
    """(rows of `model`, outbox rows whose key starts with `key_prefix`)."""
    with app.app_context():
        s = get_db().session
        rows = s.scalar(sa.select(sa.func.count()).select_from(model))
        txs = s.scalar(
            sa.select(sa.func.count())
            .select_from(OutboxTx)
            .where(OutboxTx.idempotency_key.like(f"{key_prefix}%"))
        )
        return rows, txs


def _sent_twice(app: Flask, staff: Any, url: str, body: dict[str, Any], monkeypatch: Any):
    """Post `body` while the same request from a second tab of the same person (a client with
    their session cookie and CSRF token) commits first, right after this one's key look-up
    (the first `DaoService.addresses`). Returns (this request's response, the twin's JSON)."""
    tab = Api(app.test_client())
    tab.client.set_cookie("session", staff.client.get_cookie("session").value)
    tab.token = staff.token or staff.refresh_token()

    def send() -> Any:
        resp = tab.post(url, body)
        assert resp.status_code == 201, resp.get_data(as_text=True)
        return resp.get_json()

    twin = twin_first(monkeypatch, DaoService, "addresses", app, send)
    second = staff.post(url, body)
    assert second.status_code == 201, second.get_data(as_text=True)
    return second, twin[0]


def test_a_twin_proposal_that_committed_first_is_the_answer(
    manual_outbox, town, staff, dao_chain, monkeypatch
):
    dao_chain.fund_treasury(100_000)
    body = proposal_body(idempotency_key="propose-twice-1")
    url = f"{BASE}/proposals"
    second, twin = _sent_twice(manual_outbox, staff, url, body, monkeypatch)
    assert second.get_json()["proposal"]["id"] == twin["proposal"]["id"]
    assert _rows(manual_outbox, DaoProposal, "dao.propose:") == (1, 1)
    # Another key is another proposal: the twin's answer is given only to its own key.
    third = staff.post(url, proposal_body(idempotency_key="propose-twice-2"))
    assert third.status_code == 201
    assert third.get_json()["proposal"]["id"] != twin["proposal"]["id"]
    assert _rows(manual_outbox, DaoProposal, "dao.propose:") == (2, 2)


def test_a_twin_poll_that_committed_first_is_the_answer(manual_outbox, town, staff, monkeypatch):
    body = {
        "chamber": "card",
        "title_ja": "次の祭りの日",
        "title_en": "Next festival day",
        "options": [{"ja": "土曜", "en": "Saturday"}, {"ja": "日曜", "en": "Sunday"}],
        "duration_blocks": 100,
        "idempotency_key": "poll-twice-1",
    }
    url = f"/api/towns/{SLUG}/dao/polls"
    second, twin = _sent_twice(manual_outbox, staff, url, body, monkeypatch)
    assert second.get_json()["poll"]["id"] == twin["poll"]["id"]
    assert _rows(manual_outbox, DaoPoll, "dao.poll:") == (1, 1)
