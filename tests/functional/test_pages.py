"""Pages and the JSON error format, without a browser."""

from __future__ import annotations

from sqlalchemy import select

from backend.core.db import get_db
from backend.regions.models import Town
from scripts.demo_data import load_demo_data


def test_landing_lists_demo_town_in_japanese_by_default(app, client):
    load_demo_data(app)
    html = client.get("/").get_data(as_text=True)
    assert '<html lang="ja">' in html
    assert "好きなまちを応援しよう" in html
    assert "更別村" in html and "4 件のコレクション" in html
    assert "洞爺湖町" in html  # the partner town of the demo


def test_accept_language_english_and_cookie_choice_wins(app, client):
    load_demo_data(app)
    html = client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9"}).get_data(as_text=True)
    assert "Support your favourite town" in html and "Sarabetsu" in html
    resp = client.get("/lang/ja?next=/towns/sarabetsu")
    assert resp.status_code == 302 and resp.headers["Location"] == "/towns/sarabetsu"
    html = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "好きなまちを応援しよう" in html


def test_town_shop_lists_collection_with_prices(app, client):
    load_demo_data(app)
    client.get("/lang/en")
    html = client.get("/towns/sarabetsu").get_data(as_text=True)
    assert "Sarabetsu Ambassador Card" in html and "Ambassador card" in html
    assert "5,000 yen" in html and "5,000 points" in html


def test_demo_data_is_idempotent_and_uses_deployed_addresses(app, deployed):
    load_demo_data(app)
    load_demo_data(app)
    with app.app_context():
        towns = get_db().session.scalars(select(Town).order_by(Town.id)).all()
    assert [t.slug for t in towns] == ["sarabetsu", "toyako"]
    assert towns[0].points_address == deployed.address("towns.sarabetsu.RegionPoints")
    assert towns[1].points_address == deployed.address("towns.toyako.RegionPoints")


def test_language_switch_rejects_unknown_language_and_offsite_redirect(client):
    assert client.get("/lang/fr").status_code == 404
    for target in ("https://evil.example/", "//evil.example/", "javascript:alert(1)"):
        resp = client.get("/lang/en", query_string={"next": target})
        assert resp.status_code == 302 and resp.headers["Location"] == "/"


def test_unknown_page_is_a_translated_html_404_not_a_traceback(client):
    resp = client.get("/towns/nowhere", headers={"Accept": "text/html"})
    assert resp.status_code == 404
    html = resp.get_data(as_text=True)
    assert "ページが見つかりません" in html and "Traceback" not in html


def test_api_errors_use_one_json_shape(client):
    resp = client.get("/api/does-not-exist")
    assert resp.status_code == 404
    body = resp.get_json()
    assert body["error"]["code"] == "not_found"
    assert set(body["error"]) == {"code", "message", "details"}


def test_unexpected_error_is_a_plain_500_page(app):
    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internal detail")

    resp = app.test_client().get("/boom", headers={"Accept": "text/html"})
    assert resp.status_code == 500
    html = resp.get_data(as_text=True)
    assert "secret internal detail" not in html and "システムで問題が発生しました" in html
