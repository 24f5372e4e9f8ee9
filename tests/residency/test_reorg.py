"""A reorg under an issued pass: the indexer takes PassIssued back (the row is "issuing" again,
no token id), the outbox sends the same issue again, and the person ends with one pass."""

from __future__ import annotations

from backend.chain.indexer_tasks import index_blocks
from backend.core.db import get_db
from tests.chain._reorg_helpers import drive, revert, snapshot
from tests.residency.conftest import (
    BASE,
    ID,
    counts,
    form,
    pass_contract,
    resident,
    settle,
    signup,
)


def _index(app) -> None:  # type: ignore[no-untyped-def]
    with app.app_context():
        index_blocks()
        get_db().session.remove()


def test_an_issued_pass_follows_the_chain_through_a_reorg(
    manual_outbox, town, staff, dao_chain, w3
):
    app, (api, _) = manual_outbox, staff
    _, uid, addr = signup(app, "hanako@example.com")
    data = {"user_id": str(uid), "saw_id": "1", **ID}
    assert form(api, f"{BASE}/verify", data).status_code == 303
    snap = snapshot(w3)
    settle(app, dao_chain)
    row = resident(app, uid)
    assert (row["state"], row["token_id"]) == ("issued", 1)
    before = counts(app)

    revert(w3, snap)
    _index(app)  # the reorg takes PassIssued back
    row = resident(app, uid)
    assert (row["state"], row["token_id"]) == ("issuing", None)
    passes = pass_contract(dao_chain)
    assert passes.functions.balanceOf(addr).call() == 0

    def issued() -> bool:
        return resident(app, uid)["state"] == "issued"

    assert drive(app, w3, issued, also=lambda: _index(app))
    row = resident(app, uid)
    assert (row["state"], row["token_id"]) == ("issued", 1)
    assert passes.functions.balanceOf(addr).call() == 1  # one pass, ever
    assert counts(app)[0] == before[0]  # still one resident row
