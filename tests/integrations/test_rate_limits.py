"""Per-key rate limits on /api/v1 (backend/core/limits.py): one key's requests past its limit
answer 429 while another key of the same client address is still served; refused requests
(a wrong key each time) are counted per address. The limits are the production rules' with
smaller numbers, so the test does not depend on how fast the machine sends."""

from __future__ import annotations

import pytest

from backend.chain.outbox import outbox_service
from backend.core import limits
from backend.core.limits import Rule
from tests.integrations.conftest import THANKS, make_service


@pytest.fixture
def app(make_app, deployed, monkeypatch):
    guess = Rule("8/minute", failures_only=True, methods=("GET", "POST"), scope="api_v1")
    monkeypatch.setitem(
        limits.LIMITED_ENDPOINTS,
        "integrations.service",
        (Rule("5/minute", limits._api_key, methods=("GET",), scope="api_v1_read"), guess),
    )
    monkeypatch.setitem(
        limits.LIMITED_ENDPOINTS,
        "integrations.create_issuance",
        (Rule("3/minute", limits._api_key, scope="api_v1_write"), guess),
    )
    app = make_app()
    with app.app_context():
        outbox_service().auto_dispatch = False
    return app


def _get(web, key: str) -> int:
    return web.get("/api/v1/service", headers={"Authorization": f"Bearer {key}"}).status_code


def test_one_key_is_limited_and_another_is_not(app, world):
    a = make_service(app, world.town_id, name="Car share")
    b = make_service(app, world.town_id, name="Gym")
    web = app.test_client()
    assert [_get(web, a.key) for _ in range(6)] == [200] * 5 + [429]
    assert _get(web, b.key) == 200
    r = web.get("/api/v1/service", headers={"Authorization": f"Bearer {a.key}"})
    assert r.status_code == 429 and r.get_json()["error"]["code"] == "too_many_requests"
    assert "Retry-After" in r.headers


def test_writes_are_limited_per_key(app, world):
    a = make_service(app, world.town_id, daily=10_000)
    web = app.test_client()
    codes = [
        web.post(
            "/api/v1/issuances",
            json={
                "recipient": "customer@example.com",
                "amount": 1,
                "programme": THANKS,
                "reason": "Visit",
                "idempotency_key": f"visit-{i:04d}",
            },
            headers={"Authorization": f"Bearer {a.key}"},
        ).status_code
        for i in range(4)
    ]
    assert codes == [202, 202, 202, 429]


def test_wrong_keys_are_limited_per_address(app, world):
    web = app.test_client()
    codes = [_get(web, f"fur_{i:012x}_{'A' * 43}") for i in range(9)]
    assert codes == [401] * 8 + [429]
