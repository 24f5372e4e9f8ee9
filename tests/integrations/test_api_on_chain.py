"""The headline (issue 14 "done when"): a service's client that uses nothing but HTTP and its
key issues 1,000 points to 200 people in batches against the whole platform (the app on a free
port, a real Celery worker on Redis, beat's tasks ticking, anvil), polls until every issuance
is confirmed on chain with its transaction, and each person's balance read on chain grew by
what was issued. The service's webhook receiver gets exactly one signed `issuance.confirmed`
per issuance (the webhooks worker of ADR 0020, fed by events.py). The budget is then spent: a
further request is refused and nothing is issued; a repeated key still answers its issuance."""

from __future__ import annotations

import secrets

import pytest
import sqlalchemy as sa
from web3 import Web3

from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.integrations.service_webhooks import webhook_owner
from backend.issuing import services as issuing
from backend.regions.models import Town
from backend.webhooks.services import webhook_service
from tests.integrations.client import ServiceClient
from tests.integrations.conftest import THANKS, make_service, state
from tests.issuing.conftest import _signup, chain_balance
from tests.webhooks.receiver import Receiver


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def test_a_thousand_points_to_two_hundred_people_confirmed_on_chain(
    app, world, w3, platform, monkeypatch, receiver
):
    monkeypatch.setattr(issuing, "CHUNK_SIZE", 30)  # 100 per request: four issueBatch calls each
    with app.app_context():
        people = [
            (f"rider{i}@example.com", _signup(app, f"rider{i}@example.com").addresses[0].address)
            for i in range(20)
        ]
        points = get_db().session.get(Town, world.town_id).points_address
    people += [
        (a.lower(), a)
        for a in (Web3.to_checksum_address("0x" + secrets.token_hex(20)) for _ in range(180))
    ]
    before = {holder: chain_balance(w3, points, holder) for _r, holder in people}
    svc = make_service(app, world.town_id, name="Car share", daily=1000, cap=10)
    with app.app_context():
        session = get_db().session
        secret = webhook_service(session).set_endpoint(webhook_owner(svc.id), receiver.url).secret
        session.commit()
    assert secret is not None
    client = ServiceClient(platform.url, svc.key)

    ids: list[int] = []
    for part in range(2):  # two batch requests of 100 issuances, 5 points each
        items = [
            {
                "recipient": recipient,
                "amount": 5,
                "programme": THANKS,
                "reason": f"Ride {part}-{i}",
                "idempotency_key": f"ride-{part}-{i:04d}",
            }
            for i, (recipient, _h) in enumerate(people[part * 100 : (part + 1) * 100])
        ]
        r = client.batch(items)
        assert r.status_code == 202, r.text
        ids += [o["id"] for o in r.json()["issuances"]]
    assert len(set(ids)) == 200

    settled = client.wait_settled(ids)
    assert {s["status"] for s in settled.values()} == {"confirmed"}
    assert all(s["tx_hash"] and s["tx_hash"].startswith("0x") for s in settled.values())
    for _recipient, holder in people:
        assert chain_balance(w3, points, holder) == before[holder] + 5
    with app.app_context():
        calls = (
            get_db()
            .session.scalars(sa.select(OutboxTx).where(OutboxTx.function == "issueBatch"))
            .all()
        )
        # Each request is one issuing batch (one programme) in chunks of 30: 4 + 4 calls.
        assert len(calls) == 8 and sum(len(c.args[0]) for c in calls) == 200
        assert {c.state for c in calls} == {"confirmed"}

    # The day's budget is spent: refused, nothing issued.
    assert client.service().json()["daily_left"] == 0
    quiet = state(app)
    r = client.issue(
        recipient=people[0][0],
        amount=1,
        programme=THANKS,
        reason="Ride",
        idempotency_key="ride-x-0001",
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "budget_exceeded"
    assert state(app) == quiet
    # A repeated key still answers its issuance, confirmed, and issues nothing.
    again = client.batch(
        [
            {
                "recipient": people[0][0],
                "amount": 5,
                "programme": THANKS,
                "reason": "Ride 0-0",
                "idempotency_key": "ride-0-0000",
            }
        ]
    )
    assert again.status_code == 202
    (one,) = again.json()["issuances"]
    assert one["id"] == ids[0] and one["status"] == "confirmed" and one["replayed"]
    assert state(app) == quiet
