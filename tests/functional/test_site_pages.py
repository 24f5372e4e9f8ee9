"""The pages every visitor can hit by accident or on purpose: errors in the visitor's language
(no framework English), an expired form that says nothing was done and leads back, and the
footer's fixed pages (terms, privacy, 特定商取引法に基づく表記, contact, about) — issue 15 §7."""

from __future__ import annotations

import re

import pytest

WERKZEUG_ENGLISH = (
    "The requested URL was not found on the server",
    "The method is not allowed for the requested URL",
    "CSRF",
)


def _ja(client, method: str, path: str, **kwargs):
    headers = {"Accept-Language": "ja", "Accept": "text/html", **kwargs.pop("headers", {})}
    return getattr(client, method)(path, headers=headers, **kwargs)


def test_unknown_page_in_japanese_has_no_framework_english(client):
    resp = _ja(client, "get", "/no/such/page")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 404
    assert "ページが見つかりません" in html and "このページは見つかりません" in html
    assert not any(s in html for s in WERKZEUG_ENGLISH)


def test_unknown_page_in_english_and_as_json(client):
    html = client.get("/no/such/page", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "This page does not exist." in html
    assert WERKZEUG_ENGLISH[0] not in html
    body = client.get("/api/no/such/thing", headers={"Accept-Language": "en"}).get_json()
    assert body["error"]["code"] == "not_found"
    assert body["error"]["message"].startswith("This page does not exist.")


def test_wrong_method_is_translated(client):
    resp = _ja(client, "put", "/")
    assert resp.status_code == 405
    html = resp.get_data(as_text=True)
    assert "このページはこの方法では使えません。" in html and WERKZEUG_ENGLISH[1] not in html


def test_expired_form_says_nothing_was_sent_and_leads_back_and_to_log_in(app, client):
    # The form's page, then a post whose token no longer matches the session (an expired
    # session looks the same to the server: no token it can check).
    referrer = "http://localhost/login?next=/towns/sarabetsu"
    resp = _ja(
        client,
        "post",
        "/login?next=/towns/sarabetsu",
        data={"csrf_token": "stale", "email": "fan@example.com", "password": "x"},
        headers={"Referer": referrer},
    )
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert "入力画面の有効期限が切れました" in html
    assert "送信されず、何も変更されていません" in html
    assert "CSRF" not in html and "token" not in html.lower().replace("csrf-token", "")
    back = re.search(r'href="([^"]+)" data-back data-testid="error-back"', html)
    assert back and back.group(1).replace("&amp;", "&") == "/login?next=/towns/sarabetsu"
    assert 'data-testid="error-login"' in html
    assert "js/back.js" in html


def test_expired_form_never_links_back_to_another_site(client):
    html = _ja(
        client,
        "post",
        "/login",
        data={"csrf_token": "stale"},
        headers={"Referer": "https://evil.example/phish"},
    ).get_data(as_text=True)
    assert "evil.example" not in html and 'data-testid="error-back"' not in html


def test_expired_token_on_the_json_api_has_its_own_code(client):
    resp = client.post("/api/auth/login", json={}, headers={"Accept-Language": "en"})
    assert resp.status_code == 400
    error = resp.get_json()["error"]
    assert error["code"] == "csrf_failed"
    assert error["message"].startswith("This form has expired, so nothing was sent")


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_footer_links_every_fixed_page_and_each_answers(client, lang):
    html = client.get("/", headers={"Accept-Language": lang}).get_data(as_text=True)
    footer = html.split('<footer class="foot">', 1)[1]
    for path in ("/about", "/terms", "/privacy", "/tokushoho", "/contact"):
        assert f'href="{path}"' in footer
        page = client.get(path, headers={"Accept-Language": lang})
        assert page.status_code == 200, path
    titles = {
        "ja": "特定商取引法に基づく表記",
        "en": "Legal notice (Specified Commercial Transactions Act)",
    }
    assert titles[lang] in footer


def test_legal_pages_say_the_operator_is_missing_rather_than_invent_one(client):
    html = client.get("/tokushoho", headers={"Accept-Language": "ja"}).get_data(as_text=True)
    assert 'data-testid="operator-missing"' in html
    assert "販売事業者" in html and "返品・キャンセル" in html


def test_legal_pages_show_the_operators_details(make_app, deployed):
    app = make_app(
        operator_name="株式会社ふるさとテスト",
        operator_address="北海道河西郡更別村1-1",
        operator_phone="0155-00-0000",
        operator_email="support@furusato.example",
        operator_manager="山田 花子",
    )
    client = app.test_client()
    html = client.get("/tokushoho", headers={"Accept-Language": "ja"}).get_data(as_text=True)
    assert 'data-testid="operator-missing"' not in html
    for value in ("株式会社ふるさとテスト", "北海道河西郡更別村1-1", "0155-00-0000", "山田 花子"):
        assert value in html
    contact = client.get("/contact", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "support@furusato.example" in contact


def test_only_the_about_page_names_the_blockchain(client):
    for lang, word in (("ja", "ブロックチェーン"), ("en", "blockchain")):
        assert word in client.get("/about", headers={"Accept-Language": lang}).get_data(
            as_text=True
        )
        assert word not in client.get("/", headers={"Accept-Language": lang}).get_data(as_text=True)
