"""The console's "Failed grants" page (/towns/<slug>/admin/failed-grants): town staff see the
grants whose issue failed on chain, in Japanese and English, with why, and send one (or all)
again; the points then arrive on chain once. Only the town's staff, only with the form's CSRF
token; a bad grant id is a 404 that changes nothing."""

from __future__ import annotations

from typing import Any

from flask import Flask

from backend.accounts.models import User
from backend.core.db import get_db
from backend.points.programmes import EVENT_PRIZE
from backend.points.services import points_service
from backend.regions.models import Town
from tests.accounts.conftest import Api
from tests.points.conftest import PASSWORD, run_chain
from tests.points.failed_grants_helpers import (
    ERROR,
    audits,
    caps,
    counts,
    fail_call,
    grant,
    grant_row,
    issue_calls,
    staff,
)

BASE = "/towns/sarabetsu/admin/failed-grants"


def _login(app: Flask, email: str) -> Api:
    api = Api(app.test_client())
    resp = api.post("/api/auth/login", {"email": email, "password": PASSWORD})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    api.refresh_token()
    return api


def _form(api: Api, url: str, lang: str = "en") -> Any:
    return api.client.post(url, data={"csrf_token": api.token}, headers={"Accept-Language": lang})


def test_staff_send_a_failed_grant_again_and_the_points_arrive_once(app, town_id, user_id, w3):
    staff(app, town_id)
    gid, tx_id = grant(app, user_id, town_id)
    fail_call(app, tx_id)
    api = _login(app, "staff@example.com")

    page = api.client.get(BASE, headers={"Accept-Language": "en"})
    text = page.get_data(as_text=True)
    assert page.status_code == 200, text
    assert "Failed grants" in text and "fan@example.com" in text and ERROR in text
    assert f'data-testid="retry-{gid}"' in text and 'data-testid="retry-all"' in text
    assert "Grants to send again (1)" in text and "Welcome points" in text
    ja = api.client.get(BASE, headers={"Accept-Language": "ja"}).get_data(as_text=True)
    assert "付与に失敗したポイント" in ja and "もう一度送る" in ja and "失敗の理由" in ja
    assert len(audits(app, "points.issue_failed")) == 1  # the page's read recorded it
    assert grant_row(app, gid)["status"] == "failed"

    # Refused requests change nothing: no CSRF token, a grant that is not there, not staff.
    before = counts(app)
    assert api.client.post(f"{BASE}/{gid}").status_code == 400
    missing = _form(api, f"{BASE}/{gid + 100}")
    assert missing.status_code == 404 and "no such grant" in missing.get_data(as_text=True)
    fan = _login(app, "fan@example.com")
    assert fan.client.get(BASE).status_code == 403
    assert _form(fan, f"{BASE}/{gid}").status_code == 403
    assert _form(fan, f"{BASE}/all").status_code == 403
    assert counts(app) == before

    sent = _form(api, f"{BASE}/{gid}")
    assert sent.status_code == 302 and sent.headers["Location"].endswith("notice=sent")
    again = _form(api, f"{BASE}/{gid}")  # a second press, or another member of staff
    assert again.status_code == 302 and again.headers["Location"].endswith("notice=already")
    text = api.client.get(f"{BASE}?notice=sent", headers={"Accept-Language": "en"}).get_data(
        as_text=True
    )
    assert "being sent again" in text and "No failed grants" in text

    run_chain(app, w3)
    row = grant_row(app, gid)
    assert (row["status"], row["attempts"]) == ("confirmed", 2)
    assert [s for _i, _k, s in issue_calls(app)] == ["failed", "confirmed"]
    with app.app_context():
        s = get_db().session
        town, user = s.get(Town, town_id), s.get(User, user_id)
        address = user.addresses[0].address
        assert points_service().confirmed_balance(town, address) == 500  # once, not twice


def test_send_all_again_reports_what_the_day_refused(app, town_id, user_id):
    staff(app, town_id)
    caps(app, town_id, person=500)
    first, tx1 = grant(app, user_id, town_id, key="a")
    fail_call(app, tx1)
    with app.app_context():  # an event's prize fails too (another programme: its own caps)
        s = get_db().session
        g = points_service().grant(
            s.get(User, user_id), s.get(Town, town_id), EVENT_PRIZE, key="event:7"
        )
        prize, tx2 = g.id, int(g.outbox_tx_id)
    fail_call(app, tx2)
    api = _login(app, "staff@example.com")
    text = api.client.get(BASE, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "event #7" in text and "Grants to send again (2)" in text
    grant(app, user_id, town_id, key="b")  # the welcome cap of today is taken again

    page = _form(api, f"{BASE}/all")
    text = page.get_data(as_text=True)
    assert page.status_code == 200, text
    assert "Sent again: 1." in text and "Not sent now: 1." in text
    assert f'data-testid="refused-{first}"' in text and "most points" in text
    assert grant_row(app, prize)["status"] == "pending"
    assert grant_row(app, first)["status"] == "failed"
    ja = _form(api, f"{BASE}/all", lang="ja").get_data(as_text=True)
    assert "もう一度送った件数：0件" in ja and "今回送れなかった件数：1件" in ja
