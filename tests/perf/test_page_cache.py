"""The page cache (backend/core/page_cache.py): a page renders once per data generation; every
response still gets its own CSP nonce (the one in its header), CSRF token and request key; a
commit that wrote bumps the generation (after a savepoint too), a read-only one does not; POSTs
and pages with flashed messages are never served from the cache; entries expire."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, flash, render_template_string

from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.core.page_cache import current_generation
from webui.shared import cached_page

TEMPLATE = (
    '<script nonce="{{ csp_nonce() }}"></script><i>{{ csrf_token() }}</i>'
    "<b>{{ key }}</b><u>{{ n }}</u>{% for m in get_flashed_messages() %}{{ m }}{% endfor %}"
)


@pytest.fixture
def page(any_db_url: str, make_app: Callable[..., Flask]) -> tuple[Flask, list[int]]:
    """An app with a cached test page that counts its renders."""
    app = make_app(database_url=any_db_url)
    renders: list[int] = []

    def view() -> str:
        def render(holes: Any) -> str:
            renders.append(1)
            return render_template_string(TEMPLATE, key=holes.key, n=len(renders))

        return cached_page("test.page", render)

    def flashing() -> str:
        flash("saved")
        return "ok"

    app.add_url_rule("/__cached", "test_cached", view, methods=["GET", "POST"])
    app.add_url_rule("/__flash", "test_flash", flashing)
    return app, renders


def _parts(resp: Any) -> dict[str, str]:
    html = resp.get_data(as_text=True)
    return {
        "nonce": re.search(r'nonce="([^"]+)"', html).group(1),
        "csrf": re.search(r"<i>(.*?)</i>", html).group(1),
        "key": re.search(r"<b>(.*?)</b>", html).group(1),
        "n": re.search(r"<u>(.*?)</u>", html).group(1),
        "header": resp.headers["Content-Security-Policy"],
    }


def _write(app: Flask, *, savepoint: bool = False) -> None:
    with app.app_context():
        s = get_db().session
        row = AuditLog(actor="test", action="test.write", subject_type="t", subject_id="1")
        if savepoint:
            with s.begin_nested():
                s.add(row)
        else:
            s.add(row)
        s.commit()


def test_one_render_per_generation_with_fresh_holes(page):
    app, renders = page
    client = app.test_client()
    first, second = _parts(client.get("/__cached")), _parts(client.get("/__cached"))
    assert len(renders) == 1 and first["n"] == second["n"] == "1"
    for p in (first, second):
        assert f"'nonce-{p['nonce']}'" in p["header"]  # the body's nonce is the header's
        assert p["csrf"] and "pagehole" not in p["csrf"] + p["key"] + p["nonce"]
    assert first["nonce"] != second["nonce"] and first["key"] != second["key"]
    # The CSRF token of the cached body is this session's: a POST with it is accepted.
    assert client.post("/__cached", data={"csrf_token": second["csrf"]}).status_code == 200
    assert len(renders) == 2  # a POST renders (and is never served from the cache)


def test_a_write_renders_again_a_read_does_not(page):
    app, renders = page
    client = app.test_client()
    client.get("/__cached")
    with app.app_context():
        s = get_db().session
        start = current_generation(s)
        s.commit()  # read-only
        assert current_generation(s) == start
    assert _parts(client.get("/__cached"))["n"] == "1"
    _write(app)
    assert _parts(client.get("/__cached"))["n"] == "2"
    _write(app, savepoint=True)
    with app.app_context():
        assert current_generation(get_db().session) == start + 2  # once per commit
    assert _parts(client.get("/__cached"))["n"] == "3"
    assert len(renders) == 3


def test_flashes_and_expiry_render_again(page):
    app, renders = page
    client = app.test_client()
    client.get("/__cached")
    client.get("/__flash")
    assert "saved" in client.get("/__cached").get_data(as_text=True)  # not from the cache
    assert len(renders) == 2
    app.extensions["page_cache"].ttl = 0
    client.get("/__cached")
    assert len(renders) == 3


def test_a_signed_in_page_renders_again_after_a_write_and_a_revoked_session_is_out(page):
    """Signed in, the generation comes with the session check's query (one round trip): a
    write still renders the page again, each person has their own body, and a session whose
    epoch moved (signed out everywhere) is no longer signed in."""
    from sqlalchemy import update

    from backend.accounts.models import User
    from backend.accounts.sessions import EPOCH, USER_ID
    from tests.onboarding.conftest import signup

    app, renders = page
    ids = [signup(app, f"reader{i}@example.com") for i in (1, 2)]
    clients = []
    for user_id in ids:
        client = app.test_client()
        with app.app_context():
            epoch = get_db().session.get(User, user_id).auth_epoch
        with client.session_transaction() as sess:
            sess[USER_ID], sess[EPOCH] = user_id, epoch
        clients.append(client)
    first, other = clients
    assert _parts(first.get("/__cached"))["n"] == "1"
    assert _parts(first.get("/__cached"))["n"] == "1"  # from the cache
    assert _parts(other.get("/__cached"))["n"] == "2"  # another person: their own body
    _write(app)
    assert _parts(first.get("/__cached"))["n"] == "3"
    assert len(renders) == 3
    with app.app_context():
        s = get_db().session
        s.execute(update(User).where(User.id == ids[0]).values(auth_epoch=User.auth_epoch + 1))
        s.commit()
    first.get("/__cached")
    with first.session_transaction() as sess:
        assert USER_ID not in sess
