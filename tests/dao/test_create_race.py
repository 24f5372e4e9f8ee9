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
from backend.regions.models import Town
from tests.accounts.conftest import Api
from tests.concurrency import at_once, twin_first
from tests.dao.conftest import SLUG, make_staff, signup
from tests.dao.test_dao_api import BASE, proposal_body
from tests.factories import TownFactory


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


def _poll_body(key: str) -> dict[str, Any]:
    return {
        "chamber": "card",
        "title_ja": "次の祭りの日",
        "title_en": "Next festival day",
        "options": [{"ja": "土曜", "en": "Saturday"}, {"ja": "日曜", "en": "Sunday"}],
        "duration_blocks": 100,
        "idempotency_key": key,
    }


def test_a_twin_poll_that_committed_first_is_the_answer(manual_outbox, town, staff, monkeypatch):
    body = _poll_body("poll-twice-1")
    url = f"/api/towns/{SLUG}/dao/polls"
    second, twin = _sent_twice(manual_outbox, staff, url, body, monkeypatch)
    assert second.get_json()["poll"]["id"] == twin["poll"]["id"]
    assert _rows(manual_outbox, DaoPoll, "dao.poll:") == (1, 1)


# ---------------------------------------------------------------- a key another town used

OTHER = "toyako"
ANOTHER_TOWN = "このリクエストキーは別のまちで使われています。"  # "... used for another town."


@pytest.fixture
def other_staff(manual_outbox: Flask, deployed: Any) -> Any:
    """A staff member of a second town (its contracts are in every test chain)."""
    with manual_outbox.app_context():
        other = TownFactory(slug=OTHER, chain_id=deployed.chain_id)
        get_db().session.commit()
        other_id = other.id
    api, uid, _addr = signup(manual_outbox)
    with manual_outbox.app_context():
        make_staff(manual_outbox, get_db().session.get(Town, other_id), uid)
    return api


def _refused_as_another_towns_key(resp: Any) -> None:
    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert resp.get_json()["error"]["message"] == ANOTHER_TOWN


def test_a_poll_key_another_town_used_is_refused_and_writes_nothing(
    manual_outbox, town, staff, other_staff
):
    """One town's request key is not an answer to another town's staff: their request is
    refused (400, not the first town's poll), and nothing is written for it."""
    body = _poll_body("poll-shared-key")
    first = staff.post(f"/api/towns/{SLUG}/dao/polls", body)
    assert first.status_code == 201, first.get_data(as_text=True)
    _refused_as_another_towns_key(other_staff.post(f"/api/towns/{OTHER}/dao/polls", body))
    assert _rows(manual_outbox, DaoPoll, "dao.poll:") == (1, 1)
    # The first town's own repeat is still answered with its poll.
    again = staff.post(f"/api/towns/{SLUG}/dao/polls", body)
    assert again.status_code == 201
    assert again.get_json()["poll"]["id"] == first.get_json()["poll"]["id"]


def test_a_proposal_key_another_town_used_is_refused_and_writes_nothing(
    manual_outbox, town, staff, other_staff, dao_chain
):
    dao_chain.fund_treasury(100_000)
    body = proposal_body(idempotency_key="propose-shared-key")
    first = staff.post(f"{BASE}/proposals", body)
    assert first.status_code == 201, first.get_data(as_text=True)
    _refused_as_another_towns_key(other_staff.post(f"/api/towns/{OTHER}/dao/proposals", body))
    assert _rows(manual_outbox, DaoProposal, "dao.propose:") == (1, 1)


def test_another_towns_twin_committing_first_is_refused_not_answered(
    manual_outbox, town, staff, other_staff, monkeypatch
):
    """The racing form: the second town's request finds no row for its key, then the first
    town's request with the same key commits before it inserts. The UNIQUE key stops the
    insert, and the row found then belongs to another town: 400, and one poll, one transaction."""
    body = _poll_body("poll-shared-race")

    def first_towns_request() -> Any:
        # In a thread of its own: a request nested in this thread would share the outer
        # request's app context, and with it the signed-in user.
        (resp,) = at_once([lambda: staff.post(f"/api/towns/{SLUG}/dao/polls", body)])
        assert not isinstance(resp, Exception), resp
        assert resp.status_code == 201, resp.get_data(as_text=True)
        return resp.get_json()

    twin = twin_first(monkeypatch, DaoService, "addresses", manual_outbox, first_towns_request)
    _refused_as_another_towns_key(other_staff.post(f"/api/towns/{OTHER}/dao/polls", body))
    assert twin, "the first town's request did not run between the look-up and the insert"
    assert _rows(manual_outbox, DaoPoll, "dao.poll:") == (1, 1)
    with manual_outbox.app_context():
        poll = get_db().session.scalar(sa.select(DaoPoll))
        assert (poll.id, poll.town_id) == (twin[0]["poll"]["id"], town.id)


def test_a_key_that_names_another_proposals_resident_half_is_refused_not_a_500(
    manual_outbox, town, staff, dao_chain
):
    """A proposal put to both chambers files its resident half under "<key>:resident". When an
    earlier proposal already used that key, the request is refused (400) with nothing written,
    and the earlier proposal is untouched."""
    dao_chain.fund_treasury(100_000)
    first = staff.post(f"{BASE}/proposals", proposal_body(idempotency_key="festival-27:resident"))
    assert first.status_code == 201, first.get_data(as_text=True)
    before = _rows(manual_outbox, DaoProposal, "dao.propose:")
    resp = staff.post(
        f"{BASE}/proposals", proposal_body(chamber="both", idempotency_key="festival-27")
    )
    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert resp.get_json()["error"]["code"] == "invalid_input"
    assert _rows(manual_outbox, DaoProposal, "dao.propose:") == before == (1, 1)
