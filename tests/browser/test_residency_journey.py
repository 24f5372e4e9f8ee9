"""Issue 15 §3 in a real browser at 360 px on the whole platform (live server, real worker, beat
ticks, anvil, a local OpenID Connect provider): a signed-in person verifies residency with the
digital-ID provider, sees their resident pass, and votes in the town's resident chamber."""

from __future__ import annotations

import re
import uuid

import pytest
import sqlalchemy as sa

from backend.core.db import get_db
from backend.dao.proposals import ProposalService
from backend.regions.models import Town
from tests.dao.conftest import dao_chain, signup, town  # noqa: F401  (fixtures)
from tests.dao.test_dao_journey import log_in, wait_for
from tests.oidc_provider import OidcProvider
from tests.oidc_provider import settings as oidc_settings
from tests.pages import assert_fits_the_phone

SLUG = "sarabetsu"
WIDTH, HEIGHT = 360, 740


@pytest.fixture
def provider():
    with OidcProvider() as p:
        yield p


@pytest.fixture
def app(make_app, deployed, provider):
    return make_app(**oidc_settings(provider))


def _propose(app, town_id: int) -> int:
    """Town staff's resident-chamber proposal (made through the service, as the console does)."""
    with app.app_context():
        svc = ProposalService.current()
        town = get_db().session.get(Town, town_id)
        p = svc.create_proposal(
            None,
            town,
            {
                "chamber": "resident",
                "token": "points",
                "recipient": "0x00000000000000000000000000000000000000E3",
                "amount": 1000,
                "title_ja": "公民館の修繕",
                "title_en": "Repair the community hall",
            },
            f"test-{uuid.uuid4().hex}",
            check_treasury=False,
            actor="test:staff",
        )
        return int(p.id)


def _state(app, row_id: int) -> str:
    """The proposal's state as its page reads it: from the projection (issue 16 §1)."""
    with app.app_context():
        svc = ProposalService.for_pages()
        town = get_db().session.scalar(sa.select(Town).where(Town.slug == SLUG))
        return svc.chain_view(svc.get_proposal(town, row_id)).state


def test_resident_verifies_gets_the_pass_and_votes(
    app,
    town,  # noqa: F811
    platform,
    browser,
    screenshot,
    dao_chain,  # noqa: F811
    provider,
):
    base = platform.url
    email = f"hanako-{uuid.uuid4().hex[:6]}@example.com"
    signup(app, email)
    page = log_in(browser, base, email, WIDTH, HEIGHT, "ja")
    try:
        page.goto(f"{base}/me")
        page.get_by_test_id("residency-link").click()
        page.wait_for_url(re.compile(r".*/me/residency$"))
        assert_fits_the_phone(page, WIDTH)
        screenshot(page, "before")
        # To the provider and back: it consents at once, the callback checks its ID token.
        page.get_by_test_id(f"verify-{SLUG}").click()
        page.wait_for_url(re.compile(r".*/me/residency\?notice=issued$"))
        assert provider.requests.count("/token") == 1
        assert (
            "住民であることを確認しました" in page.get_by_test_id("residency-notice").inner_text()
        )

        # The page reloads itself while the pass is being issued: wait for the state it shows.
        state = page.get_by_test_id(f"residency-state-{SLUG}")
        state.filter(has_text="パス発行済み").wait_for(timeout=60_000)
        assert "パス番号" in state.inner_text()
        assert_fits_the_phone(page, WIDTH)
        screenshot(page, "pass")

        # A resident-chamber proposal after the pass: the snapshot counts it.
        row_id = _propose(app, town.id)
        wait_for(lambda: _state(app, row_id) != "submitting", timeout=60)
        dao_chain.mine(2)  # past the voting delay
        wait_for(lambda: _state(app, row_id) == "active", timeout=60)

        page.get_by_role("link", name="住民院で投票する").click()
        page.wait_for_url(re.compile(rf".*/towns/{SLUG}/dao.*"))
        page.goto(f"{base}/towns/{SLUG}/dao/proposals/{row_id}")
        eligibility = page.locator("#dao-eligibility")
        assert eligibility.inner_text() == "住民パスをお持ちなので、1票の重みで投票できます。"
        assert eligibility.get_attribute("data-weight") == "1"
        page.get_by_role("button", name="賛成に投票").click()
        # The choice in words first; nothing is sent until it is confirmed.
        page.get_by_role("button", name="この内容で投票する").click()
        page.locator('#dao-eligibility[data-reason="already_voted"]').wait_for(timeout=30_000)
        page.locator('[data-count="for"]').filter(has_text="1").wait_for(timeout=60_000)
        assert_fits_the_phone(page, WIDTH)
        screenshot(page, "voted")
    finally:
        page.context.close()
