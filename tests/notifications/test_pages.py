"""The notification pages: the list (newest first, unread marked, JST times), the header's count,
marking read, the settings; and every bad request refused with a 4xx and nothing changed."""

from __future__ import annotations

import re

import pytest

from backend.accounts.models import User
from backend.core.db import get_db
from backend.notifications.models import CHARGE_PAID, POINTS_ARRIVED
from backend.notifications.services import NotificationService
from tests.notifications.conftest import PASSWORD, record_facts, stored, switches


def _login(app, email: str):
    client = app.test_client()
    resp = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": _token(client, "/login")},
    )
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return client


def _token(client, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_anonymous_visitors_are_sent_to_log_in(app):
    client = app.test_client()
    for path in ("/me/notifications", "/me/notifications/settings"):
        resp = client.get(path)
        assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    assert 'data-testid="notifications-link"' not in client.get("/").get_data(as_text=True)


def test_the_list_is_newest_first_with_unread_marked_and_japan_times(app, people):
    fan, _other = people
    ids = record_facts(app, fan, 3)
    client = _login(app, "fan@example.com")
    html = client.get("/me/notifications", headers={"Accept-Language": "ja"}).get_data(as_text=True)
    shown = [
        int(i)
        for i in re.findall(r'data-testid="notification" data-kind="\w+" data-id="(\d+)"', html)
    ]
    assert shown == sorted(ids, reverse=True)
    assert html.count('data-testid="unread-mark"') == 3
    assert "直売所（更別村）で102ポイントをお支払いしました。" in html
    assert "2026年12月4日 13:49（日本時間）" in html
    assert re.search(r'data-testid="notifications-count"[^>]*>3<', html)
    en = client.get("/me/notifications", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "You paid 100 points at Farm Market (Sarabetsu)." in en and "2026-12-04 13:47 JST" in en

    # Mark one read, then all.
    token = _token(client, "/me/notifications")
    resp = client.post(f"/me/notifications/{ids[0]}/read", data={"csrf_token": token})
    assert resp.status_code == 302
    html = client.get("/me/notifications").get_data(as_text=True)
    assert html.count('data-testid="unread-mark"') == 2
    assert re.search(r'data-testid="notifications-count"[^>]*>2<', html)
    client.post("/me/notifications/read-all", data={"csrf_token": token})
    html = client.get("/me/notifications").get_data(as_text=True)
    assert (
        'data-testid="unread-mark"' not in html and 'data-testid="notifications-count"' not in html
    )
    assert all(r["read"] for r in stored(app))


def test_the_header_counts_up_to_99_then_says_99_plus(app, people):
    fan, _other = people
    record_facts(app, fan, 100)
    client = _login(app, "fan@example.com")
    html = client.get("/").get_data(as_text=True)
    assert re.search(r'data-testid="notifications-count"[^>]*>99\+<', html)
    page = client.get("/me/notifications").get_data(as_text=True)
    assert page.count('data-testid="notification"') == 50 and 'data-testid="older"' in page
    older = re.search(r'href="(/me/notifications\?before=\d+)"', page).group(1)
    page2 = client.get(older).get_data(as_text=True)
    assert page2.count('data-testid="notification"') == 50 and 'data-testid="older"' not in page2


def test_settings_save_each_switch(app, people):
    fan, _other = people
    client = _login(app, "fan@example.com")
    html = client.get("/me/notifications/settings", headers={"Accept-Language": "en"}).get_data(
        as_text=True
    )
    # Five kinds (a card issued in one's name among them), each in the app and by mail.
    assert html.count('type="checkbox"') == 10 and html.count("checked") == 10
    form = {"csrf_token": _token(client, "/me/notifications/settings")}
    form |= {"charge_paid.in_app": "on", "ticket_used.email": "on", "vote_opened.email": "on"}
    resp = client.post("/me/notifications/settings", data=form)
    assert resp.status_code == 200 and 'data-testid="saved"' in resp.get_data(as_text=True)
    assert sorted(switches(app)) == sorted(
        [
            (fan, "charge_paid", "email", False),
            (fan, "points_arrived", "in_app", False),
            (fan, "points_arrived", "email", False),
            (fan, "ticket_used", "in_app", False),
            (fan, "vote_opened", "in_app", False),
            (fan, "card_issued", "in_app", False),
            (fan, "card_issued", "email", False),
        ]
    )
    assert resp.get_data(as_text=True).count("checked") == 3
    form = {"csrf_token": form["csrf_token"], "points_arrived.email": "on"}
    client.post("/me/notifications/settings", data=form)
    assert (fan, "points_arrived", "email", True) in switches(app)
    assert (fan, "charge_paid", "in_app", False) in switches(app)


@pytest.mark.parametrize(
    "bad",
    [
        {"nft_minted.email": "on"},  # no such kind
        {"charge_paid.sms": "on"},  # no such channel
        {"charge_paid.email": "yes"},  # not "on"
        {"charge_paid": "on"},
    ],
)
def test_an_unknown_switch_is_refused_and_nothing_changes(app, people, bad):
    client = _login(app, "fan@example.com")
    form = {"csrf_token": _token(client, "/me/notifications/settings"), "charge_paid.in_app": "on"}
    resp = client.post("/me/notifications/settings", data=form | bad)
    assert resp.status_code == 400
    assert "There is no such notification setting." in resp.get_data(as_text=True) or (
        "その設定項目はありません。" in resp.get_data(as_text=True)
    )
    assert switches(app) == []


def test_another_persons_notification_or_none_is_404_and_nothing_changes(app, people):
    fan, other = people
    (theirs,) = record_facts(app, other, 1)
    record_facts(app, fan, 1, POINTS_ARRIVED)
    client = _login(app, "fan@example.com")
    token = _token(client, "/me/notifications")
    before = stored(app)
    for nid in (theirs, 999_999):
        resp = client.post(f"/me/notifications/{nid}/read", data={"csrf_token": token})
        assert resp.status_code == 404
    assert client.post("/me/notifications/abc/read", data={"csrf_token": token}).status_code == 404
    assert stored(app) == before
    # Without the form's token nothing is marked either.
    assert client.post("/me/notifications/read-all").status_code == 400
    assert client.post("/me/notifications/settings", data={}).status_code == 400
    assert stored(app) == before and switches(app) == []
    # The list's paging takes an id only.
    assert client.get("/me/notifications?before=abc").status_code == 400
    assert client.get("/me/notifications?before=-1").status_code == 400


def test_a_tampered_or_foreign_switch_off_link_is_refused(app, people):
    fan, _other = people
    with app.app_context():
        svc = NotificationService(get_db().session(), secret_key=app.config["SECRET_KEY"])
        good = svc.off_token(fan, CHARGE_PAID)
        unknown_kind = svc.off_token(fan, "nft_minted")
        nobody = svc.off_token(987_654, CHARGE_PAID)
        forged = NotificationService(get_db().session(), secret_key="another").off_token(
            fan, CHARGE_PAID
        )
    client = app.test_client()
    for token in (good[:-2] + "xx", unknown_kind, nobody, forged, "abc"):
        assert client.get(f"/notifications/off/{token}").status_code == 400
        page = client.get(f"/notifications/off/{good}")
        resp = client.post(
            f"/notifications/off/{token}",
            data={
                "csrf_token": re.search(
                    r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)
                ).group(1)
            },
        )
        assert resp.status_code == 400
    assert switches(app) == []
    assert client.post(f"/notifications/off/{good}").status_code == 400  # no CSRF token
    assert switches(app) == []
    with app.app_context():
        assert get_db().session.get(User, fan) is not None
