"""/api/v1 over HTTP with a key (issue 14 §2), against the app served on a free port: one
issuance answers 202 pending and queues one issueBatch; a repeated idempotency key answers the
same issuance and issues nothing more, another body with it is 409; the cap, the programmes,
the recipient and every field are checked (400, nothing written); budgets refuse with 409 and
nothing issued; wrong, revoked and other services' keys get 401/404; a signed-in browser's
cookie authenticates nothing here; a rotation keeps two keys working."""

from __future__ import annotations

import pytest
import requests
import sqlalchemy as sa

from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.integrations.models import ApiIssuance, ServiceApiKey
from backend.integrations.services import service_account_service
from backend.issuing.models import IssuanceBatch
from backend.regions.models import Town
from tests.integrations.client import ServiceClient
from tests.integrations.conftest import ADMIN_EMAIL, THANKS, make_service, state
from tests.merchants.conftest import PASSWORD


def _one(key: str = "ride-0001", **over):
    body = {
        "recipient": "customer@example.com",
        "amount": 100,
        "programme": THANKS,
        "reason": "Ride 0001: driver",
        "idempotency_key": key,
    }
    body.update(over)
    return body


def test_issue_once_and_repeat_gives_the_same_issuance(app, world, live_server):
    svc = make_service(app, world.town_id, daily=5000)
    client = ServiceClient(live_server.url, svc.key)
    r = client.issue(**_one())
    assert r.status_code == 202, r.text
    first = r.json()
    assert first["status"] == "pending" and first["replayed"] is False
    assert first["amount"] == 100 and first["tx_hash"] is None
    with app.app_context():
        s = get_db().session
        batch = s.scalar(sa.select(IssuanceBatch))
        assert batch.source == "service" and batch.created_by is None
        assert batch.service_account_id == svc.id and batch.state == "confirmed"
        (call,) = s.scalars(sa.select(OutboxTx).where(OutboxTx.function == "issueBatch")).all()
        assert call.args[1] == [100] and call.idempotency_key == f"issuing.batch:{batch.id}:chunk:0"
        audit = s.scalars(
            sa.select(AuditLog).where(AuditLog.action == "points.api_issuance.create")
        ).all()
        assert [(a.actor, a.subject_id, int(a.amount), a.town_id) for a in audit] == [
            (f"service:{svc.id}", str(first["id"]), 100, world.town_id)
        ]
        # The outbox's own audit row of the chain call names the service too.
        chain_audit = s.scalar(sa.select(AuditLog).where(AuditLog.action == "points.issue_batch"))
        assert chain_audit.actor == f"service:{svc.id}"
    before = state(app)
    again = client.issue(**_one())
    assert again.status_code == 202 and again.json()["id"] == first["id"]
    assert again.json()["replayed"] is True
    assert state(app) == before  # nothing more issued, nothing more audited
    other = client.issue(**_one(amount=101))
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"
    assert other.json()["error"]["details"]["id"] == first["id"]
    assert state(app) == before
    got = client.get(first["id"])
    assert got.status_code == 200 and got.json()["status"] == "pending"
    listed = client.page().json()["issuances"]
    assert [i["id"] for i in listed] == [first["id"]]
    me = client.service().json()
    assert me["daily_budget"] == 5000 and me["daily_left"] == 4900


@pytest.mark.parametrize(
    ("over", "code", "field"),
    [
        ({"amount": 0}, "invalid_input", "amount"),
        ({"amount": -5}, "invalid_input", "amount"),
        ({"amount": 1.5}, "invalid_input", "amount"),
        ({"amount": "100"}, "invalid_input", "amount"),
        ({"amount": True}, "invalid_input", "amount"),
        ({"amount": 10**30}, "invalid_input", "amount"),
        ({"amount": 501}, "amount_over_cap", "amount"),
        ({"programme": 1}, "programme_not_allowed", "programme"),
        ({"programme": "3"}, "invalid_input", "programme"),
        ({"programme": 99}, "programme_not_allowed", "programme"),
        ({"recipient": ""}, "invalid_input", "recipient"),
        ({"recipient": "CZZZZZZZZZZ"}, "invalid_recipient", "recipient"),
        ({"recipient": "0x1234"}, "invalid_recipient", "recipient"),
        ({"recipient": "x" * 300}, "invalid_input", "recipient"),
        ({"reason": ""}, "invalid_input", "reason"),
        ({"reason": "r" * 201}, "invalid_input", "reason"),
        ({"idempotency_key": "short"}, "invalid_input", "idempotency_key"),
        ({"idempotency_key": "has space in it"}, "invalid_input", "idempotency_key"),
        ({"idempotency_key": None}, "invalid_input", "idempotency_key"),
    ],
)
def test_bad_input_is_400_and_changes_nothing(app, world, live_server, over, code, field):
    svc = make_service(app, world.town_id, daily=5000, cap=500)
    client = ServiceClient(live_server.url, svc.key)
    before = state(app)
    r = client.issue(**_one(**over))
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert (err["code"], err["details"].get("field")) == (code, field)
    assert err["message"]
    assert state(app) == before


def test_not_json_and_not_an_object_are_400(app, world, live_server):
    svc = make_service(app, world.town_id)
    client = ServiceClient(live_server.url, svc.key)
    before = state(app)
    for data in ("not json", "[1, 2]", '"text"'):
        r = client.http.post(
            f"{client.base}/issuances", data=data, headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 400, r.text
    assert state(app) == before


def test_budgets_refuse_with_nothing_issued(app, world, live_server):
    svc = make_service(app, world.town_id, daily=300, monthly=400)
    client = ServiceClient(live_server.url, svc.key)
    assert client.issue(**_one("k-000001", amount=200)).status_code == 202
    before = state(app)
    r = client.issue(**_one("k-000002", amount=101))
    assert r.status_code == 409
    err = r.json()["error"]
    assert err["code"] == "budget_exceeded" and err["details"]["period"] == "day"
    assert err["details"]["left"] == 100 and "100" in err["message"]
    assert state(app) == before
    # The key of a refused request was not used: the same key with a fitting amount works.
    assert client.issue(**_one("k-000002", amount=100)).status_code == 202
    me = client.service().json()
    assert (me["daily_left"], me["monthly_left"]) == (0, 100)


def test_monthly_budget_refuses_too(app, world, live_server):
    svc = make_service(app, world.town_id, daily=1000, monthly=1000)
    with app.app_context():  # earlier days of this month used 950 (the counter, not a clock)
        from backend.integrations import budgets
        from backend.integrations.models import MONTH, ServiceBudgetUsage

        _day, month = budgets.periods(service_account_service()._now())
        s = get_db().session
        s.add(ServiceBudgetUsage(service_account_id=svc.id, period=MONTH, start=month, used=950))
        s.commit()
    client = ServiceClient(live_server.url, svc.key)
    before = state(app)
    r = client.issue(**_one(amount=51))
    assert r.status_code == 409 and r.json()["error"]["details"]["period"] == "month"
    assert state(app) == before
    assert client.issue(**_one(amount=50)).status_code == 202


def test_wrong_revoked_and_other_services_keys(app, world, live_server, admins):
    mine = make_service(app, world.town_id, name="Car share")
    gym = make_service(app, world.town_id, name="Gym")
    client = ServiceClient(live_server.url, mine.key)
    issued = client.issue(**_one()).json()
    before = state(app)
    for header in (
        "",
        "Bearer",
        "Bearer nope",
        "Basic abc",
        f"Token {mine.key}",
        f"Bearer {mine.key[:-1]}x",
    ):
        r = requests.get(
            f"{live_server.url}/api/v1/issuances/{issued['id']}",
            headers={"Authorization": header} if header else {},
            timeout=10,
        )
        assert r.status_code == 401, (header, r.text)
        assert r.json()["error"]["code"] == "invalid_api_key"
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    # Another service's key does not see this issuance: 404, as for an id nobody has.
    other = ServiceClient(live_server.url, gym.key)
    assert other.get(issued["id"]).status_code == 404
    assert other.get(issued["id"]).json()["error"]["code"] == "issuance_not_found"
    assert other.get(999_999).status_code == 404
    assert other.page().json()["issuances"] == []
    # Revoked: 401 from then on.
    with app.app_context():
        s = get_db().session
        key = s.scalar(sa.select(ServiceApiKey).where(ServiceApiKey.service_account_id == mine.id))
        service_account_service().revoke(
            world.user(ADMIN_EMAIL), s.get(Town, world.town_id), mine.id, key.id
        )
    assert client.get(issued["id"]).status_code == 401
    after = state(app)
    assert after["audit_log"] == before["audit_log"] + 1  # the revoke, nothing else
    assert client.issue(**_one("ride-0002")).status_code == 401
    assert state(app) == after


def test_a_signed_in_cookie_authenticates_nothing(app, world, live_server, admins):
    svc = make_service(app, world.town_id)
    browser = requests.Session()
    token = browser.get(f"{live_server.url}/api/csrf", timeout=10).json()["csrf_token"]
    r = browser.post(
        f"{live_server.url}/api/auth/login",
        json={"email": ADMIN_EMAIL, "password": PASSWORD},
        headers={"X-CSRFToken": token},
        timeout=10,
    )
    assert r.status_code == 200
    token = r.json()["csrf_token"]
    before = state(app)
    assert browser.get(f"{live_server.url}/api/v1/service", timeout=10).status_code == 401
    r = browser.post(
        f"{live_server.url}/api/v1/issuances",
        json=_one(),
        headers={"X-CSRFToken": token},
        timeout=10,
    )
    assert r.status_code == 401
    assert state(app) == before
    # With its key the same request needs no CSRF token (and the cookie changes nothing).
    r = browser.post(
        f"{live_server.url}/api/v1/issuances",
        json=_one(),
        headers={"Authorization": f"Bearer {svc.key}"},
        timeout=10,
    )
    assert r.status_code == 202


def test_rotation_keeps_both_keys_working_over_http(app, world, live_server, admins):
    svc = make_service(app, world.town_id)
    with app.app_context():
        new = service_account_service().rotate(
            world.user(ADMIN_EMAIL), get_db().session.get(Town, world.town_id), svc.id
        )
    old_client = ServiceClient(live_server.url, svc.key)
    new_client = ServiceClient(live_server.url, new.text)
    a = old_client.issue(**_one("rot-0001"))
    b = new_client.issue(**_one("rot-0002"))
    assert a.status_code == b.status_code == 202
    # One service: each key sees the other's issuances, and the keys share idempotency.
    assert new_client.get(a.json()["id"]).status_code == 200
    assert new_client.issue(**_one("rot-0001")).json()["id"] == a.json()["id"]


def test_batch_all_or_nothing_and_replays(app, world, live_server):
    svc = make_service(app, world.town_id, daily=10_000)
    client = ServiceClient(live_server.url, svc.key)
    items = [
        _one(f"b-{i:06d}", recipient=r, amount=10 + i)
        for i, r in enumerate(["customer@example.com", "neighbour@example.com"] * 3)
    ]
    before = state(app)
    bad = client.batch([*items, _one("b-bad-01", recipient="CZZZZZZZZZZ")])
    assert bad.status_code == 400
    err = bad.json()["error"]
    assert err["code"] == "invalid_recipient" and err["details"]["index"] == 6
    assert [i["index"] for i in err["details"]["invalid"]] == [6]
    dup = client.batch([items[0], items[0]])
    assert dup.status_code == 400 and dup.json()["error"]["details"]["index"] == 1
    too_many = client.batch([_one(f"m-{i:06d}") for i in range(1001)])
    assert too_many.status_code == 400
    assert client.batch([]).status_code == 400
    assert client.batch([{"recipient": "x"}]).json()["error"]["details"]["index"] == 0
    assert state(app) == before
    r = client.batch(items)
    assert r.status_code == 202, r.text
    out = r.json()["issuances"]
    assert [o["idempotency_key"] for o in out] == [i["idempotency_key"] for i in items]
    assert all(o["status"] == "pending" and not o["replayed"] for o in out)
    # The same person twice in one batch is two issuances (two rides).
    assert len({o["id"] for o in out}) == 6
    # Again with two new items: the six come back as they were, two more are issued.
    more = [*items, _one("b-000100", amount=7), _one("b-000101", amount=8)]
    r2 = client.batch(more)
    assert r2.status_code == 202
    out2 = r2.json()["issuances"]
    assert [o["id"] for o in out2[:6]] == [o["id"] for o in out]
    assert [o["replayed"] for o in out2] == [True] * 6 + [False] * 2
    with app.app_context():
        s = get_db().session
        assert s.scalar(sa.select(sa.func.count()).select_from(ApiIssuance)) == 8
        assert s.scalar(sa.select(sa.func.count()).select_from(IssuanceBatch)) == 2
    assert client.service().json()["daily_left"] == 10_000 - sum(10 + i for i in range(6)) - 15


def test_an_email_without_an_account_is_held_for_its_owner(app, world, live_server):
    """Issue 14 §3 (backend/claims): the points wait in the claim wallet of the address."""
    svc = make_service(app, world.town_id)
    r = ServiceClient(live_server.url, svc.key).issue(**_one(recipient="newcomer@example.com"))
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending"


def test_batch_errors_name_the_item_in_the_request(app, world, live_server):
    svc = make_service(app, world.town_id, cap=50)
    client = ServiceClient(live_server.url, svc.key)
    first = _one("n-000001", amount=10)
    assert client.batch([first]).status_code == 202
    before = state(app)
    over = client.batch([first, _one("n-000002", amount=10), _one("n-000003", amount=51)])
    assert over.status_code == 400
    assert over.json()["error"]["code"] == "amount_over_cap"
    assert over.json()["error"]["details"]["index"] == 2
    # The first item is a replay, so the bad recipient is the second new one: index 2 all the same.
    bad = client.batch(
        [first, _one("n-000002", amount=10), _one("n-000003", amount=10, recipient="CZZZZZZZZZZ")]
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["details"]["index"] == 2
    assert [i["index"] for i in bad.json()["error"]["details"]["invalid"]] == [2]
    wrong = client.batch([_one("n-000004", amount=10, programme=1)])
    assert wrong.json()["error"]["details"]["index"] == 0
    assert state(app) == before
