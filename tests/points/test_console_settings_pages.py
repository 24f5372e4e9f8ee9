"""The console's Programmes and Transfer policy pages (/towns/<slug>/admin/programmes,
/admin/transfer-policy) and their JSON API, in Japanese and English: town staff create and edit
programmes and set the policy with a CSRF token and a one-time key; the page shows the change
"Processing…" until the chain confirms it, and flags a programme changed on chain outside it;
bad input is a 400 with nothing written; others get 403. End to end on anvil: a programme
created in the console is active on chain and a grant from it is confirmed."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from flask import Flask

from backend.accounts.models import User
from backend.accounts.roles import STAFF, grant_town_role
from backend.accounts.services import AccountService
from backend.chain.custody import get_vault
from backend.chain.outbox_models import OutboxTx
from backend.chain.registry import artifact
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.points.models import GRANT_CONFIRMED, PointsGrant, PointsSettingChange
from backend.points.programmes import EMAIL_VERIFIED, Grant, Programme
from backend.points.services import points_service
from backend.regions.models import Town
from tests.chain_admin import as_role
from tests.points.conftest import PASSWORD, run_chain

PAGE = "/towns/sarabetsu/admin/programmes"
POLICY = "/towns/sarabetsu/admin/transfer-policy"
NEW = {
    "kind": "event prize",
    "name_ja": "秋祭りの賞品",
    "name_en": "Autumn festival prize",
    "expiry_days": "30",
    "cap_per_person_day": "1000",
    "cap_per_town_day": "50000",
    "active": "1",
}


class Browser:
    """A signed-in test client that posts forms with the page's CSRF token and one-time key."""

    def __init__(self, app: Flask, email: str | None, lang: str = "ja") -> None:
        self.client = app.test_client()
        self.headers = {"Accept-Language": lang}
        if email is not None:
            token = self.client.get("/api/csrf").get_json()["csrf_token"]
            resp = self.client.post(
                "/api/auth/login",
                json={"email": email, "password": PASSWORD},
                headers={"X-CSRFToken": token},
            )
            assert resp.status_code == 200, resp.get_data(as_text=True)

    def get(self, url: str):
        return self.client.get(url, headers=self.headers)

    def form_keys(self, url: str) -> dict[str, str]:
        html = self.get(url).get_data(as_text=True)
        return {
            "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', html).group(1),
            "idempotency_key": re.search(r'name="idempotency_key" value="([^"]+)"', html).group(1),
        }

    def post(self, url: str, data: dict[str, str], keys: dict[str, str]):
        return self.client.post(url, data={**data, **keys}, headers=self.headers)

    def api(self, method: str, url: str, json: dict | None = None):
        token = self.client.get("/api/csrf").get_json()["csrf_token"]
        return self.client.open(
            url, method=method, json=json, headers={**self.headers, "X-CSRFToken": token}
        )


@pytest.fixture
def staff(app, town_id) -> str:
    with app.app_context():
        svc = AccountService(get_db().session(), lambda: get_vault(app))
        grant_town_role(svc.signup("staff@example.com", PASSWORD, verified=True), town_id, STAFF)
        get_db().session.commit()
    return "staff@example.com"


def _counts(app) -> tuple[int, int, int]:
    with app.app_context():
        s = get_db().session
        return tuple(
            s.scalar(sa.select(sa.func.count()).select_from(m))
            for m in (PointsSettingChange, OutboxTx, AuditLog)
        )


@pytest.mark.parametrize(
    ("lang", "texts"),
    [
        (
            "ja",
            (
                "ポイントプログラム",
                "ウェルカムポイント",
                "ポイントネットワークに設定済み",
                "送付ポリシー",
            ),
        ),
        ("en", ("Programmes", "Welcome points", "Set on the points network", "Transfer policy")),
    ],
)
def test_staff_see_the_programmes_in_both_languages(app, town_id, staff, lang, texts):
    page = Browser(app, staff, lang).get(PAGE)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    for text in texts:
        assert text in html, text
    assert 'href="/towns/sarabetsu/admin/transfer-policy"' in html  # the console's nav
    assert 'name="csrf_token"' in html and 'name="idempotency_key"' in html
    # a paid kind is offered only expiries within six months
    paid = re.search(r'data-testid="programme-2".*?</section>', html, re.S).group(0)
    assert 'value="365"' not in paid and 'value="0"' not in paid and 'value="180"' in paid


def test_a_programme_created_in_the_console_shows_processing_and_replays_once(app, town_id, staff):
    b = Browser(app, staff, "ja")
    keys = b.form_keys(PAGE)
    resp = b.post(PAGE, NEW, keys)
    assert resp.status_code == 302 and "notice=created" in resp.location
    html = b.get(PAGE).get_data(as_text=True)
    assert "秋祭りの賞品" in html and "処理中…" in html
    assert 'data-setting-status="queued" data-setting-id="5"' in html
    before = _counts(app)
    assert before == (1, 1, 1)
    assert b.post(PAGE, NEW, keys).status_code == 302  # the same form again: nothing new
    assert _counts(app) == before


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({**NEW, "kind": "purchase premium", "expiry_days": "365"}, "expiry_days"),
        ({**NEW, "cap_per_person_day": "-1"}, "cap_per_person_day"),
        ({**NEW, "cap_per_town_day": "9" * 20}, "cap_per_town_day"),
        ({**NEW, "expiry_days": "7"}, "expiry_days"),
    ],
)
def test_bad_input_is_a_400_and_writes_nothing(app, town_id, staff, data, field):
    b = Browser(app, staff, "en")
    keys = b.form_keys(PAGE)
    before = _counts(app)
    resp = b.post(PAGE, data, keys)
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert 'role="alert"' in html and f'name="{field}"' in html
    assert re.search(rf'name="{field}"[^>]*aria-invalid="true"', html), field
    assert _counts(app) == before


def test_without_the_csrf_token_nothing_is_written(app, town_id, staff):
    b = Browser(app, staff)
    keys = b.form_keys(PAGE)
    resp = b.post(PAGE, NEW, {"idempotency_key": keys["idempotency_key"]})
    assert resp.status_code == 400 and _counts(app) == (0, 0, 0)


def test_others_are_refused_and_signed_out_visitors_sent_to_log_in(app, town_id, user_id):
    customer = Browser(app, "fan@example.com")
    assert customer.get(PAGE).status_code == 403
    assert customer.get(POLICY).status_code == 403
    assert customer.api("GET", "/api/towns/sarabetsu/programmes").status_code == 403
    assert customer.api("PUT", "/api/towns/sarabetsu/transfer-policy", {}).status_code == 403
    resp = Browser(app, None).get(PAGE)
    assert resp.status_code == 302 and "/login?next=/towns/sarabetsu/admin/programmes" in (
        resp.location
    )
    assert _counts(app) == (0, 0, 0)


def test_transfer_policy_page_queued_then_confirmed(app, w3, deployed, town_id, staff):
    b = Browser(app, staff, "en")
    html = b.get(POLICY).get_data(as_text=True)
    assert "Open: people may send points" in html
    resp = b.post(POLICY, {"policy": "merchants_only"}, b.form_keys(POLICY))
    assert resp.status_code == 302
    html = b.get(POLICY).get_data(as_text=True)
    assert "Processing…" in html and 'data-setting-status="queued"' in html
    run_chain(app, w3)
    html = Browser(app, staff, "ja").get(POLICY).get_data(as_text=True)
    on_chain = re.search(r'data-testid="policy-on-chain">(.*?)</p>', html, re.S).group(1)
    assert "加盟店のみ" in on_chain and 'data-setting-status="confirmed"' in html
    body = b.api("GET", "/api/towns/sarabetsu/transfer-policy").get_json()
    assert body["transfer_policy"]["on_chain"] == "merchants_only"
    assert body["transfer_policy"]["last_change"]["status"] == "confirmed"
    bad = b.api(
        "PUT", "/api/towns/sarabetsu/transfer-policy", {"policy": "x", "idempotency_key": "k" * 12}
    )
    assert bad.status_code == 400


def test_json_api_creates_and_edits_a_programme(app, town_id, staff):
    b = Browser(app, staff, "en")
    resp = b.api(
        "POST", "/api/towns/sarabetsu/programmes", {**NEW, "idempotency_key": "create-0001"}
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["programme"]["programme_id"] == 5 and body["change"]["status"] == "queued"
    assert body["programme"]["cap_per_town_day"] == 50000
    edit = {**NEW, "cap_per_town_day": "", "idempotency_key": "edit-00001"}
    resp = b.api("PUT", "/api/towns/sarabetsu/programmes/5", edit)
    assert resp.status_code == 200 and resp.get_json()["change"]["status"] == "saved"
    assert resp.get_json()["programme"]["cap_per_town_day"] is None
    bad = b.api(
        "PUT",
        "/api/towns/sarabetsu/programmes/5",
        {**NEW, "expiry_days": 400, "idempotency_key": "edit-00002"},
    )
    assert bad.status_code == 400 and bad.get_json()["error"]["details"]["field"] == "expiry_days"
    assert b.api("PUT", "/api/towns/sarabetsu/programmes/99", edit).status_code == 404
    listed = b.api("GET", "/api/towns/sarabetsu/programmes").get_json()["programmes"]
    assert [p["programme_id"] for p in listed] == [1, 2, 3, 4, 5]


def test_end_to_end_a_console_programme_is_active_on_chain_and_a_grant_from_it_confirms(
    app, w3, deployed, town_id, staff, user_id
):
    b = Browser(app, staff, "ja")
    assert b.post(PAGE, NEW, b.form_keys(PAGE)).status_code == 302
    run_chain(app, w3)
    points = w3.eth.contract(
        address=deployed.address("towns.sarabetsu.RegionPoints"), abi=artifact("RegionPoints").abi
    )
    assert points.functions.programme(5).call() == [30, True]
    html = b.get(PAGE).get_data(as_text=True)
    assert 'data-setting-status="confirmed" data-setting-id="5"' in html
    prize = Programme(
        5, 30, name="autumn prize", reason="prize", grant=Grant(EMAIL_VERIFIED, 800, "system:test")
    )
    with app.app_context():
        s = get_db().session
        grant = points_service().grant(s.get(User, user_id), s.get(Town, town_id), prize)
        grant_id = grant.id
    run_chain(app, w3)
    with app.app_context():
        grant = get_db().session.get(PointsGrant, grant_id)
        assert grant.status == GRANT_CONFIRMED
        assert points.functions.balanceOf(w3.to_checksum_address(grant.address)).call() == 800


def test_a_programme_changed_on_chain_outside_the_console_is_flagged_and_set_back(
    app, w3, deployed, town_id, staff
):
    b = Browser(app, staff, "en")
    assert b.post(PAGE, NEW, b.form_keys(PAGE)).status_code == 302
    run_chain(app, w3)
    points = w3.eth.contract(
        address=deployed.address("towns.sarabetsu.RegionPoints"), abi=artifact("RegionPoints").abi
    )
    assert 'data-testid="drift-5"' not in b.get(PAGE).get_data(as_text=True)
    as_role(w3, "town_settings", points.functions.setProgramme(5, 3650, True))  # not the console
    run_chain(app, w3)
    html = b.get(PAGE).get_data(as_text=True)
    drift = re.search(r'data-testid="drift-5">(.*?)</p>', html, re.S).group(1)
    assert "3650 days after issue" in drift
    listed = b.api("GET", "/api/towns/sarabetsu/programmes").get_json()["programmes"]
    assert listed[-1]["drift"] is True and listed[-1]["on_chain"]["expiry_days"] == 3650
    # saving the programme again sets the console's values back on chain
    edit = re.search(r'data-testid="programme-5".*?</section>', html, re.S).group(0)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', edit).group(1)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', edit).group(1)
    resp = b.post(f"{PAGE}/5", NEW, {"csrf_token": csrf, "idempotency_key": key})
    assert resp.status_code == 302
    run_chain(app, w3)
    assert points.functions.programme(5).call() == [30, True]
    assert 'data-testid="drift-5"' not in b.get(PAGE).get_data(as_text=True)
