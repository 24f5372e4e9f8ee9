"""Following the chain while the indexer confirms: a reader (the API, a staff page, the beat)
refreshes a batch from the outbox at the moment the indexer confirms its chunk. Seen in the
webhooks end-to-end test: the refresh had read the chunk "queued", the indexer then committed it
confirmed (and the service's webhook said so), and the refresh wrote the chunk and its rows back
to "sent" for good, so the API answered "pending" for ever. The refresh now moves a chunk only
from the state it read, on PostgreSQL and on SQLite.

The interleaving is made exact: the indexer's handler runs, in a transaction of its own, between
the refresh's read of the chunks and its read of their outbox rows."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from backend.chain import api as chain_api
from backend.chain.outbox import outbox_service
from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db, utcnow
from backend.issuing import status as issuing_status
from backend.issuing.handlers import CHUNK, apply_batch_issued
from backend.issuing.models import IssuanceBatch, IssuanceChunk, IssuanceRow
from backend.points.programmes import THANKS
from tests.issuing.conftest import fail_the_issue_batch_call

URL = "/api/towns/sarabetsu/issuances"
TX_HASH = "0x" + "ab" * 32


@pytest.fixture
def app(make_app, deployed, any_db_url):
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False  # the test plays the outbox and the indexer
    return app


def _issue(world) -> int:  # type: ignore[no-untyped-def]
    staff = world.api(world.staff)
    r = staff.post(
        URL,
        {
            "rows": [{"recipient": world.customer, "amount": 400}],
            "programme_id": THANKS.programme_id,
            "reason": "Thanks",
            "idempotency_key": "follow-race-1",
        },
    )
    batch_id = int(r.get_json()["issuance"]["id"])
    assert staff.post(f"{URL}/{batch_id}/confirm").status_code == 200
    return batch_id


def _confirm_in_own_transaction(app, chunk_id: int) -> None:  # type: ignore[no-untyped-def]
    """What the indexer does on the chunk's PointsBatchIssued (handlers.py), committed."""
    with app.app_context():
        s = get_db().session
        event = SimpleNamespace(subject=SimpleNamespace(kind=CHUNK, id=chunk_id), tx_hash=TX_HASH)
        apply_batch_issued(s, [event])  # type: ignore[list-item]
        s.commit()


def test_a_refresh_racing_the_indexer_leaves_the_chunk_confirmed(app, world, monkeypatch):
    batch_id = _issue(world)
    with app.app_context():
        s = get_db().session
        chunk = s.scalar(sa.select(IssuanceChunk).where(IssuanceChunk.batch_id == batch_id))
        assert chunk is not None and chunk.status == "queued"
        chunk_id = chunk.id
        # The outbox has broadcast the call (the chunk will read "sent" from it).
        tx = s.get(OutboxTx, chunk.outbox_tx_id)
        assert tx is not None
        tx.state = "sent"
        s.commit()

    real = chain_api.outbox_states
    raced: list[int] = []

    def outbox_states_after_the_indexer(session, ids, **kw):  # type: ignore[no-untyped-def]
        if not raced:  # once: the refresh below has just read the chunk as "queued"
            raced.append(chunk_id)
            _confirm_in_own_transaction(app, chunk_id)
        return real(session, ids, **kw)

    monkeypatch.setattr(chain_api, "outbox_states", outbox_states_after_the_indexer)
    with app.app_context():
        s = get_db().session
        batch = s.get(IssuanceBatch, batch_id)
        issuing_status.refresh(s, [batch], utcnow())
        s.commit()
    assert raced == [chunk_id]

    with app.app_context():
        s = get_db().session
        chunk = s.get(IssuanceChunk, chunk_id)
        rows = list(
            s.scalars(sa.select(IssuanceRow.status).where(IssuanceRow.batch_id == batch_id))
        )
        assert (chunk.status, chunk.tx_hash) == ("confirmed", TX_HASH)
        assert rows == ["confirmed"]
    # What staff see: the batch done, its row confirmed.
    body = world.api(world.staff).get(f"{URL}/{batch_id}").get_json()["issuance"]
    assert body["state"] == "done"
    assert [r["status"] for r in body["rows"]] == ["confirmed"]


def test_a_failed_outbox_call_still_fails_the_chunk_and_says_why(app, world):
    """The conditional write keeps the other transition: a call the outbox gave up on fails
    the chunk and its rows, with the reason (queued -> failed)."""
    batch_id = _issue(world)
    fail_the_issue_batch_call(app)
    with app.app_context():
        s = get_db().session
        batch = s.get(IssuanceBatch, batch_id)
        issuing_status.refresh(s, [batch], utcnow())
        s.commit()
        chunk = s.scalar(sa.select(IssuanceChunk).where(IssuanceChunk.batch_id == batch_id))
        row = s.scalar(sa.select(IssuanceRow).where(IssuanceRow.batch_id == batch_id))
        assert chunk.status == "failed" and "EnforcedPause" in chunk.error
        assert row.status == "failed" and batch.state == "failed"
