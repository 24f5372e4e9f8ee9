"""An edit of an event's points and a check-in at the same moment, on PostgreSQL and on SQLite:
the attendee gets the points the event shows afterwards. The check-in takes the event's row
lock and reads the event again under it, so it comes wholly before the edit (which then finds
someone checked in: EventLocked) or wholly after (and grants the new points).

Before, the check-in read the points without a lock while staff's edit (locked with SELECT ...
FOR UPDATE, which SQLite ignores; PostgreSQL's lock did not stop a plain read) committed the
new amount: the event said 500 points and its first attendee got 300."""

from __future__ import annotations

import threading

import pytest

from backend.accounts.models import User
from backend.chain.outbox import outbox_service
from backend.core.db import get_db
from backend.events.base import EventBase
from backend.events.models import Event
from backend.events.services import event_service
from backend.regions.models import Town
from tests.concurrency import TIMEOUT, in_app
from tests.events.conftest import check_in_token, event_form, grants, make_event


@pytest.fixture
def app(make_app, deployed, any_db_url):
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False  # only the rows count here
    return app


def test_a_check_in_during_an_edit_of_the_points_gets_the_points_the_event_shows(
    app, town, monkeypatch
):
    event_id = make_event(app, town.town_id, points=300)
    token = check_in_token(app, town.town_id, event_id)
    staff_id, customer_id = town.user_id("staff"), town.user_id("customer")
    editing, go = threading.Event(), threading.Event()
    real_audit = EventBase._audit

    def audit_then_wait(self, user, action, event, **details):  # the edit, before its commit
        real_audit(self, user, action, event, **details)
        if action == "event.update":
            editing.set()
            assert go.wait(TIMEOUT)

    monkeypatch.setattr(EventBase, "_audit", audit_then_wait)

    def edit():
        s = get_db().session
        staff, sarabetsu = s.get(User, staff_id), s.get(Town, town.town_id)
        return event_service().update(staff, sarabetsu, event_id, event_form(points=500)).points

    def check_in():
        s = get_db().session
        row = event_service().check_in_self(
            s.get(User, customer_id), s.get(Town, town.town_id), event_id, token
        )
        return row.id

    answers: dict[str, object] = {}

    def run(name, fn):
        try:
            answers[name] = fn()
        except Exception as exc:  # noqa: BLE001 - asserted below
            answers[name] = exc

    editor = threading.Thread(target=run, args=("edit", in_app(app, edit)))
    editor.start()
    assert editing.wait(TIMEOUT)
    attendee = threading.Thread(target=run, args=("check_in", in_app(app, check_in)))
    attendee.start()
    attendee.join(2)  # it finished (before), or it waits for the edit's lock (now)
    go.set()
    editor.join(TIMEOUT)
    attendee.join(TIMEOUT)
    assert not editor.is_alive() and not attendee.is_alive()
    assert answers["edit"] == 500, answers
    assert isinstance(answers["check_in"], int), answers
    with app.app_context():
        ev = get_db().session.get(Event, event_id)
        assert ev is not None and ev.points == 500
    (grant,) = grants(app)
    assert (grant["user_id"], grant["amount"]) == (customer_id, 500)
