"""Issue 11 §6: security headers on pages and the API, HSTS behind https only, the nonce in the
page matches the policy's, and request bodies over 1 MiB are refused with 413 before parsing."""

from __future__ import annotations

import re

from backend.core.web_security import MAX_CONTENT_LENGTH


def _csp(resp) -> dict[str, str]:
    policy = resp.headers["Content-Security-Policy"]
    return {
        part.split()[0]: " ".join(part.split()[1:])
        for part in (p.strip() for p in policy.split(";"))
        if part
    }


def test_pages_and_api_carry_the_security_headers(client):
    for path in ("/", "/login", "/api/csrf", "/healthz", "/no-such-page"):
        resp = client.get(path)
        csp = _csp(resp)
        assert csp["frame-ancestors"] == "'none'", path
        assert csp["object-src"] == "'none'"
        assert "'unsafe-inline'" not in resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert "Strict-Transport-Security" not in resp.headers  # plain http: no HSTS


def test_scripts_run_only_with_the_requests_nonce(client):
    resp = client.get("/login")
    nonce = re.search(r"'nonce-([^']+)'", _csp(resp)["script-src"]).group(1)
    tags = re.findall(r"<script\b[^>]*>", resp.get_data(as_text=True))
    assert tags and all(f'nonce="{nonce}"' in t for t in tags)
    again = client.get("/login")
    assert re.search(r"'nonce-([^']+)'", _csp(again)["script-src"]).group(1) != nonce


def test_hsts_behind_an_https_proxy(client):
    resp = client.get("/", headers={"X-Forwarded-Proto": "https"})
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert client.get("/", base_url="https://localhost").headers["Strict-Transport-Security"]


def test_a_body_over_one_mib_is_refused_before_it_is_parsed(client):
    token = client.get("/api/csrf").get_json()["csrf_token"]
    big = b'{"email": "' + b"a" * (20 * 1024 * 1024) + b'"}'
    resp = client.post(
        "/api/auth/login",
        data=big,
        headers={"X-CSRFToken": token, "Content-Type": "application/json"},
    )
    assert resp.status_code == 413
    assert resp.get_json()["error"]["code"] == "request_entity_too_large"
    small = client.post(
        "/api/auth/login",
        data=b'{"email": "' + b"a" * (MAX_CONTENT_LENGTH // 2) + b'"}',
        headers={"X-CSRFToken": token, "Content-Type": "application/json"},
    )
    assert small.status_code in (400, 401)  # read, and refused for what it says


def test_nul_characters_are_refused_not_a_server_error(client):
    """PostgreSQL cannot store NUL in text; found by the API fuzz test as a 500."""
    token = client.get("/api/csrf").get_json()["csrf_token"]
    body = client.post(
        "/api/auth/login",
        json={"email": "a\x00@example.com", "password": "x"},
        headers={"X-CSRFToken": token},
    )
    assert body.status_code == 400
    assert client.get("/api/shop/orders/abc%00def").status_code == 400
    assert client.get("/towns/sarabetsu?notice=a%00b").status_code == 400
