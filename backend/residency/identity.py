"""The hash that names a person without keeping who they are (the pass's `personId`).

In person, staff type the name, birth date and address from the ID they saw; a digital-ID
provider sends the same three as claims (the My Number card's 基本4情報 carry them). Both
routes normalise them the same way and take HMAC-SHA256 under the server's RESIDENT_IDENTITY
key (backend/core/purpose_keys.py, derived from SECRET_KEY), so a person who comes to the town
hall and later signs in with their card gets the same hash, and so no second pass. Only the
hash is stored; the inputs are dropped after the request. When a provider sends no such
claims, its `sub` is hashed instead (with the issuer), which keeps that provider's person to
one pass. A leak of the table says nothing without the key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import unicodedata

from backend.core.errors import N_, InvalidInput

MAX_FIELD = 300
_SPACES = re.compile(r"[\s\u3000・,、，.．\-‐－ー―]+")


def normalise(text: str) -> str:
    """NFKC (full-width digits and letters to half-width), lower case, without spaces and the
    separators people type differently (・ 、 - ー): "更別村 字更別１２３" == "更別村字更別123"."""
    return _SPACES.sub("", unicodedata.normalize("NFKC", text)).lower()


def parse_birth_date(value: object) -> dt.date:
    if isinstance(value, dt.date):
        return value
    text = unicodedata.normalize("NFKC", value).strip() if isinstance(value, str) else ""
    try:
        born = dt.date.fromisoformat(text.replace("/", "-"))
    except ValueError:
        raise InvalidInput(N_("Enter the birth date as YYYY-MM-DD."), field="birth_date") from None
    if born.year < 1900 or born > dt.date.today():
        raise InvalidInput(N_("Enter the birth date as YYYY-MM-DD."), field="birth_date")
    return born


def _field(value: object, name: str, message: str) -> str:
    text = normalise(value) if isinstance(value, str) else ""
    if not text or len(text) > MAX_FIELD:
        raise InvalidInput(message, field=name)
    return text


def person_hash(key: bytes, name: object, birth_date: object, address: object) -> str:
    """ "0x" + the HMAC of the normalised name, birth date and address."""
    parts = [
        _field(name, "name", N_("Enter the name as written on the ID.")),
        parse_birth_date(birth_date).isoformat(),
        _field(address, "address", N_("Enter the address as written on the ID.")),
    ]
    msg = "person\x1f" + "\x1f".join(parts)
    return "0x" + hmac.new(key, msg.encode(), hashlib.sha256).hexdigest()


def subject_hash(key: bytes, issuer: str, sub: str) -> str:
    """ "0x" + the HMAC of a provider's subject (when it sends no name, birth date, address)."""
    msg = f"oidc\x1f{issuer}\x1f{sub}"
    return "0x" + hmac.new(key, msg.encode(), hashlib.sha256).hexdigest()
