"""A town's admin invite goes to an address; an account someone made with that address before its
owner, never confirmed, must not become the town's admin when the owner follows the link (the
squatter knows its password). The link stays usable: after a password reset proves the mailbox,
the same link works."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets

import sqlalchemy as sa

from backend.accounts.models import Membership, User
from backend.accounts.services import AccountService
from backend.chain.api import get_vault
from backend.core.db import get_db, utcnow
from backend.onboarding.models import TownInvite
from tests.factories import TownFactory
from tests.onboarding.conftest import PASSWORD

EMAIL = "mayor@kamishihoro.example"


def _invite(app) -> tuple[str, int]:
    """A fresh admin invite of a new town for EMAIL, and an account with EMAIL nobody confirmed."""
    token = secrets.token_urlsafe(32)
    with app.app_context():
        session = get_db().session
        town = TownFactory(slug="kamishihoro", name_ja="上士幌町", name_en="Kamishihoro")
        session.flush()
        session.add(
            TownInvite(
                town_id=town.id,
                email=EMAIL,
                role="admin",
                token_hash=hashlib.sha256(token.encode()).hexdigest(),
                expires_at=utcnow() + dt.timedelta(days=1),
            )
        )
        session.commit()
        AccountService(session(), lambda: get_vault(app)).signup(EMAIL, PASSWORD, "squatter")
        return token, town.id


def _follow(app, token: str, password: str = ""):
    browser = app.test_client()
    page = browser.get(f"/invite/{token}", headers={"Accept-Language": "ja"})
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))[1]
    return browser.post(
        f"/invite/{token}",
        data={"csrf_token": csrf, "password": password, "display_name": ""},
        headers={"Accept-Language": "ja"},
    )


def _roles(app, town_id: int) -> list[str]:
    with app.app_context():
        return list(
            get_db().session.scalars(
                sa.select(Membership.role)
                .join(User, User.id == Membership.user_id)
                .where(User.email == EMAIL, Membership.town_id == town_id)
            )
        )


def test_an_invite_gives_no_role_to_an_account_nobody_confirmed(app):
    token, town_id = _invite(app)

    resp = _follow(app, token)
    assert resp.status_code == 409
    html = resp.get_data(as_text=True)
    assert "パスワードを再設定" in html  # what to do, in the reader's language
    assert _roles(app, town_id) == []
    with app.app_context():
        invite = get_db().session.scalar(sa.select(TownInvite))
        assert invite.used_at is None  # still usable

    # The owner proves the mailbox (a password reset marks the address confirmed and sets the
    # password they chose): the same link, with that password, now makes them the town's admin.
    with app.app_context():
        session = get_db().session
        user = session.scalar(sa.select(User).where(User.email == EMAIL))
        user.email_verified_at = utcnow()
        session.commit()
    resp = _follow(app, token, PASSWORD)
    assert resp.status_code == 303
    assert _roles(app, town_id) == ["admin"]
