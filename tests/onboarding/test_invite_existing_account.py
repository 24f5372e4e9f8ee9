"""A town's admin invite for an address that already has an account opens that account only with
its password (or when it is the account signed in already): the link signed anyone who held it
in to the existing account, with whatever else it holds (other towns' roles, its wallet), so a
forwarded link was a forwarded account. A wrong or missing password leaves the link usable."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets

import sqlalchemy as sa

from backend.accounts.models import Membership, User
from backend.core.db import get_db, utcnow
from backend.onboarding.models import TownInvite
from tests.factories import TownFactory
from tests.onboarding.conftest import PASSWORD, signup

EMAIL = "mayor@kamishihoro.example"


def _invite(app) -> tuple[str, int]:
    """A fresh admin invite of a new town for EMAIL, whose confirmed account exists already."""
    token = secrets.token_urlsafe(32)
    signup(app, EMAIL)
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
        return token, town.id


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html)[1]


def _follow(browser, token: str, password: str | None, lang: str = "en"):
    page = browser.get(f"/invite/{token}", headers={"Accept-Language": lang})
    data = {"csrf_token": _csrf(page.get_data(as_text=True)), "display_name": ""}
    if password is not None:
        data["password"] = password
    return browser.post(f"/invite/{token}", data=data, headers={"Accept-Language": lang})


def _login(browser, email: str) -> None:
    page = browser.get("/login")
    resp = browser.post(
        "/login",
        data={
            "email": email,
            "password": PASSWORD,
            "csrf_token": _csrf(page.get_data(as_text=True)),
        },
    )
    assert resp.status_code in (302, 303)


def _roles(app, town_id: int) -> list[str]:
    with app.app_context():
        return list(
            get_db().session.scalars(
                sa.select(Membership.role)
                .join(User, User.id == Membership.user_id)
                .where(User.email == EMAIL, Membership.town_id == town_id)
            )
        )


def _unused(app) -> bool:
    with app.app_context():
        return get_db().session.scalar(sa.select(TownInvite.used_at)) is None


def test_a_forwarded_link_does_not_open_the_existing_account(app):
    token, town_id = _invite(app)
    someone = app.test_client()
    page = someone.get(f"/invite/{token}", headers={"Accept-Language": "ja"})
    html = page.get_data(as_text=True)
    assert 'autocomplete="current-password"' in html and "パスワードを入力" in html
    for password in (None, "", "not the password"):
        resp = _follow(someone, token, password)
        assert resp.status_code == 401, password
        assert "password is incorrect" in resp.get_data(as_text=True)
        assert someone.get("/towns/kamishihoro/admin").status_code in (302, 401)
    assert _roles(app, town_id) == [] and _unused(app)

    # The owner, with the account's password: the town's admin, signed in.
    owner = app.test_client()
    resp = _follow(owner, token, PASSWORD)
    assert resp.status_code == 303
    assert owner.get("/towns/kamishihoro/admin").status_code == 200
    assert _roles(app, town_id) == ["admin"] and not _unused(app)


def test_the_signed_in_owner_needs_no_password_and_someone_else_does(app):
    token, town_id = _invite(app)
    signup(app, "clerk@example.com")
    other = app.test_client()
    _login(other, "clerk@example.com")
    assert _follow(other, token, None).status_code == 401
    assert _roles(app, town_id) == [] and _unused(app)

    owner = app.test_client()
    _login(owner, EMAIL)
    page = owner.get(f"/invite/{token}").get_data(as_text=True)
    assert 'name="password"' not in page
    assert _follow(owner, token, None).status_code == 303
    assert _roles(app, town_id) == ["admin"]
