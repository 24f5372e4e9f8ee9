"""A reorg deeper than the confirmations under a confirmed issuance: the indexer takes the
chunk's PointsBatchIssued back (rows "sent", batch "sending"), the outbox re-sends the same call
(same key: nothing issued twice) and the batch is "done" again, with each balance on chain
issued once."""

from __future__ import annotations

import sqlalchemy as sa

from backend.chain.indexer_tasks import index_blocks
from backend.core.db import get_db
from backend.issuing.models import IssuanceBatch, IssuanceRow
from tests.chain._reorg_helpers import drive, revert, snapshot
from tests.issuing.conftest import chain_balance
from tests.merchants.conftest import run_chain

URL = "/api/towns/sarabetsu/issuances"


def _index(app) -> None:  # type: ignore[no-untyped-def]
    with app.app_context():
        index_blocks()
        get_db().session.remove()


def _state(app, batch_id: int) -> tuple[str, list[str]]:  # type: ignore[no-untyped-def]
    with app.app_context():
        s = get_db().session
        batch = s.get(IssuanceBatch, batch_id)
        rows = s.scalars(
            sa.select(IssuanceRow.status).where(IssuanceRow.batch_id == batch_id)
        ).all()
        out = (batch.state, sorted(rows))
        s.commit()
        return out


def test_an_issuance_follows_the_chain_through_a_reorg(app, world, w3):
    staff = world.api(world.staff)
    body = {
        "rows": [
            {"recipient": world.customer, "amount": 300},
            {"recipient": world.neighbour, "amount": 200},
        ],
        "programme_id": 3,
        "reason": "Thanks",
        "idempotency_key": "reorg-issue-1",
    }
    batch_id = staff.post(URL, body).get_json()["issuance"]["id"]
    snap = snapshot(w3)
    assert staff.post(f"{URL}/{batch_id}/confirm").status_code == 200
    run_chain(app, w3)
    assert _state(app, batch_id) == ("done", ["confirmed", "confirmed"])
    revert(w3, snap)
    _index(app)  # the indexer sees the reorg: the chunk is taken back
    assert _state(app, batch_id) == ("sending", ["sent", "sent"])

    def done() -> bool:
        return _state(app, batch_id) == ("done", ["confirmed", "confirmed"])

    assert drive(app, w3, done, also=lambda: _index(app))
    with app.app_context():
        points = world.town().points_address
        customer = world.user(world.customer).addresses[0].address
        neighbour = world.user(world.neighbour).addresses[0].address
    assert chain_balance(w3, points, customer) == 300
    assert chain_balance(w3, points, neighbour) == 200
