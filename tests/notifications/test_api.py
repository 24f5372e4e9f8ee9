"""The notifications JSON API: the list (newest first, in the request's language, paged), marking
read, the switches; sign-in, CSRF and ownership enforced; every bad request a 4xx that changes
nothing; and ten saves of the switches at once all answered, on both databases."""

from __future__ import annotations

import pytest

from backend.notifications.models import POINTS_ARRIVED
from tests.accounts.conftest import Api
from tests.concurrency import at_once
from tests.notifications.conftest import PASSWORD, record_facts, signup_verified, stored, switches

BASE = "/api/me/notifications"
JA, EN = {"Accept-Language": "ja"}, {"Accept-Language": "en"}


def _signed_in(app, email: str = "fan@example.com") -> Api:
    api = Api(app.test_client())
    resp = api.post("/api/auth/login", {"email": email, "password": PASSWORD})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return api


def _patch(api: Api, body, headers=None):
    if api.token is None:
        api.refresh_token()
    return api.client.patch(
        f"{BASE}/settings", json=body, headers={"X-CSRFToken": api.token, **(headers or {})}
    )


def test_signed_out_every_route_is_401_and_nothing_changes(app, people):
    fan, _other = people
    (nid,) = record_facts(app, fan, 1)
    api = Api(app.test_client())
    before = stored(app)
    for resp in (
        api.get(BASE),
        api.get(f"{BASE}/settings"),
        api.post(f"{BASE}/{nid}/read"),
        api.post(f"{BASE}/read-all"),
        _patch(api, {"switches": {"charge_paid.email": False}}),
    ):
        assert resp.status_code == 401, resp.get_data(as_text=True)
        assert resp.get_json()["error"]["code"] == "authentication_required"
    assert stored(app) == before and switches(app) == []


def test_the_list_is_newest_first_in_the_requests_language_and_marks_read(app, people):
    fan, _other = people
    ids = record_facts(app, fan, 3)
    api = _signed_in(app)
    ja = api.client.get(BASE, headers=JA).get_json()
    assert [n["id"] for n in ja["notifications"]] == sorted(ids, reverse=True)
    assert ja["unread"] == 3 and ja["older"] is None
    newest = ja["notifications"][0]
    assert newest["body"] == "直売所（更別村）で102ポイントをお支払いしました。"
    assert (newest["kind"], newest["link"], newest["read_at"]) == ("charge_paid", "/points", None)
    assert newest["created_at"].startswith("2026-12-04T04:49:00")
    en = api.client.get(BASE, headers=EN).get_json()["notifications"]
    assert en[-1]["body"] == "You paid 100 points at Farm Market (Sarabetsu)."

    read = api.post(f"{BASE}/{ids[0]}/read")
    assert read.status_code == 200 and read.get_json() == {"unread": 2}
    again = api.post(f"{BASE}/{ids[0]}/read")  # a repeat changes nothing
    assert again.status_code == 200 and again.get_json() == {"unread": 2}
    listed = {n["id"]: n["read_at"] for n in api.get(BASE).get_json()["notifications"]}
    assert listed[ids[0]] is not None and listed[ids[1]] is None

    everything = api.post(f"{BASE}/read-all")
    assert everything.get_json() == {"marked": 2, "unread": 0}
    assert all(r["read"] for r in stored(app))


def test_the_list_pages_back_with_older(app, people):
    fan, _other = people
    ids = record_facts(app, fan, 51)
    api = _signed_in(app)
    first = api.get(BASE).get_json()
    assert len(first["notifications"]) == 50 and first["unread"] == 51
    second = api.get(f"{BASE}?before={first['older']}").get_json()
    assert [n["id"] for n in second["notifications"]] == [min(ids)] and second["older"] is None


def test_another_persons_or_no_notification_is_404_and_bad_requests_change_nothing(app, people):
    fan, other = people
    (theirs,) = record_facts(app, other, 1)
    record_facts(app, fan, 1, POINTS_ARRIVED)
    api = _signed_in(app)
    before = stored(app)
    for nid in (theirs, 999_999, 2**31, "abc", -1):
        resp = api.post(f"{BASE}/{nid}/read")
        assert resp.status_code == 404, nid
    assert api.post(f"{BASE}/{theirs}/read").get_json()["error"]["code"] == (
        "notification_not_found"
    )
    # No CSRF token: refused before anything is read or written.
    assert api.client.post(f"{BASE}/read-all").status_code == 400
    assert api.client.patch(f"{BASE}/settings", json={"switches": {}}).status_code == 400
    for before_id in ("abc", "-1", "9" * 30):
        assert api.get(f"{BASE}?before={before_id}").status_code == 400
    assert stored(app) == before and switches(app) == []


def test_settings_turn_the_named_switches_and_keep_the_others(app, people):
    fan, _other = people
    api = _signed_in(app)
    got = api.get(f"{BASE}/settings").get_json()
    assert got["email_verified"] is True
    assert got["switches"]["charge_paid"] == {"in_app": True, "email": True}
    assert all(all(ch.values()) for ch in got["switches"].values())

    changed = _patch(api, {"switches": {"charge_paid.email": False, "vote_opened.in_app": False}})
    assert changed.status_code == 200, changed.get_data(as_text=True)
    sw = changed.get_json()["switches"]
    assert sw["charge_paid"] == {"in_app": True, "email": False}
    assert sw["vote_opened"] == {"in_app": False, "email": True}
    assert sw["points_arrived"] == {"in_app": True, "email": True}
    assert sorted(switches(app)) == [
        (fan, "charge_paid", "email", False),
        (fan, "vote_opened", "in_app", False),
    ]

    back = _patch(api, {"switches": {"charge_paid.email": True}}).get_json()["switches"]
    assert back["charge_paid"] == {"in_app": True, "email": True}
    assert back["vote_opened"]["in_app"] is False  # not named: kept
    assert (fan, "charge_paid", "email", True) in switches(app)
    assert api.get(f"{BASE}/settings").get_json()["switches"] == back


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "switches"),
        ({"switches": {}}, "switches"),
        ({"switches": ["charge_paid.email"]}, "switches"),
        ({"switches": {"nft_minted.email": False}}, "nft_minted.email"),  # no such kind
        ({"switches": {"charge_paid.sms": False}}, "charge_paid.sms"),  # no such channel
        ({"switches": {"charge_paid.email": "false"}}, "charge_paid.email"),  # not a boolean
        ({"switches": {"charge_paid.email": 0}}, "charge_paid.email"),
        # One good and one bad: the good one is not saved either.
        ({"switches": {"charge_paid.email": False, "charge_paid": False}}, "charge_paid"),
        ("off", None),  # not a JSON object
    ],
)
def test_bad_settings_are_400_and_change_nothing(app, people, body, field):
    api = _signed_in(app)
    resp = _patch(api, body, JA)
    assert resp.status_code == 400, resp.get_data(as_text=True)
    error = resp.get_json()["error"]
    if field is not None:
        assert error["code"] == "unknown_notification_switch"
        assert error["details"]["field"] == field
        assert error["message"] in (
            "その設定項目はありません。",
            "変更する設定を、オンは true、オフは false で送ってください。",
        )
    assert switches(app) == []


def test_ten_saves_at_once_are_all_answered_and_one_row_per_switch(
    make_app, any_db_url, smtp_server
):
    """Two tabs, a double tap: each save creates the switch's row if none exists. Before the
    saves wrote with ON CONFLICT, most of them failed on the UNIQUE row (a 500)."""
    app = make_app(database_url=any_db_url, **smtp_server.settings)
    fan = signup_verified(app, "fan@example.com")
    api = _signed_in(app)
    api.refresh_token()
    body = {"switches": {"charge_paid.email": False, "ticket_used.in_app": False}}
    answers = at_once([lambda: _patch(api, body) for _ in range(10)])
    assert [getattr(a, "status_code", a) for a in answers] == [200] * 10
    assert sorted(switches(app)) == [
        (fan, "charge_paid", "email", False),
        (fan, "ticket_used", "in_app", False),
    ]
