"""Accounts that cannot be farmed, and sessions that end (issue 11 §4).

Mail goes through a real SMTP server (aiosmtpd, tests/mail.py); each test follows the link
from the captured mail, as a person would.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from backend.accounts.models import AccountToken, User
from backend.core.db import get_db
from backend.core.models import AuditLog
from tests.accounts.conftest import MASTER_KEY, PASSWORD, Api

TOWN = "/towns/sarabetsu"


@pytest.fixture
def app(make_app, deployed, smtp_server):
    return make_app(master_key=MASTER_KEY, **smtp_server.settings)


def _without_csrf(html: str) -> str:
    """A page with its CSRF tokens blanked: a token carries the second it was signed in, so two
    renderings of the same page differ there when a second boundary falls between them."""
    return re.sub(r'((?:name="csrf_token" value|name="csrf-token" content)=")[^"]+"', r'\1"', html)


def _token(client, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _signup_page(client, email: str, next_: str = TOWN, lang: str = "ja"):
    return client.post(
        f"/signup?next={next_}",
        data={"email": email, "password": PASSWORD, "csrf_token": _token(client, "/signup")},
        headers={"Accept-Language": lang},
    )


def _welcome_grants(app) -> int:
    with app.app_context():
        return get_db().session.scalar(
            select(func.count())
            .select_from(AuditLog)
            .where(AuditLog.action == "points.issue", AuditLog.reason == "welcome points")
        )


def _path(link: str) -> str:
    parts = urlsplit(link)
    return parts.path


def _verified(app, email: str) -> bool:
    with app.app_context():
        user = get_db().session.scalar(select(User).where(User.email == email))
        return user.email_verified_at is not None


def test_six_signups_in_a_burst_get_no_welcome_points_until_a_mailed_link_is_followed(app, mailbox):
    from scripts.demo_data import load_demo_data

    load_demo_data(app)
    before = _welcome_grants(app)  # the demo's own residents, created verified

    # One client signs up six times from the town's page, as fast as it can.
    client = app.test_client()
    statuses = []
    for i in range(6):
        statuses.append(_signup_page(client, f"farm{i}@example.com").status_code)
        client.post("/logout", data={"csrf_token": _token(client, "/login")})
    assert statuses == [302] * 5 + [429]
    assert _welcome_grants(app) == before  # nothing before a verified address

    mail = mailbox.wait_for("farm0@example.com")
    assert mail.subject == "メールアドレスの確認"  # decoded from RFC 2047
    assert "ふるさと" in str(mail.message["From"])
    link = mail.link()
    assert link.startswith(app.extensions["settings"].public_url + "/verify-email/")

    page = client.get(_path(link), headers={"Accept-Language": "ja"})
    assert page.status_code == 200
    assert "メールアドレスを確認しました" in page.get_data(as_text=True)
    assert _verified(app, "farm0@example.com")
    assert _welcome_grants(app) == before + 1

    # The link works once.
    again = client.get(_path(link), headers={"Accept-Language": "en"})
    assert again.status_code == 400
    assert "This link is invalid or has expired." in again.get_data(as_text=True)
    assert _welcome_grants(app) == before + 1

    # The token is stored hashed: the raw token from the mail is nowhere in the database.
    raw = _path(link).rsplit("/", 1)[1]
    with app.app_context():
        hashes = get_db().session.scalars(select(AccountToken.token_hash)).all()
    assert raw not in hashes and len(hashes) == 5


def test_api_signup_mails_an_english_link_and_reports_verification(app, mailbox):
    api = Api(app.test_client())
    resp = api.signup("fan@example.com", locale="en")
    assert resp.status_code == 201
    assert resp.get_json()["user"]["email_verified"] is False
    mail = mailbox.wait_for("fan@example.com")
    assert mail.subject == "Confirm your email address"
    assert api.client.get(_path(mail.link())).status_code == 200
    assert api.get("/api/accounts/me").get_json()["user"]["email_verified"] is True


def test_api_signup_for_a_town_gets_its_welcome_points_once_verified(app, mailbox):
    """A client of the JSON API (a town's own app) names the town at sign-up: the mailed link
    then unlocks that town's welcome points, as the sign-up page's link does. An unknown town
    is refused before anything is created."""
    from scripts.demo_data import load_demo_data

    load_demo_data(app)
    before = _welcome_grants(app)
    api = Api(app.test_client())
    for bad in ("atlantis", 7, "x" * 65):
        resp = api.signup("fan@example.com", town=bad)
        assert resp.status_code == 400, resp.get_json()
        assert resp.get_json()["error"]["code"] == "invalid_input"
    with app.app_context():
        assert get_db().session.scalar(select(User).where(User.email == "fan@example.com")) is None

    assert api.signup("fan@example.com", town="sarabetsu", locale="en").status_code == 201
    assert _welcome_grants(app) == before
    mail = mailbox.wait_for("fan@example.com")
    assert api.client.get(_path(mail.link())).status_code == 200
    assert _welcome_grants(app) == before + 1


def test_a_cookie_saved_before_logout_no_longer_works(app):
    api = Api(app.test_client())
    assert api.signup("fan@example.com").status_code == 201
    saved = api.client.get_cookie("session").value  # what a thief would copy
    assert api.post("/api/auth/logout").status_code == 200
    thief = app.test_client()
    thief.set_cookie("session", saved)
    assert thief.get("/api/accounts/me").status_code == 401
    assert thief.get("/me").status_code == 302  # the page asks to log in


def test_a_password_change_signs_out_other_devices_and_keeps_this_one(app):
    client = app.test_client()
    assert _signup_page(client, "fan@example.com", next_="/me").status_code == 302
    other = app.test_client()
    other.set_cookie("session", client.get_cookie("session").value)  # a second device
    assert other.get("/api/accounts/me").status_code == 200

    wrong = client.post(
        "/me/password",
        data={
            "current_password": "not the password",
            "password": "a brand new password",
            "csrf_token": _token(client, "/me/password"),
        },
    )
    assert wrong.status_code == 401
    assert other.get("/api/accounts/me").status_code == 200  # a failed change revokes nothing

    ok = client.post(
        "/me/password",
        data={
            "current_password": PASSWORD,
            "password": "a brand new password",
            "csrf_token": _token(client, "/me/password"),
        },
    )
    assert ok.status_code == 200
    assert client.get("/api/accounts/me").status_code == 200
    assert other.get("/api/accounts/me").status_code == 401
    api = Api(app.test_client())
    login = api.post(
        "/api/auth/login", {"email": "fan@example.com", "password": "a brand new password"}
    )
    assert login.status_code == 200


def test_password_reset_by_mail_revokes_sessions_and_works_once(app, mailbox):
    thief = Api(app.test_client())
    assert thief.signup("fan@example.com").status_code == 201
    client = app.test_client()
    resp = client.post(
        "/forgot-password",
        data={"email": "fan@example.com", "csrf_token": _token(client, "/forgot-password")},
        headers={"Accept-Language": "en"},
    )
    assert resp.status_code == 200
    # An unknown address gets the same answer and no mail.
    same = client.post(
        "/forgot-password",
        data={"email": "nobody@example.com", "csrf_token": _token(client, "/forgot-password")},
        headers={"Accept-Language": "en"},
    )
    assert "csrf" in resp.get_data(as_text=True)
    assert _without_csrf(same.get_data(as_text=True)) == _without_csrf(resp.get_data(as_text=True))

    mail = mailbox.wait_for("fan@example.com", count=2)  # the first is the verification
    assert mail.subject == "パスワードの再設定"
    path = _path(mail.link())
    assert client.get(path).status_code == 200
    short = client.post(path, data={"password": "short", "csrf_token": _token(client, path)})
    assert short.status_code == 400  # nothing consumed: the link still works
    done = client.post(
        path, data={"password": "a brand new password", "csrf_token": _token(client, path)}
    )
    assert done.status_code == 200
    assert thief.get("/api/accounts/me").status_code == 401  # the old session is gone
    replay = client.post(
        path, data={"password": "the attacker's choice", "csrf_token": _token(client, "/login")}
    )
    assert replay.status_code == 400
    api = Api(app.test_client())
    ok = api.post(
        "/api/auth/login", {"email": "fan@example.com", "password": "a brand new password"}
    )
    assert ok.status_code == 200
    assert ok.get_json()["user"]["email_verified"] is True  # the mailbox was proved
    assert not mailbox.to("nobody@example.com")


def test_email_change_needs_the_password_and_the_new_mailbox(app, mailbox):
    client = app.test_client()
    assert _signup_page(client, "old@example.com", next_="/me").status_code == 302
    bad = client.post(
        "/me/email",
        data={
            "email": "new@example.com",
            "password": "not the password",
            "csrf_token": _token(client, "/me/email"),
        },
    )
    assert bad.status_code == 401 and not mailbox.to("new@example.com")
    resp = client.post(
        "/me/email",
        data={
            "email": "new@example.com",
            "password": PASSWORD,
            "csrf_token": _token(client, "/me/email"),
        },
    )
    assert resp.status_code == 200
    with app.app_context():  # not moved until the new mailbox answers
        assert get_db().session.scalar(select(User.email)) == "old@example.com"
    mail = mailbox.wait_for("new@example.com")
    assert mail.subject == "新しいメールアドレスの確認"
    assert client.get(_path(mail.link())).status_code == 200
    assert client.get("/api/accounts/me").get_json()["user"]["email"] == "new@example.com"
    assert _verified(app, "new@example.com")


def test_embedded_run_writes_each_mail_to_a_file(make_app, deployed, tmp_path):
    app = make_app(master_key=MASTER_KEY, instance_path=tmp_path)
    assert Api(app.test_client()).signup("fan@example.com").status_code == 201
    files = list((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 1
    assert oct(files[0].stat().st_mode & 0o777) == "0o600"
    assert "/verify-email/" in files[0].read_text()


def test_one_link_clicked_twice_at_once_verifies_and_grants_once(make_app, deployed, any_db_url):
    """Single use holds under concurrency on PostgreSQL and SQLite: one conditional UPDATE."""
    from backend.accounts.mail_flows import AccountMail, InvalidLink
    from backend.accounts.services import AccountService
    from backend.chain.custody import get_vault
    from backend.points.models import PointsGrant
    from scripts.demo_data import load_demo_data

    app = make_app(master_key=MASTER_KEY, database_url=any_db_url)
    load_demo_data(app)
    sent: list[str] = []
    with app.test_request_context():
        s = get_db().session()
        user = AccountService(s, lambda: get_vault(app)).signup("fan@example.com", PASSWORD)
        mails = AccountMail(
            s, app.extensions["settings"], send=lambda _s, _to, _subj, body: sent.append(body)
        )
        assert mails.send_verification(user, "sarabetsu")
        user_id = user.id
    token = re.search(r"/verify-email/(\S+)", sent[0]).group(1)

    from tests.concurrency import n_at_once
    from webui.account_pages import grant_welcome

    def click(_i: int) -> str:
        try:
            verified = AccountMail(get_db().session(), app.extensions["settings"]).verify(token)
        except InvalidLink:
            return "invalid"
        grant_welcome(verified.user, verified.town_slug)
        return "verified"

    outcomes = n_at_once(app, 4, click, request=True)
    assert sorted(outcomes) == ["invalid"] * 3 + ["verified"]
    with app.app_context():
        grants = get_db().session.scalar(
            select(func.count()).select_from(PointsGrant).where(PointsGrant.user_id == user_id)
        )
    assert grants == 1


def test_expired_links_fail_and_old_ones_are_purged(app):
    import datetime as dt

    from backend.accounts.mail_flows import AccountMail, InvalidLink
    from backend.accounts.services import AccountService
    from backend.chain.custody import get_vault
    from backend.core.db import utcnow

    sent: list[str] = []
    clock = [utcnow() - dt.timedelta(days=10)]
    with app.test_request_context():
        s = get_db().session()
        user = AccountService(s, lambda: get_vault(app)).signup("fan@example.com", PASSWORD)
        mails = AccountMail(
            s,
            app.extensions["settings"],
            send=lambda _s, _to, _subj, body: sent.append(body),
            now=lambda: clock[0],
        )
        mails.send_verification(user)
        old = re.search(r"/verify-email/(\S+)", sent[-1]).group(1)
        clock[0] = utcnow()
        with pytest.raises(InvalidLink):  # 10 days old: expired after 2
            mails.verify(old)
        mails.send_verification(user)  # issuing purges links expired over a week ago
        assert s.scalar(select(func.count()).select_from(AccountToken)) == 1
        assert mails.verify(re.search(r"/verify-email/(\S+)", sent[-1]).group(1)).user.id == user.id


def test_a_resent_verification_link_still_unlocks_the_towns_welcome_points(app, mailbox):
    """The first mail did not arrive (spam folder, a typo fixed by the provider): the visitor
    asks for another link from my page. The new link replaces the first, so it must carry the
    town they signed up from, or their welcome points are lost for good."""
    from scripts.demo_data import load_demo_data

    load_demo_data(app)
    before = _welcome_grants(app)
    client = app.test_client()
    assert _signup_page(client, "fan@example.com").status_code == 302
    first = mailbox.wait_for("fan@example.com")
    resent = client.post("/me/verify-email", data={"csrf_token": _token(client, "/me")})
    assert resent.status_code == 200
    second = mailbox.wait_for("fan@example.com", count=2)
    assert client.get(_path(first.link())).status_code == 400  # replaced by the new one
    assert client.get(_path(second.link())).status_code == 200
    assert _verified(app, "fan@example.com")
    assert _welcome_grants(app) == before + 1


@pytest.mark.parametrize(
    "query", ["town=" + "x" * 65, "next=/towns/" + "a" * 65, "town=atlantis&next=/towns/atlantis"]
)
def test_a_sign_up_page_link_with_a_bogus_town_still_signs_up_and_mails_a_link(app, mailbox, query):
    """The sign-up page's ?town= and ?next=/towns/<slug> come from links anyone can write: a slug
    that names no town (or is longer than any slug) is ignored, never a 500 after the account
    was made without its verification mail."""
    client = app.test_client()
    resp = client.post(
        f"/signup?{query}",
        data={
            "email": "fan@example.com",
            "password": PASSWORD,
            "csrf_token": _token(client, "/signup"),
        },
    )
    assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
    mail = mailbox.wait_for("fan@example.com")
    assert client.get(_path(mail.link())).status_code == 200
    assert _verified(app, "fan@example.com")


def test_a_password_reset_voids_the_email_change_a_thief_asked_for(app, mailbox):
    """Someone who learnt the password signs in and asks to move the account to their own
    mailbox. The owner notices and resets the password by mail, which signs the thief out: the
    thief's pending confirmation link must die with it, or following it later hands them the
    account (its address, then a reset of their own)."""
    owner = app.test_client()
    assert _signup_page(owner, "owner@example.com", next_="/me").status_code == 302
    thief = app.test_client()
    thief.post(
        "/login",
        data={
            "email": "owner@example.com",
            "password": PASSWORD,
            "csrf_token": _token(thief, "/login"),
        },
    )
    asked = thief.post(
        "/me/email",
        data={
            "email": "thief@example.com",
            "password": PASSWORD,
            "csrf_token": _token(thief, "/me/email"),
        },
    )
    assert asked.status_code == 200
    stolen_link = _path(mailbox.wait_for("thief@example.com").link())

    owner.post(
        "/forgot-password",
        data={"email": "owner@example.com", "csrf_token": _token(owner, "/forgot-password")},
    )
    reset = _path(mailbox.wait_for("owner@example.com", count=2).link())  # 1st: verification
    done = owner.post(
        reset, data={"password": "a brand new password", "csrf_token": _token(owner, reset)}
    )
    assert done.status_code == 200

    assert thief.get(stolen_link).status_code == 400
    with app.app_context():
        assert get_db().session.scalar(select(User.email)) == "owner@example.com"


def test_a_password_change_voids_pending_reset_and_email_change_links(app, mailbox):
    """Links mailed before the password changed were asked for by whoever knew the old one (or
    the old situation): after the owner sets a new password, neither a reset link nor an address
    change still works."""
    client = app.test_client()
    assert _signup_page(client, "owner@example.com", next_="/me").status_code == 302
    client.post(
        "/me/email",
        data={
            "email": "elsewhere@example.com",
            "password": PASSWORD,
            "csrf_token": _token(client, "/me/email"),
        },
    )
    change_link = _path(mailbox.wait_for("elsewhere@example.com").link())
    client.post(
        "/forgot-password",
        data={"email": "owner@example.com", "csrf_token": _token(client, "/forgot-password")},
    )
    reset_link = _path(mailbox.wait_for("owner@example.com", count=2).link())

    changed = client.post(
        "/me/password",
        data={
            "current_password": PASSWORD,
            "password": "a brand new password",
            "csrf_token": _token(client, "/me/password"),
        },
    )
    assert changed.status_code == 200

    assert client.get(reset_link).status_code == 400
    late = client.post(
        reset_link, data={"password": "someone else's pick", "csrf_token": _token(client, "/me")}
    )
    assert late.status_code == 400
    assert client.get(change_link).status_code == 400
    with app.app_context():
        assert get_db().session.scalar(select(User.email)) == "owner@example.com"
    api = Api(app.test_client())
    ok = api.post(
        "/api/auth/login", {"email": "owner@example.com", "password": "a brand new password"}
    )
    assert ok.status_code == 200
