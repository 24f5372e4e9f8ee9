"""The money path on the whole platform (a real Celery worker on Redis, beat's tasks ticking,
the outbox and the indexer, anvil) with the test provider: a paid purchase is issued and its
lot appears; a purchase whose issue the chain keeps refusing is retried by the beat task
`premium.reconcile_purchases` and its card payment refunded, with nothing issued. States are
awaited, never slept for."""

from __future__ import annotations

import time

from backend.chain.registry import artifact
from backend.premium.services import payment_provider
from tests.chain_admin import as_role
from tests.premium.conftest import Person, actions, counts, public_id_of, purchase, webhook


def _wait_for(app, public_id: str, status: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while purchase(app, public_id).status != status:
        assert time.monotonic() < deadline, purchase(app, public_id).status
        time.sleep(0.2)


def test_the_worker_issues_a_paid_purchase_and_refunds_one_the_chain_refuses(
    app, w3, deployed, town_id, offer, buyer_id, platform
):
    me = Person(app, "buyer@example.com")
    paid = public_id_of(me.buy(5000))
    assert webhook(app, paid, amount=5000).get_json()["result"] == "processed"
    _wait_for(app, paid, "issued")
    assert "6,000" in me.get("/points").get_data(as_text=True)

    # The programme is closed on chain behind the console's back: every issue reverts.
    points = w3.eth.contract(
        address=deployed.address("towns.sarabetsu.RegionPoints"), abi=artifact("RegionPoints").abi
    )
    as_role(w3, "town_settings", points.functions.setProgramme(2, 180, False))
    refused = public_id_of(me.buy(2000))
    assert webhook(app, refused, amount=2000).get_json()["result"] == "processed"
    _wait_for(app, refused, "refunded")
    p = purchase(app, refused)
    assert p.issue_attempts == 3 and "RegionPointsProgrammeInactive" in (p.error or "")
    with app.app_context():
        assert payment_provider().refunds == [f"pay_test_{refused}"]
    assert actions(app, p.id) == [
        "payment.refund",
        "points.issue",
        "points.issue",
        "points.issue",
        "premium.sale",
    ]
    assert counts(app)["reserved_yen"] == 10000  # only the issued purchase still counts
