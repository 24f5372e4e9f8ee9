"""API keys: `fur_<prefix>_<secret>`. The prefix (12 hex characters) is stored as is and finds
the row; the secret (32 random bytes, URL-safe base64) is stored only as its SHA-256 and
compared in constant time. A fast hash is right here: the secret is 256 random bits, not a
password, so nobody can guess it from its hash, and every API request checks it."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX = "fur"
_KEY_RE = re.compile(r"fur_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class KeyParts:
    prefix: str
    secret: str


def new_key() -> tuple[str, KeyParts]:
    """(the whole key, shown once; its parts)."""
    parts = KeyParts(secrets.token_hex(6), secrets.token_urlsafe(32))
    return f"{PREFIX}_{parts.prefix}_{parts.secret}", parts


def parse(text: str) -> KeyParts | None:
    match = _KEY_RE.fullmatch(text.strip())
    return KeyParts(match.group(1), match.group(2)) if match else None


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(secret: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(secret), stored_digest)


def from_authorization(header: str | None) -> KeyParts | None:
    """The key of an `Authorization: Bearer <key>` header, or None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return parse(value)
