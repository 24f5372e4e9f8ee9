"""A reorg under a confirmed claim transfer: the indexer takes its Transfer back (the transfer
is "sent" again), the mover keeps waiting for it instead of sending another (the wallet's
balance is back, but a transfer is live), the outbox sends the same signed request again, and
the account ends with the points once."""

from __future__ import annotations

import sqlalchemy as sa

from backend.chain.indexer_tasks import index_blocks
from backend.claims import tasks
from backend.claims.models import ClaimTransfer
from backend.core.db import get_db
from tests.chain._reorg_helpers import drive, revert, snapshot
from tests.claims.conftest import issue
from tests.issuing.conftest import chain_balance
from tests.merchants.conftest import _signup, run_chain

EMAIL = "reorg-claim@example.com"


def _index_and_move(app) -> None:  # type: ignore[no-untyped-def]
    with app.app_context():
        index_blocks()
        tasks.move_claimed()
        get_db().session.remove()


def _transfers(app) -> list[tuple[int, str]]:  # type: ignore[no-untyped-def]
    with app.app_context():
        s = get_db().session
        out = [(t.number, t.status) for t in s.scalars(sa.select(ClaimTransfer))]
        s.commit()
        return out


def test_a_claim_transfer_follows_the_chain_through_a_reorg(app, world, w3):
    staff = world.api(world.staff)
    batch = issue(staff, EMAIL, 600, "reorg-claim-1")
    assert staff.post(f"/api/towns/sarabetsu/issuances/{batch['id']}/confirm").status_code == 200
    run_chain(app, w3)
    wallet = batch["rows"][0]["address"]
    with app.app_context():
        points = world.town().points_address
        own = _signup(app, EMAIL).addresses[0].address  # signed up, address verified
        assert tasks.take_verified() == 1
    snap = snapshot(w3)
    _index_and_move(app)
    run_chain(app, w3)
    assert _transfers(app) == [(0, "confirmed")]
    assert chain_balance(w3, points, own) == 600
    revert(w3, snap)
    _index_and_move(app)  # the reorg takes the Transfer back; the mover sends nothing new
    assert _transfers(app) == [(0, "sent")]
    assert chain_balance(w3, points, wallet) == 600

    def done() -> bool:
        return _transfers(app) == [(0, "confirmed")]

    assert drive(app, w3, done, also=lambda: _index_and_move(app))
    _index_and_move(app)
    assert _transfers(app) == [(0, "confirmed")]  # one transfer, ever
    assert chain_balance(w3, points, own) == 600
    assert chain_balance(w3, points, wallet) == 0
