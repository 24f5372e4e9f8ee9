"""Accounts fixtures: an app with a known master key, a CSRF-aware JSON client, row counts."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from backend.accounts.models import Address, SiweNonce, User
from backend.chain.registry import Deployments
from backend.core.db import get_db
from backend.core.models import AuditLog

MASTER_KEY_HEX = os.urandom(32).hex()
MASTER_KEY = f"mk-test-1:{MASTER_KEY_HEX}"
PASSWORD = "correct horse battery"


@pytest.fixture
def app(make_app: Callable[..., Flask], deployed: Deployments) -> Flask:
    return make_app(master_key=MASTER_KEY)


class Api:
    """A test client that fetches the CSRF token and sends it with every POST."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.token: str | None = None

    def refresh_token(self) -> str:
        self.token = self.client.get("/api/csrf").get_json()["csrf_token"]
        return self.token

    def get(self, url: str) -> Any:
        return self.client.get(url)

    def post(self, url: str, json: Any = None, **kwargs: Any) -> Any:
        if self.token is None:
            self.refresh_token()
        resp = self.client.post(url, json=json, headers={"X-CSRFToken": self.token}, **kwargs)
        body = resp.get_json(silent=True)
        if isinstance(body, dict) and "csrf_token" in body:  # sign-in rotates the session
            self.token = body["csrf_token"]
        return resp

    def signup(self, email: str = "fan@example.com", password: str = PASSWORD, **extra: Any):
        return self.post("/api/accounts/signup", {"email": email, "password": password, **extra})


@pytest.fixture
def api(client: FlaskClient) -> Api:
    return Api(client)


def counts(app: Flask) -> dict[str, int]:
    with app.app_context():
        s = get_db().session
        return {
            m.__tablename__: s.scalar(sa.select(sa.func.count()).select_from(m))
            for m in (User, Address, SiweNonce, AuditLog)
        }


def assert_error(resp: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code
    return body["error"]
