"""The token in an event's check-in QR, so that the check-in URL cannot be guessed.

The token is an HMAC of the event's id and its QR generation, keyed with a key of its own
derived from SECRET_KEY (backend/core/purpose_keys.py EVENT_CHECK_IN). Nothing secret is
stored: the console recomputes it to show the QR. Staff renew the QR (generation + 1) when a
photo of it travels beyond the venue; every earlier token then stops working.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

TOKEN_BYTES = 16  # 128 bits: not guessable, and short enough for a small QR


def check_in_token(key: bytes, event_id: int, generation: int) -> str:
    mac = hmac.new(key, f"event-check-in:{event_id}:{generation}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()[:TOKEN_BYTES]).rstrip(b"=").decode()


def token_matches(key: bytes, event_id: int, generation: int, token: object) -> bool:
    if not isinstance(token, str) or len(token) > 64:
        return False
    return hmac.compare_digest(check_in_token(key, event_id, generation), token)
