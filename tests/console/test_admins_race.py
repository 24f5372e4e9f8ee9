"""Two admins removing each other at once leave the town one admin, on PostgreSQL and SQLite:
the admin rows are locked before they are counted (`SELECT ... FOR UPDATE` alone does nothing
on SQLite, where both requests counted two admins and both removed theirs). An admin whose role
went while their request was on its way removes or appoints no admin."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

import backend.accounts.town_people as town_people
from backend.accounts.models import Membership, User
from backend.accounts.roles import ADMIN, grant_town_role
from backend.accounts.town_people import town_people_service
from backend.chain.outbox import outbox_service
from backend.core.db import get_db
from backend.core.errors import Conflict, Forbidden
from backend.regions.models import Town
from tests.concurrency import in_app


@pytest.fixture
def app(make_app, deployed, any_db_url):
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False
    return app


def _admins(app, town_id: int) -> list[int]:
    with app.app_context():
        return sorted(
            get_db().session.scalars(
                sa.select(Membership.user_id).where(
                    Membership.town_id == town_id, Membership.role == ADMIN
                )
            )
        )


def test_two_admins_removing_each_other_at_once_leave_one(app, town, monkeypatch):
    first, second = town.user_id("admin"), town.user_id("staff")
    with app.app_context():
        s = get_db().session
        grant_town_role(s.get(User, second), town.town_id, ADMIN)
        s.commit()
    assert _admins(app, town.town_id) == sorted([first, second])

    # The second admin's request stops after it counted the admins (just before its DELETE)
    # until the first admin's request has finished, or for 2 s when that one waits for it.
    at_delete, first_done = threading.Event(), threading.Event()
    real_delete = town_people.delete

    def slow_delete(*args, **kw):
        if threading.current_thread().name == "second" and not at_delete.is_set():
            at_delete.set()
            first_done.wait(2)
        return real_delete(*args, **kw)

    monkeypatch.setattr(town_people, "delete", slow_delete)
    answers: dict[str, object] = {}

    def remove(actor_id: int, email: str, name: str):
        def run():
            s = get_db().session
            try:
                answers[name] = town_people_service().revoke(
                    s.get(User, actor_id), s.get(Town, town.town_id), email, ADMIN
                )
            except Exception as exc:  # noqa: BLE001 - asserted below
                answers[name] = exc
            finally:
                if name == "first":
                    first_done.set()

        return in_app(app, run)

    b = threading.Thread(target=remove(second, "admin@example.com", "second"), name="second")
    b.start()
    assert at_delete.wait(30)
    a = threading.Thread(target=remove(first, "staff@example.com", "first"), name="first")
    a.start()
    a.join(60)
    b.join(60)
    assert not a.is_alive() and not b.is_alive()

    left = _admins(app, town.town_id)
    assert len(left) == 1, (left, answers)
    changed = [n for n, r in answers.items() if getattr(r, "changed", False)]
    refused = [n for n, r in answers.items() if isinstance(r, Conflict | Forbidden)]
    assert len(changed) == 1 and len(refused) == 1, answers
    with app.app_context():
        revokes = get_db().session.scalar(
            sa.select(sa.func.count())
            .select_from(town_people.AuditLog)
            .where(town_people.AuditLog.action == "town.role.revoke")
        )
    assert revokes == 1


def test_an_admin_removed_meanwhile_appoints_and_removes_no_admin(app, town):
    """The service, not only the page, checks the actor again under the lock: an admin whose
    role is gone by the time the admin rows are locked is refused with nothing written."""
    first, second = town.user_id("admin"), town.user_id("staff")
    with app.app_context():
        s = get_db().session
        grant_town_role(s.get(User, second), town.town_id, ADMIN)
        s.commit()
    with app.app_context():
        s = get_db().session
        svc = town_people_service()
        actor = s.get(User, second)
        the_town = s.get(Town, town.town_id)
        svc.require_admin(actor, the_town)  # still an admin when the request came in
        # ...then removed by the first admin before the service locks the admin rows.
        real = svc.require_admin
        removed = []

        def checked_then_removed(actor_, town_):
            user = real(actor_, town_)
            if not removed:
                removed.append(
                    in_app(
                        app,
                        lambda: town_people_service().revoke(
                            get_db().session.get(User, first),
                            get_db().session.get(Town, town.town_id),
                            "staff@example.com",
                            ADMIN,
                        ),
                    )()
                )
            return user

        svc.require_admin = checked_then_removed  # type: ignore[method-assign]
        with pytest.raises(Forbidden):
            svc.grant(actor, the_town, "newbie@example.com", ADMIN)
        s.rollback()
    assert removed and removed[0].changed
    assert _admins(app, town.town_id) == [first]
    with app.app_context():
        s = get_db().session
        newbie = s.scalar(sa.select(User.id).where(User.email == "newbie@example.com"))
        held = list(s.scalars(sa.select(Membership.role).where(Membership.user_id == newbie)))
    assert held == []
