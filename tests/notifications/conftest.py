"""Notifications fixtures: an app whose mail goes to a real SMTP server (aiosmtpd), the merchants'
world (two towns, a shop, a verified customer), and helpers that run the mail task and read a
person's notifications as they are stored."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from backend.accounts.services import AccountService
from backend.chain.custody import get_vault
from backend.chain.outbox import outbox_service
from backend.chain.registry import Deployments
from backend.core.db import get_db
from backend.notifications.models import CHARGE_PAID, Notification, NotificationPreference
from backend.notifications.services import notify
from tests.dao.conftest import dao_chain, manual_outbox, town  # noqa: F401  (fixtures)
from tests.mail import SmtpServer
from tests.merchants.conftest import world  # noqa: F401  (a fixture)

# The fixtures imported from other folders run on this folder's app (mail to the real SMTP
# server): the merchants' world, and the DAO's town and chain helpers.


@pytest.fixture
def app(make_app: Callable[..., Flask], deployed: Deployments, smtp_server: SmtpServer) -> Flask:
    app = make_app(**smtp_server.settings)
    with app.app_context():
        outbox_service().auto_dispatch = False  # tests drive the outbox themselves
    return app


def wait_until(done: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Whether `done()` holds before `timeout` seconds (it is asked again every 50 ms): waiting
    for a state another thread (the Celery worker) reaches, never for a time."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def send_mails(app: Flask) -> dict[str, int]:
    """What the worker does when the task is kicked: send every due notification mail."""
    from backend.notifications.tasks import send_mails as task

    with app.app_context():
        try:
            return task()
        finally:
            get_db().session.remove()


def stored(app: Flask, user_id: int | None = None) -> list[dict[str, Any]]:
    """Every notification row (of `user_id`), oldest first, as plain values."""
    with app.app_context():
        s = get_db().session
        q = sa.select(Notification).order_by(Notification.id)
        if user_id is not None:
            q = q.where(Notification.user_id == user_id)
        out = [
            {
                "id": n.id,
                "user_id": n.user_id,
                "kind": n.kind,
                "key": n.key,
                "params": dict(n.params),
                "in_app": n.in_app,
                "read": n.read_at is not None,
                "withdrawn": n.withdrawn_at is not None,
                "email": n.email_state,
            }
            for n in s.scalars(q)
        ]
        s.commit()
        return out


def switches(app: Flask) -> list[tuple[int, str, str, bool]]:
    with app.app_context():
        s = get_db().session
        out = [
            (p.user_id, p.kind, p.channel, p.enabled)
            for p in s.scalars(
                sa.select(NotificationPreference).order_by(NotificationPreference.id)
            )
        ]
        s.commit()
        return out


# --------------------------------------------------------------- people and their notifications

PASSWORD = "correct horse battery"
PARAMS = {"amount": 1200, "shop_ja": "直売所", "shop_en": "Farm Market", "town_ja": "更別村"}
PARAMS |= {"town_en": "Sarabetsu"}


def signup_verified(app: Flask, email: str) -> int:
    """A person with a verified address (their id)."""
    with app.app_context():
        svc = AccountService(get_db().session(), lambda: get_vault(app))
        return svc.signup(email, PASSWORD, verified=True).id


def record_facts(app: Flask, uid: int, n: int, kind: str = CHARGE_PAID) -> list[int]:
    """`n` notifications of `kind` for person `uid`, a minute apart from 13:47 JST on
    2026-12-04 (amounts 100, 101, ...); their ids, oldest first."""
    start = dt.datetime(2026, 12, 4, 4, 47, tzinfo=dt.UTC)  # 13:47 JST
    with app.app_context():
        s = get_db().session
        for i in range(n):
            notify(
                s,
                kind=kind,
                key=f"{kind}:{uid}:{i}",
                user_ids=[uid],
                params={**PARAMS, "amount": 100 + i},
                now=start + dt.timedelta(minutes=i),
            )
        s.commit()
        ids = list(s.scalars(sa.select(Notification.id).where(Notification.user_id == uid)))
        s.commit()
        return ids


@pytest.fixture
def people(app: Flask) -> tuple[int, int]:
    """Two people with verified addresses: fan@ and other@example.com (their ids)."""
    return signup_verified(app, "fan@example.com"), signup_verified(app, "other@example.com")
