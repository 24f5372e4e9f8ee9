"""A resident verifies with the digital-ID provider (OpenID Connect, a local provider started by
the test) and gets the pass without a visit; the same person at the town hall finds the same
row (one pass by both routes). A wrong state, nonce, issuer, audience or signature, no ID
token, or an address outside the town is refused with nothing changed."""

from __future__ import annotations

import pytest
import requests

from backend.chain.outbox import outbox_service
from tests.oidc_provider import OidcProvider
from tests.oidc_provider import settings as oidc_settings
from tests.residency.conftest import (
    BASE,
    ID,
    SLUG,
    counts,
    form,
    login,
    resident,
    settle,
    signup,
)


@pytest.fixture
def provider():
    with OidcProvider() as p:
        yield p


@pytest.fixture
def app(make_app, deployed, provider):
    app = make_app(**oidc_settings(provider))
    with app.app_context():
        outbox_service().auto_dispatch = False
    return app


def verify_with_provider(api):
    """Start at /me/residency, "sign in" at the provider, come back: the callback's response."""
    start = api.client.get(f"/me/residency/{SLUG}/verify")
    assert start.status_code == 302, start.get_data(as_text=True)
    at_provider = requests.get(start.location, allow_redirects=False, timeout=10)
    assert at_provider.status_code == 302
    back = at_provider.headers["Location"]
    assert back.startswith("http://localhost/me/residency/callback?")
    return api.client.get(back.removeprefix("http://localhost"), headers={"Accept-Language": "en"})


def test_verified_resident_gets_the_pass_without_a_visit(app, town, provider, dao_chain):
    _, uid, addr = signup(app, "hanako@example.com")
    api = login(app, "hanako@example.com")
    page = api.client.get("/me/residency", headers={"Accept-Language": "en"})
    assert "Verify with テストID" in page.get_data(as_text=True)

    resp = verify_with_provider(api)
    assert resp.status_code == 303, resp.get_data(as_text=True)
    assert resp.location.endswith("/me/residency?notice=issued")
    row = resident(app, uid)
    assert (row["state"], row["method"], row["oidc_issuer"]) == ("issuing", "oidc", provider.url)
    assert "/token" in provider.requests and "/jwks" in provider.requests

    settle(app, dao_chain)
    assert resident(app, uid)["state"] == "issued"
    page = api.client.get("/me/residency", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Pass issued" in page and "Pass no. 1" in page

    # The same person at the town hall later: the same row, nothing new.
    _, staff_id, _ = signup(app, "registry@example.com")
    from tests.residency.conftest import make_staff

    make_staff(app, town, staff_id)
    staff = login(app, "registry@example.com")
    before = counts(app)
    again = form(staff, f"{BASE}/verify", {"user_id": str(uid), "saw_id": "1", **ID})
    assert again.status_code == 303
    assert counts(app) == before
    # And coming back through the provider again changes nothing either.
    assert verify_with_provider(api).status_code == 303
    assert counts(app) == before


def test_the_same_person_on_another_account_is_refused(app, town, provider):
    """Verified at the town hall on one account, the person tries the provider on another."""
    _, staff_id, _ = signup(app, "registry@example.com")
    from tests.residency.conftest import make_staff

    make_staff(app, town, staff_id)
    staff = login(app, "registry@example.com")
    _, first, _ = signup(app, "hanako@example.com")
    resp = form(staff, f"{BASE}/verify", {"user_id": str(first), "saw_id": "1", **ID})
    assert resp.status_code == 303
    _, second, _ = signup(app, "hanako.other@example.com")
    before = counts(app)
    resp = verify_with_provider(login(app, "hanako.other@example.com"))
    assert resp.status_code == 409
    assert "another account" in resp.get_data(as_text=True)
    assert counts(app) == before and resident(app, second) is None


@pytest.mark.parametrize("tamper", ["nonce", "issuer", "audience", "state", "key", "no_id_token"])
def test_a_bad_answer_is_refused(app, town, provider, tamper):
    _, uid, _ = signup(app, "hanako@example.com")
    api = login(app, "hanako@example.com")
    provider.tamper = tamper
    before = counts(app)
    resp = verify_with_provider(api)
    assert resp.status_code == 400, (tamper, resp.status_code)
    assert "could not be checked" in resp.get_data(as_text=True)
    assert counts(app) == before and resident(app, uid) is None


def test_an_address_outside_the_town_is_refused(app, town, provider):
    _, uid, _ = signup(app, "obihiro@example.com")
    api = login(app, "obihiro@example.com")
    provider.person = {
        **provider.person,
        "address": {"region": "北海道", "locality": "帯広市", "street_address": "西5条"},
    }
    before = counts(app)
    resp = verify_with_provider(api)
    assert resp.status_code == 400
    assert "outside this town" in resp.get_data(as_text=True)
    assert counts(app) == before and resident(app, uid) is None


def _town_is(app, town, **names):
    from backend.core.db import get_db
    from backend.regions.models import Town

    with app.app_context():
        s = get_db().session
        row = s.get(Town, town.id)
        for name, value in names.items():
            setattr(row, name, value)
        s.commit()


def test_a_town_of_the_same_name_in_another_prefecture_is_refused(app, town, provider):
    """Many Japanese towns share a name (池田町 in Hokkaido, Gifu, Fukui, Nagano, Tokushima):
    the town's prefecture must match too, or any of them would vote in this resident chamber."""
    _town_is(app, town, name_ja="池田町", name_en="Ikeda", prefecture_ja="北海道",
             prefecture_en="Hokkaido")  # fmt: skip
    _, uid, _ = signup(app, "gifu@example.com")
    api = login(app, "gifu@example.com")
    provider.person = {
        **provider.person,
        "address": {"region": "岐阜県", "locality": "揖斐郡池田町", "street_address": "六之井1"},
    }
    before = counts(app)
    resp = verify_with_provider(api)
    assert resp.status_code == 400
    assert "outside this town" in resp.get_data(as_text=True)
    assert counts(app) == before and resident(app, uid) is None

    # The one in Hokkaido is this town: issued.
    provider.person = {
        **provider.person,
        "address": {"region": "北海道", "locality": "中川郡池田町", "street_address": "西1条"},
    }
    assert verify_with_provider(api).status_code == 303
    assert resident(app, uid)["state"] == "issuing"


def test_callback_without_a_start_and_signed_out(app, town, provider):
    signup(app, "hanako@example.com")
    api = login(app, "hanako@example.com")
    before = counts(app)
    resp = api.client.get("/me/residency/callback?code=x&state=y")
    assert resp.status_code == 400
    assert counts(app) == before
    anonymous = app.test_client()
    assert anonymous.get("/me/residency").status_code == 302
    assert anonymous.get("/me/residency/callback?code=x&state=y").status_code == 302


def test_japanese_page(app, town, provider):
    signup(app, "hanako@example.com")
    api = login(app, "hanako@example.com")
    text = api.client.get("/me/residency", headers={"Accept-Language": "ja"}).get_data(as_text=True)
    assert "住民パス" in text and "テストIDで確認する" in text
