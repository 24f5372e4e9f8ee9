"""The operator's town pages: only operators (403 otherwise), bad input and a taken slug are a
clear 4xx with nothing written, a double submit starts one setup; the progress page's JSON
status follows the worker to a live town, whose first admin's mailed link signs them in once
(making the account and giving the town's admin role)."""

from __future__ import annotations

import re
import time
import uuid
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from backend.accounts.models import Membership, User
from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.onboarding.models import TownInvite, TownSetup, TownSetupStep
from backend.onboarding.services import ADMIN_ROLE
from tests.onboarding.conftest import PASSWORD, signup, worker_and_beat

FORM = {
    "slug": "niseko",
    "name_ja": "ニセコ町",
    "name_en": "Niseko",
    "prefecture_ja": "北海道",
    "prefecture_en": "Hokkaido",
    "symbol": "NSK",
    "admin_email": "mayor@niseko.example",
}


@pytest.fixture
def app(make_app, deployed, deployments_dir, tmp_path, smtp_server):
    import shutil

    own = tmp_path / "deployments"
    shutil.copytree(deployments_dir, own)
    return make_app(deployments_dir=own, **smtp_server.settings)


def _token(client, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _login(client, email: str) -> None:
    resp = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": _token(client, "/login")},
    )
    assert resp.status_code in (302, 303), resp.get_data(as_text=True)[:500]


def _counts(app) -> tuple[int, int, int]:
    with app.app_context():
        s = get_db().session
        return tuple(  # type: ignore[return-value]
            s.scalar(sa.select(sa.func.count()).select_from(m))
            for m in (TownSetup, TownSetupStep, OutboxTx)
        )


def _post(client, **changes):
    data = {**FORM, "idempotency_key": uuid.uuid4().hex, **changes}
    data["csrf_token"] = _token(client, "/operator/towns/new")
    return client.post("/operator/towns", data=data)


def test_only_operators_may_onboard_a_town(app, client):
    assert client.get("/operator/towns").status_code == 302  # signed out: log in first
    signup(app, "fan@example.com")
    _login(client, "fan@example.com")
    assert client.get("/operator/towns").status_code == 403
    assert client.get("/operator/towns/new").status_code == 403
    token = _token(client, "/")
    resp = client.post("/operator/towns", data={**FORM, "csrf_token": token})
    assert resp.status_code == 403
    assert _counts(app) == (0, 0, 0)


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({"slug": "Toya Ko"}, 400),
        ({"slug": "x"}, 400),
        ({"symbol": "tya"}, 400),
        ({"symbol": "TOOLONGSYM"}, 400),
        ({"name_ja": ""}, 400),
        ({"admin_email": "not-an-email"}, 400),
        ({"slug": "api"}, 400),  # a reserved word
        ({"slug": "ｎｉｓｅｋｏ"}, 400),  # full-width letters look the same
        ({"slug": "nisеko"}, 400),  # a Cyrillic "е"
        # Longer than its column: PostgreSQL refused the INSERT, a 500.
        ({"idempotency_key": "k" * 101}, 400),
    ],
)
def test_bad_input_is_a_4xx_with_nothing_written(app, client, operator_id, changes, status):
    _login(client, "operator@example.com")
    resp = _post(client, **changes)
    assert resp.status_code == status
    assert 'role="alert"' in resp.get_data(as_text=True)
    assert _counts(app) == (0, 0, 0)


def test_a_form_without_csrf_is_refused(app, client, operator_id):
    _login(client, "operator@example.com")
    resp = client.post("/operator/towns", data=FORM)
    assert resp.status_code == 400
    assert _counts(app) == (0, 0, 0)


def test_operator_onboards_a_town_and_its_admin_signs_in_once(app, client, operator_id, mailbox):
    _login(client, "operator@example.com")
    key = uuid.uuid4().hex
    with worker_and_beat(app):
        resp = _post(client, idempotency_key=key)
        assert resp.status_code == 303
        assert urlsplit(resp.headers["Location"]).path == "/operator/towns/niseko"
        # A double submit (same idempotency key) is the same setup; a new form for a slug
        # already taken is a 409 with nothing written.
        again = _post(client, idempotency_key=key)
        assert again.status_code == 303
        counts = _counts(app)
        assert counts[0] == 1
        taken = _post(client)
        assert taken.status_code == 409
        assert _counts(app)[:2] == counts[:2]

        page = client.get("/operator/towns/niseko").get_data(as_text=True)
        assert "js/town_setup.js" in page and "setup-steps" in page
        seen: set[str] = set()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # poll the status as the page does
            status = client.get("/operator/towns/niseko/status.json").get_json()
            seen |= {s["state"] for s in status["steps"]}
            if status["state"] != "running":
                break
            time.sleep(0.3)
    assert status["state"] == "live", status
    assert status["confirmed"] == status["total"]
    assert "queued" in seen or "sent" in seen
    listing = client.get("/operator/towns").get_data(as_text=True)
    assert "ニセコ町" in listing or "Niseko" in listing
    assert client.get("/towns/niseko").status_code == 200  # the shop page

    # The first admin's link, from the mail: it makes the account and signs in once.
    mail = mailbox.wait_for("mayor@niseko.example")
    link = mail.link()
    path = urlsplit(link).path
    assert path.startswith("/invite/")
    with app.app_context():
        stored = get_db().session.scalar(sa.select(TownInvite.token_hash))
        assert path.rsplit("/", 1)[1] not in stored  # stored hashed
    mayor = app.test_client()
    form = mayor.get(path)
    assert form.status_code == 200 and 'name="password"' in form.get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.get_data(as_text=True))[1]
    resp = mayor.post(
        path, data={"csrf_token": token, "password": PASSWORD, "display_name": "町長"}
    )
    assert resp.status_code == 303
    assert urlsplit(resp.headers["Location"]).path == "/towns/niseko/admin"
    assert mayor.get("/towns/niseko/admin").status_code == 200
    with app.app_context():
        s = get_db().session
        user = s.scalar(sa.select(User).where(User.email == "mayor@niseko.example"))
        roles = set(s.scalars(sa.select(Membership.role).where(Membership.user_id == user.id)))
        assert roles == {ADMIN_ROLE}
    # Used once: a second use (even from another browser) is refused.
    other = app.test_client()
    assert other.get(path).status_code == 400
