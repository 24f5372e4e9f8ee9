"""Card purchases of other domains that share the provider's one webhook URL.

A payment provider sends every event of the platform's account to one webhook
(/api/payments/webhooks/<provider>). Shop orders are handled by CardPaymentService; another
domain's purchase (points bought with a premium, backend/premium) carries a public id with its
own prefix, and the composition root (backend/composition.py) registers a factory of its
handler for that prefix here. The shop thus knows no other domain (dependency inversion, as
the indexer's handlers do): a signature-checked event whose id has a registered prefix goes to
that handler, which applies it once (it dedupes by its purchase's state under a row lock).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from backend.shop.providers import PaymentEvent, PaymentProvider


class PaymentTarget(Protocol):
    def apply_payment_event(self, provider: PaymentProvider, event: PaymentEvent) -> str:
        """Apply a verified provider event once: "processed", "duplicate" or "ignored"."""
        ...


_TARGETS: dict[str, Callable[[], Any]] = {}


def register_payment_target(prefix: str, factory: Callable[[], PaymentTarget]) -> None:
    """Send events whose public id starts with `prefix` to `factory()` (idempotent)."""
    if not prefix or any(
        prefix.startswith(p) or p.startswith(prefix) for p in _TARGETS if p != prefix
    ):
        raise ValueError(f"payment target prefix {prefix!r} overlaps another one")
    _TARGETS[prefix] = factory


def payment_target(public_id: str | None) -> Callable[[], PaymentTarget] | None:
    """The handler factory for an event's public id (None: a shop order or unknown)."""
    if not public_id:
        return None
    for prefix, factory in _TARGETS.items():
        if public_id.startswith(prefix):
            return factory
    return None
