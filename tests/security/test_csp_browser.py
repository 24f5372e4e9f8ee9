"""The main pages still work under the Content-Security-Policy in a real browser: no CSP
violation and no script error on the pages a tourist, town staff and a shop clerk open."""

from __future__ import annotations

import pytest

from backend.accounts.roles import STAFF, grant_town_role
from backend.accounts.services import AccountService
from backend.chain.custody import get_vault
from backend.core.db import get_db
from backend.merchants.models import ACTIVE
from backend.merchants.services import merchant_service
from scripts.demo_data import load_demo_data

PASSWORD = "correct horse battery"


@pytest.fixture
def people(app):
    town = load_demo_data(app)
    with app.app_context():
        accounts = AccountService(get_db().session(), lambda: get_vault(app))
        users = {
            e: accounts.signup(e, PASSWORD)
            for e in ("staff@example.com", "clerk@example.com", "tourist@example.com")
        }
        grant_town_role(users["staff@example.com"], town.id, STAFF)
        get_db().session.commit()
        svc = merchant_service()
        shop = svc.register_merchant(users["staff@example.com"], town, "直売所", "Farm Market")
        svc.add_staff(users["staff@example.com"], shop, users["clerk@example.com"])
        shop.status = ACTIVE
        get_db().session.commit()
        return {"shop": shop.id}


def _visit(browser, base: str, email: str | None, paths: list[str]) -> list[str]:
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="ja-JP")
    page = context.new_page()
    problems: list[str] = []
    page.on(
        "console",
        lambda m: (
            problems.append(f"{page.url}: {m.text}")
            # (a missing favicon logs "Failed to load resource": not a script problem)
            if (m.type == "error" and "Failed to load resource" not in m.text)
            or "Content Security Policy" in m.text
            else None
        ),
    )
    page.on("pageerror", lambda e: problems.append(f"{page.url}: {e}"))
    try:
        if email:
            page.goto(base + "/login")
            page.fill("#email", email)
            page.fill("#password", PASSWORD)
            page.click("form.form button[type=submit]")
            page.wait_for_load_state("load")
        for path in paths:
            resp = page.goto(base + path)
            assert resp is not None and resp.status < 400, (path, resp and resp.status)
            assert resp.headers["content-security-policy"]
            page.wait_for_load_state("load")
    finally:
        context.close()
    return problems


def test_main_pages_have_no_csp_violations(app, live_server, browser, people):
    base = live_server.url
    shop = people["shop"]
    problems = _visit(
        browser, base, None, ["/", "/login", "/signup", "/towns/sarabetsu", "/api/docs"]
    )
    problems += _visit(
        browser,
        base,
        "tourist@example.com",
        [
            "/me",
            "/points",
            "/points/code",
            "/my/collection",
            "/towns/sarabetsu/dao",
            "/towns/sarabetsu/dao/polls",
        ],
    )
    problems += _visit(
        browser,
        base,
        "staff@example.com",
        [
            "/towns/sarabetsu/shops",
            "/towns/sarabetsu/cards",
            "/towns/sarabetsu/settlements",
            "/towns/sarabetsu/dao/new",
            "/towns/sarabetsu/dao/polls/new",
        ],
    )
    problems += _visit(browser, base, "clerk@example.com", ["/merchants", f"/merchants/{shop}"])
    assert not problems, "\n".join(problems)
