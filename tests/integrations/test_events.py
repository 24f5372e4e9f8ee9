"""The webhooks seam (events.py): when issuing settles a chunk, each service issuance in it
is queued once per state with the webhooks domain, in the same transaction: confirmed (with
its transaction) when the indexer sees the chunk's PointsBatchIssued, failed (with the reason)
when the outbox gives up. A service with no endpoint gets no delivery; settling again (the
indexer or the follower run twice) queues nothing twice."""

from __future__ import annotations

import sqlalchemy as sa

from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.integrations.models import ApiIssuance
from backend.integrations.service_webhooks import webhook_owner
from backend.issuing.models import IssuanceChunk
from backend.issuing.status import _set_rows
from backend.webhooks.models import WebhookDelivery
from backend.webhooks.services import webhook_service
from tests.integrations.conftest import THANKS, make_service
from tests.merchants.conftest import run_chain

HOOK = "http://127.0.0.1:9/hook"  # never reached: no worker delivers in these tests


def _hooked(app, town_id: int, name: str = "Car share"):
    svc = make_service(app, town_id, name=name)
    with app.app_context():
        s = get_db().session
        webhook_service(s).set_endpoint(webhook_owner(svc.id), HOOK)
        s.commit()
    return svc


def _issue(app, key: str, item_key: str, amount: int = 10) -> int:
    r = app.test_client().post(
        "/api/v1/issuances",
        json={
            "recipient": "customer@example.com",
            "amount": amount,
            "programme": THANKS,
            "reason": "Ride",
            "idempotency_key": item_key,
        },
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status_code == 202, r.get_data(as_text=True)
    return int(r.get_json()["id"])


def _deliveries(app) -> list[WebhookDelivery]:
    with app.app_context():
        return list(
            get_db().session.scalars(sa.select(WebhookDelivery).order_by(WebhookDelivery.id))
        )


def test_confirmed_once_per_issuance_with_its_transaction(app, world, w3):
    hooked = _hooked(app, world.town_id)
    quiet = make_service(app, world.town_id, name="Gym")  # no endpoint: nothing queued
    a = _issue(app, hooked.key, "ride-0001")
    b = _issue(app, hooked.key, "ride-0002", 20)
    c = _issue(app, quiet.key, "gym-0001")
    run_chain(app, w3)
    found = _deliveries(app)
    assert sorted(d.event_id for d in found) == [
        f"issuance:{a}:confirmed",
        f"issuance:{b}:confirmed",
    ]
    for d in found:
        assert d.url == HOOK and d.event_type == "issuance.confirmed" and d.state == "pending"
        assert d.payload["status"] == "confirmed" and d.payload["tx_hash"].startswith("0x")
    assert {d.payload["amount"] for d in found} == {10, 20}
    with app.app_context():
        s = get_db().session
        assert {i.id: i.announced for i in s.scalars(sa.select(ApiIssuance))} == {
            a: "confirmed",
            b: "confirmed",
            c: "confirmed",
        }
        # The settling runs again (a task run twice, a reorg replayed): nothing more.
        for chunk in s.scalars(sa.select(IssuanceChunk)):
            _set_rows(s, chunk, "confirmed")
        s.commit()
    assert len(_deliveries(app)) == 2
    got = app.test_client().get(
        f"/api/v1/issuances/{a}", headers={"Authorization": f"Bearer {hooked.key}"}
    )
    assert got.get_json()["status"] == "confirmed"
    assert got.get_json()["tx_hash"] == next(
        d.payload["tx_hash"] for d in found if d.event_id == f"issuance:{a}:confirmed"
    )


def test_failed_once_with_the_reason(app, world):
    hooked = _hooked(app, world.town_id)
    a = _issue(app, hooked.key, "ride-0001")
    with app.app_context():
        s = get_db().session
        tx = s.scalar(sa.select(OutboxTx).where(OutboxTx.function == "issueBatch"))
        tx.state, tx.error = "failed", "execution reverted: EnforcedPause()"
        s.commit()
    web = app.test_client()
    for _ in range(2):  # read twice: the failure is queued once
        body = web.get(
            f"/api/v1/issuances/{a}", headers={"Authorization": f"Bearer {hooked.key}"}
        ).get_json()
        assert body["status"] == "failed" and "EnforcedPause" in body["failure_reason"]
    (d,) = _deliveries(app)
    assert (d.event_id, d.event_type) == (f"issuance:{a}:failed", "issuance.failed")
    assert d.payload["failure_reason"] == "execution reverted: EnforcedPause()"
    failed = web.get(
        "/api/v1/issuances?status=failed", headers={"Authorization": f"Bearer {hooked.key}"}
    ).get_json()["issuances"]
    assert [i["id"] for i in failed] == [a]
