"""The signing secrets of webhook endpoints and the Standard Webhooks headers they sign.

Signatures follow the Standard Webhooks spec (standardwebhooks.com) through its reference
library `standardwebhooks`: `webhook-id` (our event id, the same on every retry so receivers
drop repeats), `webhook-timestamp` (seconds, this attempt) and `webhook-signature`
(`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`). Receivers verify with the same library in
any language, or with ten lines of HMAC.

A secret is `whsec_` + base64 of 24 random bytes, shown to staff once. At rest it is sealed with
AES-256-GCM (associated data: the endpoint's owner) under a key derived from SECRET_KEY by HKDF
(backend/core/purpose_keys.py, purpose "webhook-secret-seal"). Why not the custodial vault and
MASTER_KEY: the vault (backend/chain/keys.py) seals secp256k1 account keys bound to an address
and sits in the chain package, which domains reach only through `chain.api`; giving it a second,
generic job would widen the one API that can sign on chain. Why encrypt at all, when the worker
must read the secret back (a hash would not do): a database dump alone must not let anyone sign
as us. The cost: a new SECRET_KEY makes every stored secret unreadable; deliveries then fail with
"secret unreadable" until staff rotate each service's secret (docs/operations.md).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from standardwebhooks import Webhook

from backend.core.purpose_keys import WEBHOOK_SECRET_SEAL, purpose_key

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
_SECRET_BYTES = 24  # 192 bits, as the spec suggests (between 24 and 64 bytes)
_NONCE_BYTES = 12
_AAD_PREFIX = b"furusato/webhooks/secret/v1:"


class SecretUnreadable(Exception):
    """A sealed secret does not open: SECRET_KEY changed, or the row was tampered with."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()


@dataclass(frozen=True)
class SealedSecret:
    nonce: bytes
    ciphertext: bytes


def _aes(secret_key: str) -> AESGCM:
    return AESGCM(purpose_key(secret_key, WEBHOOK_SECRET_SEAL))


def seal(secret_key: str, owner: str, secret: str) -> SealedSecret:
    nonce = os.urandom(_NONCE_BYTES)
    ciphertext = _aes(secret_key).encrypt(nonce, secret.encode(), _AAD_PREFIX + owner.encode())
    return SealedSecret(nonce, ciphertext)


def unseal(secret_key: str, owner: str, sealed: SealedSecret) -> str:
    try:
        plain = _aes(secret_key).decrypt(
            bytes(sealed.nonce), bytes(sealed.ciphertext), _AAD_PREFIX + owner.encode()
        )
    except InvalidTag:
        raise SecretUnreadable(f"the webhook secret of {owner} does not open") from None
    return plain.decode()


def body(event_type: str, created_at: dt.datetime, data: dict[str, Any]) -> str:
    """The POST body, the same bytes on every attempt: Standard Webhooks' {type, timestamp,
    data}, with `timestamp` when the event happened (not when this attempt was made)."""
    envelope = {
        "type": event_type,
        "timestamp": created_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "data": data,
    }
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def headers(secret: str, event_id: str, payload: str, now: dt.datetime) -> dict[str, str]:
    """The request headers of one attempt, signed for `now` (receivers reject stale ones)."""
    signature = Webhook(secret).sign(msg_id=event_id, timestamp=now, data=payload)
    return {
        "content-type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "user-agent": "furusato-webhooks/1",
    }
