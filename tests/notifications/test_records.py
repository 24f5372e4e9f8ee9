"""Recording facts and sending their mail, on PostgreSQL and SQLite: one row and one mail per
fact and person however often it is recorded, withdrawn and recorded again (a reorg), the
person's switches, verified addresses only, the hourly cap, retries, and the mail's text."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from backend.accounts.models import User
from backend.core import mail
from backend.core.db import get_db, utcnow
from backend.notifications.mailing import MAX_ATTEMPTS, claim_next, deliver
from backend.notifications.models import (
    CHARGE_PAID,
    POINTS_ARRIVED,
    VOTE_OPENED,
    Notification,
)
from backend.notifications.services import NotificationService, notify, withdraw
from tests.notifications.conftest import send_mails, stored, switches

PAID = {
    "amount": 1200,
    "shop_ja": "直売所",
    "shop_en": "Farm Market",
    "town_ja": "更別村",
    "town_en": "Sarabetsu",
}


@pytest.fixture
def app(make_app, deployed, any_db_url, smtp_server):
    return make_app(database_url=any_db_url, **smtp_server.settings)


def _person(app, email: str | None, *, verified: bool = True, locale: str = "ja") -> int:
    with app.app_context():
        s = get_db().session
        user = User(
            email=email,
            display_name="",
            locale=locale,
            email_verified_at=utcnow() if verified and email else None,
        )
        s.add(user)
        s.commit()
        return user.id


def _notify(app, uid: int, key: str = "charge_paid:1", kind: str = CHARGE_PAID, **kw) -> int:
    with app.app_context():
        s = get_db().session
        added = notify(s, kind=kind, key=key, user_ids=[uid], params=kw.pop("params", PAID), **kw)
        s.commit()
        return added


def _withdraw(app, key: str = "charge_paid:1") -> int:
    with app.app_context():
        s = get_db().session
        done = withdraw(s, key=key)
        s.commit()
        return done


def _service(app) -> NotificationService:
    return NotificationService(get_db().session(), secret_key=app.config["SECRET_KEY"])


def _user(uid: int) -> User:
    user = get_db().session.get(User, uid)
    assert user is not None
    return user


def test_a_fact_recorded_twice_is_one_row_and_one_mail(app, mailbox):
    uid = _person(app, "fan@example.com")
    assert _notify(app, uid) == 1
    assert _notify(app, uid) == 0  # the handler again, a retried task: the same key
    assert [(r["kind"], r["email"]) for r in stored(app)] == [(CHARGE_PAID, "pending")]
    assert send_mails(app) == {"sent": 1}
    assert send_mails(app) == {}
    assert _notify(app, uid) == 0
    assert send_mails(app) == {}
    assert len(mailbox.to("fan@example.com")) == 1
    assert stored(app)[0]["email"] == "sent"


def test_many_people_of_one_fact_each_get_one(app, mailbox):
    people = [_person(app, f"m{i}@example.com") for i in range(3)]
    more = _person(app, "late@example.com")
    with app.app_context():
        s = get_db().session
        assert (
            notify(s, kind=VOTE_OPENED, key="vote_opened:poll:1", user_ids=people, params={}) == 3
        )
        s.commit()
        # Recorded again with one more member (a card bought since): only the new one is added.
        added = notify(
            s, kind=VOTE_OPENED, key="vote_opened:poll:1", user_ids=[*people, more], params={}
        )
        s.commit()
    assert added == 1
    assert sorted(r["user_id"] for r in stored(app)) == sorted([*people, more])


def test_withdrawn_before_its_mail_went_is_hidden_not_mailed_and_comes_back_once(app, mailbox):
    uid = _person(app, "fan@example.com")
    _notify(app, uid)
    assert _withdraw(app) == 1  # the reorg took the payment off the chain
    row = stored(app)[0]
    assert (row["withdrawn"], row["email"]) == (True, "withdrawn")
    with app.app_context():
        assert _service(app).inbox(_user(uid)).items == []
        assert _service(app).unread_count(_user(uid)) == 0
    assert send_mails(app) == {}
    assert _withdraw(app) == 0  # reverted twice: nothing more
    # The payment is mined again on the new branch: the same row, shown again, mailed once.
    assert _notify(app, uid) == 0
    row = stored(app)[0]
    assert (row["withdrawn"], row["email"]) == (False, "pending")
    assert send_mails(app) == {"sent": 1}
    assert _notify(app, uid) == 0
    assert send_mails(app) == {}
    assert len(mailbox.to("fan@example.com")) == 1 and len(stored(app)) == 1


def test_withdrawn_after_its_mail_went_keeps_it_sent_and_never_mails_again(app, mailbox):
    uid = _person(app, "fan@example.com")
    _notify(app, uid)
    assert send_mails(app) == {"sent": 1}
    _withdraw(app)
    assert stored(app)[0]["email"] == "sent"
    _notify(app, uid)
    assert send_mails(app) == {}
    assert len(mailbox.to("fan@example.com")) == 1
    with app.app_context():
        assert [n.key for n in _service(app).inbox(_user(uid)).items] == ["charge_paid:1"]


def test_switches_off_a_channel_of_one_kind_only(app, mailbox):
    uid = _person(app, "fan@example.com")
    with app.app_context():
        svc = _service(app)
        on = {f"{k}.{c}": "on" for (k, c) in svc.switches(_user(uid))}
        del on["charge_paid.email"], on["points_arrived.in_app"]
        svc.set_switches(_user(uid), {**on, "csrf_token": "x"})
    assert switches(app) == [
        (uid, "charge_paid", "email", False),
        (uid, "points_arrived", "in_app", False),
    ]
    _notify(app, uid)
    _notify(app, uid, key="points_arrived:0xabc", kind=POINTS_ARRIVED)
    rows = {r["kind"]: r for r in stored(app)}
    assert (rows[CHARGE_PAID]["in_app"], rows[CHARGE_PAID]["email"]) == (True, "off")
    assert (rows[POINTS_ARRIVED]["in_app"], rows[POINTS_ARRIVED]["email"]) == (False, "pending")
    assert send_mails(app) == {"sent": 1}
    (only,) = mailbox.to("fan@example.com")
    assert only.subject == "ポイントが届きました"
    with app.app_context():
        assert [n.kind for n in _service(app).inbox(_user(uid)).items] == [CHARGE_PAID]
        assert _service(app).unread_count(_user(uid)) == 1


def test_mail_switched_off_after_the_fact_is_not_sent(app, mailbox):
    uid = _person(app, "fan@example.com")
    _notify(app, uid)
    with app.app_context():
        svc = _service(app)
        kind = svc.switch_mail_off(svc.off_token(uid, CHARGE_PAID))
    assert kind == CHARGE_PAID
    assert send_mails(app) == {"off": 1}
    assert mailbox.to("fan@example.com") == []


def test_mail_goes_to_verified_addresses_only_and_old_facts_are_listed_not_mailed(app, mailbox):
    unverified = _person(app, "new@example.com", verified=False)
    wallet_only = _person(app, None)
    fan = _person(app, "fan@example.com")
    _notify(app, unverified)
    _notify(app, wallet_only)
    _notify(app, fan, happened_at=utcnow() - dt.timedelta(days=4))  # a backfill finds it late
    assert sorted(r["email"] for r in stored(app)) == ["no_address", "no_address", "stale"]
    assert send_mails(app) == {}
    assert mailbox.mails == []
    assert all(r["in_app"] for r in stored(app))


def test_a_person_gets_at_most_the_hourly_cap_and_the_rest_waits(make_app, deployed, smtp_server):
    app = make_app(notification_mails_per_hour=2, **smtp_server.settings)
    uid = _person(app, "fan@example.com")
    for i in range(3):
        _notify(app, uid, key=f"charge_paid:{i}")
    assert send_mails(app) == {"sent": 2, "postponed": 1}
    assert len(smtp_server.mailbox.to("fan@example.com")) == 2
    assert send_mails(app) == {}  # not due before the hour is over
    with app.app_context():
        s = get_db().session
        waiting = s.scalar(sa.select(Notification).where(Notification.email_state == "pending"))
        first_sent = s.scalar(sa.select(sa.func.min(Notification.email_sent_at)))
        assert waiting.email_attempts == 0
        assert waiting.email_next_at == first_sent + dt.timedelta(hours=1)
        later = waiting.email_next_at + dt.timedelta(seconds=1)
        claim = claim_next(s, later)
        assert claim is not None
        assert deliver(s, app.extensions["settings"], claim, later) == "sent"
    assert len(smtp_server.mailbox.to("fan@example.com")) == 3


def test_an_smtp_server_that_refuses_is_retried_then_the_mail_fails(app, mailbox):
    uid = _person(app, "fan@example.com")
    _notify(app, uid)

    def refuse(*_a, **_kw):
        raise mail.MailError("connection refused")

    now = utcnow()
    with app.app_context():
        s = get_db().session
        states = []
        for _ in range(MAX_ATTEMPTS):
            claim = claim_next(s, now)
            assert claim is not None
            states.append(deliver(s, app.extensions["settings"], claim, now, send=refuse))
            assert claim_next(s, now) is None  # backed off: not due again at once
            now = s.scalar(sa.select(Notification.email_next_at)) or now
    assert states == ["pending"] * (MAX_ATTEMPTS - 1) + ["failed"]
    row = stored(app)[0]
    assert (row["email"], row["in_app"]) == ("failed", True)
    assert mailbox.mails == []


def test_a_claim_whose_worker_died_is_sent_once_its_lease_runs_out(app, mailbox):
    uid = _person(app, "fan@example.com")
    _notify(app, uid)
    now = utcnow()
    with app.app_context():
        s = get_db().session
        assert claim_next(s, now) is not None  # that worker is killed before sending
        assert claim_next(s, now) is None  # held: no second worker takes it meanwhile
    later = now + dt.timedelta(minutes=3)
    with app.app_context():
        s = get_db().session
        claim = claim_next(s, later)
        assert claim is not None and claim.attempts == 2
        assert deliver(s, app.extensions["settings"], claim, later) == "sent"
    assert len(mailbox.to("fan@example.com")) == 1


@pytest.mark.parametrize(
    ("locale", "subject", "sentence", "open_line"),
    [
        (
            "ja",
            "お支払いが完了しました",
            "直売所（更別村）で1,200ポイントをお支払いしました。",
            "詳しくはこちら：",
        ),
        ("en", "Payment made", "You paid 1,200 points at Farm Market (Sarabetsu).", "Open it:"),
    ],
)
def test_the_mail_is_in_the_persons_language_and_its_link_switches_the_kind_off(
    app, mailbox, locale, subject, sentence, open_line
):
    uid = _person(app, "fan@example.com", locale=locale)
    _notify(app, uid)
    send_mails(app)
    (sent,) = mailbox.to("fan@example.com")
    assert sent.subject == subject
    assert sentence in sent.body and f"{open_line}\nhttp" in sent.body
    assert "0x" not in sent.body
    links = re.findall(r"https?://\S+", sent.body)
    off = next(link for link in links if "/notifications/off/" in link)
    assert sent.message["List-Unsubscribe"] == f"<{off}>"
    client = app.test_client()
    page = client.get(urlsplit(off).path, headers={"Accept-Language": locale})
    assert page.status_code == 200 and switches(app) == []  # a look changes nothing
    html = page.get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    done = client.post(urlsplit(off).path, data={"csrf_token": token})
    assert done.status_code == 200, done.get_data(as_text=True)
    assert switches(app) == [(uid, CHARGE_PAID, "email", False)]
    _notify(app, uid, key="charge_paid:2")
    assert send_mails(app) == {}
    assert len(mailbox.to("fan@example.com")) == 1


def test_recording_refuses_an_unknown_kind_or_key(app):
    uid = _person(app, "fan@example.com")
    with app.app_context(), pytest.raises(ValueError, match="kind"):
        notify(get_db().session, kind="nft_minted", key="x:1", user_ids=[uid], params={})
    with app.app_context(), pytest.raises(ValueError, match="key"):
        notify(get_db().session, kind=CHARGE_PAID, key="k" * 201, user_ids=[uid], params={})
    assert stored(app) == []


def test_a_line_break_in_a_name_of_the_subject_is_one_line_not_a_stuck_mail(app, mailbox):
    """A town named with a line break (CR, LF, U+2028: the mail library refuses such a
    header) gets its poll's mail with a one-line subject, once, and no extra header."""
    uid = _person(app, "fan@example.com", locale="en")
    town = "Sarabetsu\r\nBcc: victim@example.com\u2028X"
    params = {"what": "poll", "row_id": 1, "town_slug": "s", "town_en": town, "title_en": "T"}
    _notify(app, uid, key="vote_opened:poll:1", kind=VOTE_OPENED, params=params)
    assert send_mails(app) == {"sent": 1}  # before: ValueError, the mail left "sending"
    (sent,) = mailbox.to("fan@example.com")
    assert sent.subject == "New poll in Sarabetsu Bcc: victim@example.com X"
    assert sent.message["Bcc"] is None and sent.to == ["fan@example.com"]


def test_an_error_that_is_not_the_smtp_servers_is_an_attempt_and_ends(app, mailbox):
    uid = _person(app, "fan@example.com")
    _notify(app, uid)

    def broken(*_a, **_kw):
        raise ValueError("a bug")

    now = utcnow()
    with app.app_context():
        s = get_db().session
        states = []
        for _ in range(MAX_ATTEMPTS):
            claim = claim_next(s, now)
            assert claim is not None
            states.append(deliver(s, app.extensions["settings"], claim, now, send=broken))
            now = s.scalar(sa.select(Notification.email_next_at)) or now
        assert claim_next(s, now + dt.timedelta(days=1)) is None
    assert states == ["pending"] * (MAX_ATTEMPTS - 1) + ["failed"]  # before: ValueError
    with app.app_context():
        error = get_db().session.scalar(sa.select(Notification.email_error))
    assert error == "ValueError: a bug" and mailbox.mails == []


def test_a_mail_whose_workers_all_died_fails_instead_of_being_claimed_for_ever(app, mailbox):
    uid = _person(app, "fan@example.com")
    _notify(app, uid)
    now = utcnow()
    with app.app_context():
        s = get_db().session
        for _ in range(MAX_ATTEMPTS):  # each worker is killed before it finishes
            assert claim_next(s, now) is not None
            now += dt.timedelta(minutes=3)  # its lease runs out
        claim = claim_next(s, now)
        assert claim is not None and claim.attempts == MAX_ATTEMPTS + 1
        assert deliver(s, app.extensions["settings"], claim, now) == "failed"  # before: sent
        assert claim_next(s, now + dt.timedelta(days=1)) is None
    assert stored(app)[0]["email"] == "failed" and mailbox.mails == []
