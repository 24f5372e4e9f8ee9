"""The JSON API is documented: every /api/ route appears in the OpenAPI spec at /api/docs."""

from __future__ import annotations

import re


def _flask_to_openapi(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def test_every_api_route_is_documented(app, client):
    spec = client.get("/api/openapi.json").get_json()
    assert spec["openapi"].startswith("3.1")
    documented = {(path, method) for path, item in spec["paths"].items() for method in item}
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/") or rule.rule in ("/api/openapi.json", "/api/docs"):
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if (_flask_to_openapi(rule.rule), method.lower()) not in documented:
                missing.append(f"{method} {rule.rule}")
    assert missing == []


def test_documented_paths_exist(app, client):
    spec = client.get("/api/openapi.json").get_json()
    rules = {_flask_to_openapi(r.rule) for r in app.url_map.iter_rules()}
    assert sorted(set(spec["paths"]) - rules) == []


def test_api_docs_page_renders(client):
    html = client.get("/api/docs").get_data(as_text=True)
    assert "POST /api/accounts/signup" in html and "X-CSRFToken" in html


def test_the_session_cookie_and_the_csrf_header_are_declared(client):
    """Issue 11 §6: a client generated from the spec sends the cookie and X-CSRFToken."""
    spec = client.get("/api/openapi.json").get_json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["session"] == {**schemes["session"], "in": "cookie", "name": "session"}
    assert schemes["csrf"] == {**schemes["csrf"], "in": "header", "name": "X-CSRFToken"}
    assert schemes["apiKey"] == {**schemes["apiKey"], "type": "http", "scheme": "bearer"}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if path.startswith("/api/v1/"):
                # The services' API: the API key only (no session, no CSRF token).
                assert op["security"] == [{"apiKey": []}], (method, path)
                assert "401" in op["responses"], (method, path)
            elif method == "post" and "webhooks" not in path:
                assert op["security"] == [{"session": [], "csrf": []}], (method, path)
                assert {"400", "413"} <= set(op["responses"]), (method, path)
            if "{" in path:
                assert "404" in op["responses"], (method, path)
