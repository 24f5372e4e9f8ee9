"""Rate limits (issue 11 §4): password guessing, sign-up bursts and key-export checks are
stopped with a translated 429; counters live in Redis and are shared by every web host."""

from __future__ import annotations

import re
import uuid

import pytest
from limits.storage import MemoryStorage, RedisStorage

from backend.config import Settings
from tests.accounts.conftest import PASSWORD, Api, assert_error

WRONG = "not the password"


def _signed_up_then_out(api: Api, email: str = "fan@example.com") -> None:
    assert api.signup(email).status_code == 201
    assert api.post("/api/auth/logout").status_code == 200


def test_25_wrong_passwords_then_the_right_one_is_refused(app, api):
    _signed_up_then_out(api)
    answers = [
        api.post("/api/auth/login", {"email": "fan@example.com", "password": WRONG}).status_code
        for _ in range(25)
    ]
    # The first ten are checked; from then on nobody can guess, neither can the owner.
    assert answers[:10] == [401] * 10
    assert answers[10:] == [429] * 15
    right = api.client.post(
        "/api/auth/login",
        json={"email": "fan@example.com", "password": PASSWORD},
        headers={"X-CSRFToken": api.token, "Accept-Language": "ja"},
    )
    err = assert_error(right, 429, "too_many_requests")
    assert err["message"] == "試行回数が多すぎます。しばらく待ってからもう一度お試しください。"
    assert int(right.headers["Retry-After"]) > 0
    assert api.get("/api/accounts/me").status_code == 401  # not signed in


def test_guessing_one_account_from_many_addresses_is_stopped_per_account(make_app, deployed):
    # Behind one trusted proxy each guess may come from its own address: the per-account
    # counter still stops at ten failures.
    from tests.accounts.conftest import MASTER_KEY

    app = make_app(master_key=MASTER_KEY, proxy_hops=1)
    api = Api(app.test_client())
    _signed_up_then_out(api)
    statuses = []
    for i in range(12):
        resp = api.client.post(
            "/api/auth/login",
            json={"email": "FAN@example.com", "password": WRONG},
            headers={"X-CSRFToken": api.token, "X-Forwarded-For": f"203.0.113.{i}"},
        )
        statuses.append(resp.status_code)
    assert statuses == [401] * 10 + [429] * 2
    # Another account from those addresses is not locked by it.
    other = api.client.post(
        "/api/auth/login",
        json={"email": "someone@example.com", "password": WRONG},
        headers={"X-CSRFToken": api.token, "X-Forwarded-For": "203.0.113.50"},
    )
    assert other.status_code == 401


def test_forged_forwarded_for_does_not_escape_the_limit_without_a_proxy(app, api):
    # PROXY_HOPS=0 (no proxy): X-Forwarded-For is the client's own words and is ignored.
    statuses = [
        api.client.post(
            "/api/auth/login",
            json={"email": f"u{i}@example.com", "password": WRONG},
            headers={"X-CSRFToken": api.refresh_token(), "X-Forwarded-For": f"198.51.100.{i}"},
        ).status_code
        for i in range(11)
    ]
    assert statuses == [401] * 10 + [429]


def test_login_page_answers_429_with_a_translated_page(app, client):
    def token() -> str:
        html = client.get("/login").get_data(as_text=True)
        return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)

    statuses = []
    for _ in range(11):
        resp = client.post(
            "/login",
            data={"email": "a@example.com", "password": WRONG, "csrf_token": token()},
            headers={"Accept-Language": "en"},
        )
        statuses.append(resp.status_code)
    assert statuses == [401] * 10 + [429]
    assert resp.mimetype == "text/html"
    assert "Too many attempts. Please wait a while and try again." in resp.get_data(as_text=True)


def test_the_login_page_and_the_api_share_one_counter(app, api):
    for _ in range(6):
        resp = api.post("/api/auth/login", {"email": "a@example.com", "password": WRONG})
        assert resp.status_code == 401
    statuses = []
    for _ in range(5):
        html = api.client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        statuses.append(
            api.client.post(
                "/login", data={"email": "a@example.com", "password": WRONG, "csrf_token": token}
            ).status_code
        )
    assert statuses == [401] * 4 + [429]


def test_key_export_password_checks_are_limited(app, api):
    assert api.signup().status_code == 201
    answers = [
        api.post("/api/accounts/export-key", {"password": WRONG}).status_code for _ in range(8)
    ]
    assert answers == [401] * 5 + [429] * 3
    right = api.post("/api/accounts/export-key", {"password": PASSWORD})
    assert_error(right, 429, "too_many_requests")
    assert "private_key" not in right.get_data(as_text=True)


def test_wallet_link_password_checks_count_with_the_key_exports(app, api):
    """Linking a wallet asks for the password again (docs/adr/0026): its wrong passwords count
    on the same per-account counter as the key export's, page and API alike."""
    assert api.signup().status_code == 201
    link = {"message": "m", "signature": "0x", "password": WRONG}
    answers = [api.post("/api/accounts/export-key", {"password": WRONG}).status_code]
    answers += [api.post("/api/accounts/wallets", link).status_code for _ in range(2)]
    answers += [
        api.post(
            "/api/accounts/wallets/remove", {"address": "0x" + "ab" * 20, "password": WRONG}
        ).status_code
    ]
    html = api.client.get("/me/wallets").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    page = api.client.post("/me/wallets", data={**link, "csrf_token": token})
    answers.append(page.status_code)
    assert answers == [401] * 5
    right = api.post("/api/accounts/wallets", {**link, "password": PASSWORD})
    assert_error(right, 429, "too_many_requests")


def test_six_signups_in_a_burst_are_refused_after_five(app, api):
    answers = []
    for i in range(6):
        api.refresh_token()
        answers.append(api.signup(f"farm{i}@example.com").status_code)
    assert answers == [201] * 5 + [429]


def test_counters_are_in_redis_and_shared_by_every_web_host(make_app, deployed):
    from tests.accounts.conftest import MASTER_KEY

    # Two apps with the same settings stand for two web hosts behind one load balancer.
    prefix = f"shared-{uuid.uuid4().hex}"
    one = make_app(master_key=MASTER_KEY, ratelimit_key_prefix=prefix)
    two = make_app(master_key=MASTER_KEY, ratelimit_key_prefix=prefix)
    assert isinstance(one.extensions["limiter"].storage, RedisStorage)
    a, b = Api(one.test_client()), Api(two.test_client())
    statuses = [
        (a if i % 2 else b)
        .post("/api/auth/login", {"email": "x@example.com", "password": WRONG})
        .status_code
        for i in range(11)
    ]
    assert statuses == [401] * 10 + [429]


@pytest.mark.parametrize(
    ("broker", "expected"),
    [("filesystem://", MemoryStorage), ("redis://127.0.0.1:6379/0", RedisStorage)],
)
def test_storage_follows_the_broker(tmp_path, broker, expected):
    settings = Settings(instance_path=tmp_path, celery_broker_url=broker)
    from backend.core.limits import storage_uri

    scheme = "memory" if expected is MemoryStorage else "redis"
    assert storage_uri(settings).split("://")[0] == scheme


def test_openapi_declares_the_429_of_every_limited_operation(app, client):
    paths = client.get("/api/openapi.json").get_json()["paths"]
    for path, method in [
        ("/api/auth/login", "post"),
        ("/api/accounts/signup", "post"),
        ("/api/accounts/export-key", "post"),
        ("/api/auth/siwe/verify", "post"),
        ("/api/merchants/{merchant_id}/charge-customer", "post"),
    ]:
        assert "429" in paths[path][method]["responses"], (path, method)
    assert "429" not in paths["/api/accounts/me"]["get"]["responses"]


def test_every_limited_endpoint_exists(app):
    """A renamed endpoint would silently lose its limit (init_limits skips unknown names)."""
    from backend.core.limits import LIMITED_ENDPOINTS

    missing = sorted(set(LIMITED_ENDPOINTS) - set(app.view_functions))
    assert missing == []


def test_siwe_verify_guessing_is_limited(app, api):
    """Forged SIWE signatures: ten are checked and refused, then 429 with a translated message;
    the nonce endpoint has its own, looser limit."""
    info = api.get("/api/auth/siwe/nonce").get_json()
    message = f"127.0.0.1:5000 wants you to sign in\nNonce: {info['nonce']}\n"
    answers = [
        api.post(
            "/api/auth/siwe/verify", {"message": message, "signature": "0x" + "11" * 65}
        ).status_code
        for _ in range(12)
    ]
    assert all(400 <= a < 500 and a != 429 for a in answers[:10]), answers
    assert answers[10:] == [429, 429]
    nonces = [api.get("/api/auth/siwe/nonce").status_code for _ in range(30)]
    assert nonces[:28] == [200] * 28 and nonces[-1] == 429
