"""Welcome points (once per user and programme, audited) and the points page: balance,
pending, each lot's expiry date and history, in Japanese and English."""

from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa

from backend.accounts.models import User
from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.points.handlers import expiry_of
from backend.points.models import PointsGrant
from backend.points.services import JST, points_service
from backend.regions.models import Town
from tests.points.conftest import PASSWORD, run_chain


def _grant(app, user_id, town_id):
    with app.app_context():
        s = get_db().session
        return points_service().grant_welcome_points(s.get(User, user_id), s.get(Town, town_id))


def _count(app, model) -> int:
    with app.app_context():
        return get_db().session.scalar(sa.select(sa.func.count()).select_from(model))


def _issue_day(app, w3) -> dt.date:
    """The JST day of the block that mined the welcome grant: the chain's clock, which the
    per-test snapshot rewinds, so not necessarily the wall clock's day."""
    with app.app_context():
        block = get_db().session.scalars(sa.select(OutboxTx.block_number)).one()
    return dt.datetime.fromtimestamp(w3.eth.get_block(block)["timestamp"], JST).date()


def _log_in(client) -> None:
    token = client.get("/api/csrf").get_json()["csrf_token"]
    r = client.post(
        "/api/auth/login",
        json={"email": "fan@example.com", "password": PASSWORD},
        headers={"X-CSRFToken": token},
    )
    assert r.status_code == 200


def test_welcome_points_are_granted_once_and_audited(app, town_id, user_id):
    first = _grant(app, user_id, town_id)
    second = _grant(app, user_id, town_id)
    assert first.id == second.id and first.status == "pending" and int(first.amount) == 500
    assert _count(app, PointsGrant) == 1 and _count(app, OutboxTx) == 1
    with app.app_context():
        rows = get_db().session.scalars(sa.select(AuditLog)).all()
        assert [(r.action, int(r.amount), r.subject_id) for r in rows] == [
            ("points.issue", 500, str(user_id))
        ]
        tx = get_db().session.scalars(sa.select(OutboxTx)).one()
        assert tx.sender_kind == "issuer" and tx.function == "issue"


def test_points_page_shows_pending_then_balance_lots_expiry_and_history(app, town_id, user_id, w3):
    client = app.test_client()
    _log_in(client)
    _grant(app, user_id, town_id)
    body = client.get("/api/points").get_json()["towns"][0]
    assert (body["confirmed"], body["pending_in"]) == (0, 500)
    assert body["history"][0]["pending"] is True

    run_chain(app, w3)
    body = client.get("/api/points").get_json()["towns"][0]
    assert (body["confirmed"], body["pending_in"], body["available"]) == (500, 0, 500)
    (lot,) = body["lots"]
    assert lot["programme_id"] == 1 and lot["remaining"] == 500 and lot["reason"] == "welcome"
    # Programme 1 lives 180 days: the lot expires at 00:00 JST of issue day + 181.
    issue_day = _issue_day(app, w3)
    assert dt.date.fromisoformat(lot["last_day"]) == issue_day + dt.timedelta(days=180)
    assert [h["kind"] for h in body["history"]] == ["issued"]
    with app.app_context():
        assert get_db().session.scalars(sa.select(PointsGrant)).one().status == "confirmed"

    page = client.get("/points", headers={"Accept-Language": "ja"}).get_data(as_text=True)
    assert "わたしのポイント" in page and "ようこそポイント" in page
    last = issue_day + dt.timedelta(days=180)  # the JST day, in the reader's language
    assert f"{last.year}年{last.month}月{last.day}日" in page
    client.set_cookie("lang", "en")
    page = client.get("/points").get_data(as_text=True)
    assert last.isoformat() in page
    assert "My points" in page and "Welcome points" in page and "Use by" in page


def test_expiry_follows_the_contract_rule():
    # Issued at 23:59 JST on 1 April: day boundaries are JST, so 2 days later means 00:00 JST
    # on 4 April (the points live at least two full days).
    issued = dt.datetime(2026, 4, 1, 23, 59, tzinfo=JST)
    assert expiry_of(issued, 2) == dt.datetime(2026, 4, 4, 0, 0, tzinfo=JST)
    assert expiry_of(issued, 0) is None


def test_points_pages_need_a_sign_in(app):
    client = app.test_client()
    r = client.get("/points")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    assert client.get("/api/points").status_code == 401
    r = client.get("/points/code")
    assert r.status_code == 302


def test_my_code_page_shows_a_qr(app, user_id):
    client = app.test_client()
    _log_in(client)
    first = client.get("/points/code").get_data(as_text=True)
    second = client.get("/points/code").get_data(as_text=True)
    codes = [
        re.search(r'data-testid="customer-code">(P\d{12})<', p).group(1) for p in (first, second)
    ]
    # A fresh single-use code on every visit (the old ones were "P<user id>-<digits>").
    assert "<svg" in first and codes[0] != codes[1] and f"P{user_id}-" not in first


def test_lot_expiry_follows_the_issue_block_time_not_the_indexing_time(
    app, town_id, user_id, w3, monkeypatch
):
    """A slow indexer (or a backfill) sees the PointsIssued event 10 days after the block: the
    lot still expires 181 JST days after the issue block's day, as the contract counts it."""
    import backend.points.handlers as handlers
    from backend.chain.indexer_tasks import index_blocks
    from backend.chain.outbox import outbox_service

    _grant(app, user_id, town_id)
    with app.app_context():
        svc, session = outbox_service(), get_db().session
        for sender in svc.senders_with_work(session):
            svc.send_pending(session, sender)
        w3.provider.make_request("anvil_mine", ["0x1"])
        svc.check_receipts(session)
        session.commit()
    issue_day = _issue_day(app, w3)

    w3.provider.make_request("evm_increaseTime", [10 * 86_400])
    w3.provider.make_request("anvil_mine", ["0x2"])
    indexed_at = dt.datetime.fromtimestamp(w3.eth.get_block("latest").timestamp, dt.UTC)
    monkeypatch.setattr(handlers, "utcnow", lambda: indexed_at)  # the indexer's clock
    with app.app_context():
        index_blocks()

    client = app.test_client()
    _log_in(client)
    (lot,) = client.get("/api/points").get_json()["towns"][0]["lots"]
    assert dt.date.fromisoformat(lot["last_day"]) == issue_day + dt.timedelta(days=180)
    assert issue_day != indexed_at.astimezone(JST).date()


def test_points_handlers_take_the_block_time_from_the_event_not_the_node(
    app, town_id, user_id, w3, monkeypatch
):
    """The indexer hands the points handlers each event's block time (its header's timestamp,
    read with the chunk's headers): inside the indexing transaction the handlers send the node
    no eth_getBlockByNumber (nor ByHash). Requests are counted, not timed."""
    import dataclasses

    from web3.providers import HTTPProvider

    import backend.points.handlers as handlers
    from backend.chain import rpc as rpc_mod
    from backend.chain.indexer import events as registry

    inside = [False]
    sent_inside: list[str] = []
    seen: list = []
    real_post, real_request = rpc_mod.JsonRpc._post, HTTPProvider.make_request

    def post(self, payload):
        if inside[0]:
            sent_inside.extend(
                c["method"] for c in (payload if isinstance(payload, list) else [payload])
            )
        return real_post(self, payload)

    def make_request(self, method, params):
        if inside[0]:
            sent_inside.append(str(method))
        return real_request(self, method, params)

    monkeypatch.setattr(rpc_mod.JsonRpc, "_post", post)
    monkeypatch.setattr(HTTPProvider, "make_request", make_request)

    def watched(fn):
        def run(session, events):
            inside[0] = True
            try:
                seen.extend(events)
                fn(session, events)
                for ev in events:
                    handlers.block_time(ev)
            finally:
                inside[0] = False

        return run

    original = list(registry._HANDLERS)  # the indexer holds this very list: edited in place
    registry._HANDLERS[:] = [
        dataclasses.replace(h, apply=watched(h.apply))
        if h.apply.__module__ == handlers.__name__
        else h
        for h in original
    ]
    try:
        _grant(app, user_id, town_id)
        run_chain(app, w3)
    finally:
        registry._HANDLERS[:] = original

    assert {"Transfer", "PointsIssued"} <= {ev.event_name for ev in seen}
    for ev in seen:
        timestamp = w3.eth.get_block(ev.block_number)["timestamp"]
        assert ev.block_time == timestamp
        assert handlers.block_time(ev) == dt.datetime.fromtimestamp(timestamp, dt.UTC)
    assert sent_inside == [], sent_inside
