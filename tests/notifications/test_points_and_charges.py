"""Points arriving and charges paid, on real anvil and PostgreSQL: the indexer's handlers record
one notification per fact and person, the mail task sends exactly one mail each to the real SMTP
server, the list page shows them; a handler run twice, a reorg and its replay, and a switched-off
kind add nothing; the Celery worker sends the mail after the indexer's commit by itself."""

from __future__ import annotations

import re

import sqlalchemy as sa

from backend.core.db import get_db
from backend.merchants.models import Charge
from backend.points.services import points_service
from tests.chain._reorg_helpers import drive, revert, snapshot
from tests.merchants.conftest import run_chain
from tests.notifications.chain_helpers import ADDRESS, listed, run_handlers_again
from tests.notifications.conftest import send_mails, stored, wait_until

EN = {"Accept-Language": "en"}


def _charge(world, clerk, customer, amount: int, key: str) -> int:
    r = clerk.post(
        f"/api/merchants/{world.merchant_id}/charges", {"amount": amount, "idempotency_key": key}
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    charge = r.get_json()["charge"]
    paid = customer.post(f"/api/pay/{charge['code']}")
    assert paid.status_code == 200, paid.get_data(as_text=True)
    return int(charge["id"])


def _welcome(app, world, town_id: int | None = None) -> None:
    with app.app_context():
        points_service().grant_welcome_points(world.user(world.customer), world.town(town_id))


def _uid(app, world, email: str) -> int:
    with app.app_context():
        return world.user(email).id


def _token(client, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_points_and_a_paid_charge_tell_the_customer_once_each(app, world, w3, mailbox):
    me = _uid(app, world, world.customer)
    _welcome(app, world)
    run_chain(app, w3)
    rows = stored(app)
    assert [(r["user_id"], r["kind"], r["params"]["amount"]) for r in rows] == [
        (me, "points_arrived", 500)
    ]
    customer, clerk = world.api(world.customer), world.api(world.clerk)
    charge_id = _charge(world, clerk, customer, 300, "notify-charge-1")
    run_chain(app, w3)
    rows = stored(app)
    # Only the payer hears of the payment (the shop's clerk and the neighbour hear nothing).
    assert [(r["user_id"], r["kind"], r["key"]) for r in rows[1:]] == [
        (me, "charge_paid", f"charge_paid:{charge_id}")
    ]
    assert rows[1]["params"] | {} == {
        "amount": 300,
        "shop_ja": "直売所",
        "shop_en": "Farm Market",
        "town_ja": "sarabetsu",
        "town_en": "Sarabetsu",
    }
    assert send_mails(app) == {"sent": 2}
    mails = mailbox.to(world.customer)
    assert sorted(m.subject for m in mails) == ["お支払いが完了しました", "ポイントが届きました"]
    assert len(mailbox.mails) == 2  # nobody else got one

    # The indexer's handlers run again over the same events (a retried chunk): nothing new.
    rows = stored(app)
    run_handlers_again(app)
    assert stored(app) == rows
    assert send_mails(app) == {}
    assert len(mailbox.mails) == 2

    items, html = listed(customer.client, "en")
    assert [(i["kind"], i["unread"]) for i in items] == [
        ("charge_paid", "true"),
        ("points_arrived", "true"),
    ]  # newest first, unread marked
    assert "You paid 300 points at Farm Market (Sarabetsu)." in items[0]["text"]
    assert "500 points of Sarabetsu arrived in your account." in items[1]["text"]
    assert "JST" in items[0]["text"]
    assert not ADDRESS.search(html)  # no address, no transaction hash
    with app.app_context():
        tx_hash = get_db().session.scalar(sa.select(Charge.tx_hash).where(Charge.id == charge_id))
        get_db().session.commit()
    assert tx_hash and tx_hash not in html
    # Each person sees only their own.
    neighbour_items, _ = listed(world.api(world.neighbour).client)
    assert neighbour_items == []


def test_a_kind_switched_off_sends_nothing_on_that_channel(app, world, w3, mailbox):
    customer, clerk = world.api(world.customer), world.api(world.clerk)
    path = "/me/notifications/settings"
    form = {
        "csrf_token": _token(customer.client, path),
        # charge_paid by mail off; points_arrived in the app off; everything else on
        "charge_paid.in_app": "on",
        "points_arrived.email": "on",
        "ticket_used.in_app": "on",
        "ticket_used.email": "on",
        "vote_opened.in_app": "on",
        "vote_opened.email": "on",
    }
    assert customer.client.post(path, data=form).status_code == 200
    _welcome(app, world)
    run_chain(app, w3)
    _charge(world, clerk, customer, 120, "notify-charge-off")
    run_chain(app, w3)
    rows = {r["kind"]: r for r in stored(app)}
    assert (rows["points_arrived"]["in_app"], rows["points_arrived"]["email"]) == (False, "pending")
    assert (rows["charge_paid"]["in_app"], rows["charge_paid"]["email"]) == (True, "off")
    assert send_mails(app) == {"sent": 1}
    (only,) = mailbox.to(world.customer)
    assert only.subject == "ポイントが届きました"  # the points' mail; none for the payment
    items, _ = listed(customer.client)
    assert [i["kind"] for i in items] == ["charge_paid"]  # the points are not listed


def test_a_reorg_withdraws_the_payment_and_its_replay_shows_it_once(app, world, w3, mailbox):
    me = _uid(app, world, world.customer)
    _welcome(app, world)
    run_chain(app, w3)
    customer, clerk = world.api(world.customer), world.api(world.clerk)
    snap = snapshot(w3)
    charge_id = _charge(world, clerk, customer, 300, "notify-reorg-1")
    run_chain(app, w3, rounds=1)
    assert send_mails(app) == {"sent": 2}
    assert [i["kind"] for i in listed(customer.client)[0]] == ["charge_paid", "points_arrived"]

    revert(w3, snap)  # the block with the payment leaves the chain
    with app.app_context():
        from backend.chain.indexer_tasks import index_blocks

        index_blocks()
        get_db().session.remove()
    paid = [r for r in stored(app) if r["kind"] == "charge_paid"]
    assert [(r["withdrawn"], r["email"]) for r in paid] == [(True, "sent")]  # the mail went
    assert [i["kind"] for i in listed(customer.client)[0]] == ["points_arrived"]

    def paid_again() -> bool:
        with app.app_context():
            from backend.chain.indexer_tasks import index_blocks

            index_blocks()
            s = get_db().session
            status = s.scalar(sa.select(Charge.status).where(Charge.id == charge_id))
            s.commit()
            s.remove()
        return status == "paid"

    assert drive(app, w3, paid_again)  # the relayed payment is mined again on the new branch
    paid = [r for r in stored(app, me) if r["kind"] == "charge_paid"]
    assert [(r["key"], r["withdrawn"], r["email"]) for r in paid] == [
        (f"charge_paid:{charge_id}", False, "sent")
    ]
    assert [i["kind"] for i in listed(customer.client)[0]] == ["charge_paid", "points_arrived"]
    assert send_mails(app) == {}
    assert len(mailbox.to(world.customer)) == 2


def test_the_worker_mails_after_the_indexers_commit_by_itself(
    app, world, w3, mailbox, celery_worker
):
    _welcome(app, world)
    with app.app_context():
        user = world.user(world.customer)
        user.locale = "en"
        get_db().session.commit()
    run_chain(app, w3)  # the indexer's commit kicks notifications.send_mails on the worker
    mail = mailbox.wait_for(world.customer, timeout=30)
    assert mail.subject == "Points arrived"
    assert "500 points of Sarabetsu arrived in your account." in mail.body
    assert wait_until(lambda: [r["email"] for r in stored(app)] == ["sent"], timeout=30)
    assert len(mailbox.mails) == 1
