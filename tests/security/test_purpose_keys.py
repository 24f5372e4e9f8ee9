"""Issue 11 §5: each HMAC purpose has its own key, derived from SECRET_KEY with HKDF; none of
them is keyed with SECRET_KEY itself (which signs sessions and CSRF tokens only)."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from backend.core.purpose_keys import PURPOSES, purpose_key


def _hkdf(secret: str, purpose: str) -> bytes:
    kdf = HKDF(hashes.SHA256(), 32, salt=b"furusato purpose keys v1", info=purpose.encode())
    return kdf.derive(secret.encode())


def test_every_purpose_has_its_own_hkdf_key():
    keys = {p: purpose_key("s3cret", p) for p in PURPOSES}
    assert {"customer-code", "ticket", "test-card-webhook"} <= set(keys)
    assert len(set(keys.values())) == len(keys)
    assert all(k == _hkdf("s3cret", p) for p, k in keys.items())
    assert purpose_key("other", "ticket") != keys["ticket"]
    with pytest.raises(ValueError):
        purpose_key("s3cret", "sessions")


def test_the_apps_hmacs_use_the_derived_keys(app):
    from backend.merchants.services import merchant_service
    from backend.shop.services import payment_provider, shop_service

    secret = app.config["SECRET_KEY"]
    with app.test_request_context():
        provider = payment_provider()
        payload, headers = provider.signed_event("ord", "paid", 100)
        expected = hmac.new(
            _hkdf(secret, "test-card-webhook").hex().encode(), payload, hashlib.sha256
        ).hexdigest()
        assert headers[provider.HEADER] == expected
        shop = shop_service()
        assert (
            shop._sign("body")
            == hmac.new(
                _hkdf(secret, "ticket").hex().encode(), b"body", hashlib.sha256
            ).hexdigest()[:32]
        )
        svc = merchant_service()
        assert svc._secret == _hkdf(secret, "customer-code").hex().encode()
