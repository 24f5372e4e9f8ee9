"""One key per purpose, derived from SECRET_KEY with HKDF-SHA256 (RFC 5869).

SECRET_KEY itself signs Flask sessions and CSRF tokens only. Every other HMAC in the app (the
customers' rotating codes, ticket QR codes, the test card provider's webhooks) and the cipher
that keeps outgoing webhooks' secrets at rest are keyed with their own derived key, so a key
that leaks or is misused for one purpose says nothing about another, and a signature made for
one purpose never verifies for another.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# The purposes; a new HMAC gets a new name here (never reuse one for two jobs).
CUSTOMER_CODE = "customer-code"
TICKET = "ticket"
TEST_CARD_WEBHOOK = "test-card-webhook"
WEBHOOK_SECRET_SEAL = "webhook-secret-seal"  # noqa: S105 - a purpose name (webhooks/signing.py)
# The hash of a resident's identity (backend/residency/identity.py): the pass's personId.
RESIDENT_IDENTITY = "resident-identity"
EVENT_CHECK_IN = "event-check-in"  # the token in an event's check-in QR (backend/events)
# The pseudonymous person id of the anonymised KPI export (backend/insights/export.py): an HMAC
# of (town, user), stable within a town, unlinkable across towns without this key.
KPI_PSEUDONYM = "kpi-pseudonym"
PURPOSES = frozenset(
    {
        CUSTOMER_CODE,
        TICKET,
        TEST_CARD_WEBHOOK,
        WEBHOOK_SECRET_SEAL,
        RESIDENT_IDENTITY,
        EVENT_CHECK_IN,
        KPI_PSEUDONYM,
    }
)
_SALT = b"furusato purpose keys v1"


@lru_cache(maxsize=64)
def purpose_key(secret_key: str, purpose: str) -> bytes:
    """32 bytes for `purpose`, derived from `secret_key`. Unknown purposes are a bug."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown key purpose {purpose!r}")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=purpose.encode())
    return hkdf.derive(secret_key.encode())


def purpose_key_hex(secret_key: str, purpose: str) -> str:
    return purpose_key(secret_key, purpose).hex()
