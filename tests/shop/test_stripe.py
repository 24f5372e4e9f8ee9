"""Stripe webhooks verified offline with signed payloads (no call to Stripe), and what a
checkout asks of Stripe (sent to a local HTTP server standing in for its API)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from backend.premium.purchases import CHECKOUT_TTL as PREMIUM_CHECKOUT_TTL
from backend.shop.card_payments import CHECKOUT_TTL as SHOP_CHECKOUT_TTL
from backend.shop.providers import (
    DECLINED,
    OTHER,
    PAID,
    BadSignature,
    CheckoutOrder,
    StripeProvider,
)

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


def test_a_checkout_expires_at_stripe_before_its_units_go_back():
    """Stripe takes a checkout's expiry 30 minutes to 24 hours ahead; ours is sooner than the
    hour after which an unpaid order or premium purchase gives its units back, so nobody can
    pay a checkout whose units went back."""
    sent: list[dict[str, list[str]]] = []

    class FakeStripe(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            sent.append(parse_qs(body.decode()))
            answer = json.dumps({"url": "https://checkout.stripe.test/c/1"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeStripe)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    provider = StripeProvider("sk_test_x", SECRET)
    provider.API = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        before = time.time()
        url = provider.create_checkout(
            CheckoutOrder("ord_1", "ref", 5000, 1, "Card", "https://a/ok", "https://a/no")
        )
    finally:
        server.shutdown()
    assert url == "https://checkout.stripe.test/c/1"
    (form,) = sent
    ahead = int(form["expires_at"][0]) - before
    assert 30 * 60 < ahead < min(SHOP_CHECKOUT_TTL, PREMIUM_CHECKOUT_TTL).total_seconds()
    assert form["client_reference_id"] == ["ord_1"]
    assert form["line_items[0][price_data][currency]"] == ["jpy"]
