"""Stripe webhooks verified offline with signed payloads (no call to Stripe)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from backend.shop.providers import DECLINED, OTHER, PAID, BadSignature, StripeProvider

SECRET = "whsec_test_secret"


def _signed(payload: bytes, t: int, secret: str = SECRET) -> str:
    sig = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={sig}"


def _event() -> bytes:
    return json.dumps(
        {
            "id": "evt_1",
            "type": "checkout.session.completed",
            "data": {
                "object": {
                    "client_reference_id": "abc",
                    "payment_status": "paid",
                    "payment_intent": "pi_1",
                    "amount_total": 5000,
                }
            },
        }
    ).encode()


def test_a_signed_checkout_completed_event_is_a_paid_event():
    provider = StripeProvider("sk_test_x", SECRET)
    payload = _event()
    ev = provider.parse_webhook(payload, {"Stripe-Signature": _signed(payload, int(time.time()))})
    assert (ev.kind, ev.order_public_id, ev.payment_id, ev.amount_yen) == (
        PAID,
        "abc",
        "pi_1",
        5000,
    )
    assert provider.test_mode


@pytest.mark.parametrize(
    "header",
    [
        "",
        "t=abc,v1=00",
        _signed(b"other payload", int(time.time())),
        _signed(_event(), int(time.time()), secret="whsec_wrong"),
        _signed(_event(), int(time.time()) - 3600),  # outside the 300 s tolerance
        # Headers arrive as Latin-1: "²" passes str.isdigit() but not int(), and a non-ASCII
        # signature made hmac.compare_digest raise TypeError (a 500 for anyone's forgery).
        "t=\u00b2,v1=00",
        f"t={int(time.time())},v1=\u00e9",
    ],
    # Fixed ids: pytest-xdist workers collect at different seconds and must agree on names.
    ids=["empty", "garbled", "other_payload", "wrong_secret", "stale", "odd_digit", "non_ascii"],
)
def test_a_bad_or_stale_signature_is_refused(header):
    with pytest.raises(BadSignature):
        StripeProvider("sk_test_x", SECRET).parse_webhook(_event(), {"Stripe-Signature": header})


def test_an_empty_webhook_secret_accepts_no_event():
    """Issue 11 §5: with STRIPE_WEBHOOK_SECRET empty, an event "signed" with the empty key was
    accepted, so anyone could forge a paid checkout."""
    forged = _signed(_event(), int(time.time()), secret="")
    with pytest.raises(BadSignature):
        StripeProvider("sk_test_x", "").parse_webhook(_event(), {"Stripe-Signature": forged})


def _session_event(event_type: str, **session: object) -> bytes:
    obj = {
        "client_reference_id": "abc",
        "payment_status": "paid",
        "payment_intent": "pi_1",
        "amount_total": 5000,
        "currency": "jpy",
        **session,
    }
    return json.dumps({"id": "evt_2", "type": event_type, "data": {"object": obj}}).encode()


def _parse(payload: bytes):
    provider = StripeProvider("sk_test_x", SECRET)
    return provider.parse_webhook(payload, {"Stripe-Signature": _signed(payload, int(time.time()))})


def test_a_delayed_payment_is_paid_when_it_succeeds_not_when_the_checkout_completes():
    """Konbini and bank transfers (Stripe's delayed methods): the checkout completes unpaid and
    the money arrives later with checkout.session.async_payment_succeeded. That event was
    ignored, so a buyer who paid at the konbini never got the card or the points."""
    unpaid = _parse(_session_event("checkout.session.completed", payment_status="unpaid"))
    assert unpaid.kind == OTHER
    paid = _parse(_session_event("checkout.session.async_payment_succeeded"))
    assert (paid.kind, paid.order_public_id, paid.payment_id, paid.amount_yen) == (
        PAID,
        "abc",
        "pi_1",
        5000,
    )
    failed = _parse(
        _session_event("checkout.session.async_payment_failed", payment_status="unpaid")
    )
    assert failed.kind == DECLINED


def test_a_payment_in_another_currency_has_no_yen_amount():
    """5000 in another currency (a payment link in KRW or USD paid with an order's id) is not
    5000 yen: the event carries no yen amount, which the shop and the premium sale refund."""
    ev = _parse(_session_event("checkout.session.completed", currency="usd"))
    assert ev.kind == PAID and ev.amount_yen is None
    assert _parse(_session_event("checkout.session.completed", currency="JPY")).amount_yen == 5000
