"""Card payment providers behind one Protocol: a built-in test provider and Stripe.

`create_checkout(order)` returns the URL the buyer is sent to; `parse_webhook(payload, headers)`
verifies the provider's signature and returns a `PaymentEvent` (raises `BadSignature`);
`refund(payment_id)` gives the money back and returns the provider's refund reference.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any, Protocol

import requests

from backend.core.errors import N_, AppError, ServiceUnavailable

PAID = "paid"
DECLINED = "declined"
OTHER = "other"
# How long a Stripe checkout can be paid: less than the hour after which an unpaid one gives
# its reservation back (shop card_payments.CHECKOUT_TTL, premium purchases.CHECKOUT_TTL).
STRIPE_CHECKOUT_LIFETIME = dt.timedelta(minutes=35)


class BadSignature(AppError):
    status = 400
    code = "bad_signature"


@dataclass(frozen=True)
class CheckoutOrder:
    """What a provider needs to know about an order (no ORM objects cross this line)."""

    public_id: str
    payment_ref: str
    amount_yen: int
    quantity: int
    description: str
    success_url: str
    cancel_url: str
    # Where the built-in test provider sends the buyer (a purchase that is not a shop order
    # has its own test checkout page); "" for the shop's.
    test_checkout_url: str = ""


@dataclass(frozen=True)
class PaymentEvent:
    event_id: str  # the provider's event id: a webhook delivered twice has the same one
    kind: str  # PAID | DECLINED | OTHER
    order_public_id: str | None
    payment_id: str | None = None  # what a refund needs (Stripe: the payment intent)
    amount_yen: int | None = None


class PaymentProvider(Protocol):
    name: str
    test_mode: bool

    def create_checkout(self, order: CheckoutOrder) -> str: ...

    def parse_webhook(self, payload: bytes, headers: Any) -> PaymentEvent: ...

    def refund(self, payment_id: str) -> str: ...


def _hmac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _same(expected: str, given: str) -> bool:
    """Constant-time comparison of a signature with what a request sent, whatever its
    characters (compare_digest raises TypeError for non-ASCII str: a forger's 500)."""
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


class TestCardProvider:
    """A card checkout simulated by this app (TEST MODE): the checkout page posts "pay" or
    "decline", which is turned into a webhook signed with the app's secret."""

    name = "test"
    test_mode = True
    HEADER = "X-Test-Signature"

    def __init__(self, secret: str, checkout_url: str) -> None:
        self.secret = secret  # derived for this purpose only (backend/core/purpose_keys.py)
        self.checkout_url = checkout_url  # with "{order}" for the order's public id
        self.refunds: list[str] = []

    def create_checkout(self, order: CheckoutOrder) -> str:
        return order.test_checkout_url or self.checkout_url.format(order=order.public_id)

    def signed_event(self, order_public_id: str, kind: str, amount_yen: int) -> tuple[bytes, dict]:
        """The webhook the test checkout page sends for the buyer's choice."""
        payload = json.dumps(
            {
                "id": f"evt_test_{order_public_id}_{kind}",
                "type": kind,
                "order": order_public_id,
                "payment_id": f"pay_test_{order_public_id}",
                "amount": amount_yen,
            }
        ).encode()
        return payload, {self.HEADER: _hmac(self.secret, payload)}

    def parse_webhook(self, payload: bytes, headers: Any) -> PaymentEvent:
        sig = headers.get(self.HEADER) or ""
        if not _same(_hmac(self.secret, payload), sig):
            raise BadSignature(N_("The payment notification's signature is not valid."))
        data = json.loads(payload)
        kind = data.get("type")
        return PaymentEvent(
            event_id=str(data["id"]),
            kind=kind if kind in (PAID, DECLINED) else OTHER,
            order_public_id=data.get("order"),
            payment_id=data.get("payment_id"),
            amount_yen=data.get("amount"),
        )

    def refund(self, payment_id: str) -> str:
        self.refunds.append(payment_id)
        return f"re_test_{payment_id}"


class StripeProvider:
    """Stripe Checkout over its HTTPS API; webhooks verified as Stripe documents it: the
    Stripe-Signature header holds t=<unix time> and v1=<HMAC-SHA256 of "t.payload"> entries."""

    name = "stripe"
    API = "https://api.stripe.com/v1"

    def __init__(self, secret_key: str, webhook_secret: str, tolerance: int = 300) -> None:
        self.secret_key = secret_key
        self.webhook_secret = webhook_secret
        self.tolerance = tolerance
        self.test_mode = secret_key.startswith("sk_test_")

    def _post(self, path: str, data: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        try:
            resp = requests.post(
                f"{self.API}{path}",
                data=data,
                auth=(self.secret_key, ""),
                headers={"Idempotency-Key": idempotency_key},
                timeout=15,
            )
        except requests.RequestException:
            raise ServiceUnavailable(N_("The card payment service is not answering.")) from None
        if resp.status_code >= 400:
            raise ServiceUnavailable(N_("The card payment service refused the request."))
        return dict(resp.json())

    def create_checkout(self, order: CheckoutOrder) -> str:
        session = self._post(
            "/checkout/sessions",
            {
                "mode": "payment",
                "success_url": order.success_url,
                "cancel_url": order.cancel_url,
                "client_reference_id": order.public_id,
                "metadata[order]": order.public_id,
                "line_items[0][quantity]": order.quantity,
                "line_items[0][price_data][currency]": "jpy",
                "line_items[0][price_data][unit_amount]": order.amount_yen // order.quantity,
                "line_items[0][price_data][product_data][name]": order.description,
                # Sooner than card_payments.CHECKOUT_TTL gives the units back (Stripe takes
                # 30 minutes to 24 hours): nobody pays a checkout whose units went back.
                "expires_at": int(time.time() + STRIPE_CHECKOUT_LIFETIME.total_seconds()),
            },
            idempotency_key=f"checkout-{order.public_id}",
        )
        return str(session["url"])

    def verify(self, payload: bytes, header: str, now: float | None = None) -> None:
        """Raise BadSignature unless `header` signs `payload` within the tolerance."""
        if not self.webhook_secret:
            # An empty secret would make anyone's HMAC valid: accept nothing instead.
            raise BadSignature(N_("The payment notification's signature is not valid."))
        parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
        stamps = [v for k, v in parts if k.strip() == "t"]
        sigs = [v for k, v in parts if k.strip() == "v1"]
        if not stamps or not sigs or not (stamps[0].isascii() and stamps[0].isdigit()):
            raise BadSignature(N_("The payment notification's signature is not valid."))
        t = int(stamps[0])
        expected = _hmac(self.webhook_secret, f"{t}.".encode() + payload)
        if not any(_same(expected, s) for s in sigs):
            raise BadSignature(N_("The payment notification's signature is not valid."))
        if abs((now if now is not None else time.time()) - t) > self.tolerance:
            raise BadSignature(N_("The payment notification is too old."))

    def parse_webhook(self, payload: bytes, headers: Any) -> PaymentEvent:
        self.verify(payload, headers.get("Stripe-Signature") or "")
        event = json.loads(payload)
        obj = event.get("data", {}).get("object", {})
        kind = OTHER
        # A card is paid when the checkout completes; a delayed method (konbini, bank
        # transfer) completes unpaid and is paid with async_payment_succeeded.
        if (
            event.get("type")
            in ("checkout.session.completed", "checkout.session.async_payment_succeeded")
            and obj.get("payment_status") == "paid"
        ):
            kind = PAID
        elif event.get("type") in (
            "checkout.session.expired",
            "checkout.session.async_payment_failed",
        ):
            kind = DECLINED
        return PaymentEvent(
            event_id=str(event["id"]),
            kind=kind,
            order_public_id=obj.get("client_reference_id"),
            payment_id=obj.get("payment_intent"),
            # Only an amount in yen is compared with the price (5000 US cents is not 5000 yen).
            amount_yen=obj.get("amount_total")
            if str(obj.get("currency") or "jpy").lower() == "jpy"
            else None,
        )

    def refund(self, payment_id: str) -> str:
        refund = self._post(
            "/refunds", {"payment_intent": payment_id}, idempotency_key=f"refund-{payment_id}"
        )
        return str(refund["id"])
