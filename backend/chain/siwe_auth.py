"""Sign-In with Ethereum (EIP-4361) for externally owned accounts, fully offline.

Flow: the server issues :func:`new_nonce` and stores it (DB, with an expiry), builds the text
with :func:`build_message`, the browser wallet signs it with ``personal_sign``, and the server
calls :func:`verify` with the nonce it issued.

**The message's URI must be a resource of this site.** EIP-4361 names the ``uri`` as the
resource the signature is for, and the siwe library checks domain, nonce and time but not the
URI. :func:`verify` accepts a URI with the same origin as ``expected_uri`` (the app's
PUBLIC_URL: scheme, host and port, default ports filled in) whose path is PUBLIC_URL's path or
below it, so a third-party client that signs ``window.location.href`` (``.../login?next=/me``)
is accepted as well as the bare origin our own pages put there; user info (``user@host``) and
dot segments (``/app/../other``) are refused, so the text a wallet shows cannot name one
resource while meaning another.

**Single use of a nonce is the caller's job.** :func:`verify` only checks that the message
carries ``expected_nonce``; the caller must look the nonce up, and atomically mark it used
(or delete it) before -- or in the same transaction as -- creating the session, so a
captured message+signature cannot be replayed.

Contract wallets (EIP-1271) are not supported: :func:`verify` never passes a provider to the
siwe library, so signature checking is pure ECDSA recovery and opens no network connection.

Statements outside ASCII (e.g. Japanese) are accepted although EIP-4361's grammar asks for
ASCII: such messages are parsed with siwe's regex parser instead of its ABNF one, and every
field except the statement must still be ASCII. Some wallets only show their SIWE
domain-check UI for messages that satisfy the strict grammar, so an ASCII statement is the
safer choice where it matters.
"""

from __future__ import annotations

import functools
import re
import secrets
import string
import warnings
from datetime import UTC, datetime
from types import ModuleType
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, unquote, urlsplit

from eth_keys.exceptions import BadSignature
from eth_utils.address import is_checksum_address, to_checksum_address
from eth_utils.exceptions import ValidationError as EthUtilsValidationError
from pydantic import ValidationError

if TYPE_CHECKING:
    import siwe  # type: ignore[import-untyped]  # siwe ships no type hints

__all__ = ["REASON_CODES", "SiweRejected", "build_message", "new_nonce", "verify"]


@functools.cache
def _siwe() -> ModuleType:
    """The siwe library, imported on first use: building its EIP-4361 grammar at import costs
    about 0.3 s of CPU, which every process paid at start (web and Celery workers, each CLI)
    although only a wallet sign-in needs it."""
    with warnings.catch_warnings():
        # abnf 2.8 warns that siwe's grammar redefines core rules; harmless, noise in the log.
        warnings.filterwarnings("ignore", message="rule '.*' redefines")
        import siwe

    return siwe


_ALPHANUMERIC = string.ascii_letters + string.digits
_NONCE_LENGTH = 22  # ~131 bits; EIP-4361 only demands >= 8 alphanumerics
_NONCE_RE = re.compile(r"[A-Za-z0-9]{8,}")
_SIGNATURE_RE = re.compile(r"0x[0-9a-fA-F]{130}")  # r || s || v: 65 bytes, EOA only

REASON_CODES = frozenset(
    {
        "domain_mismatch",
        "uri_mismatch",
        "chain_mismatch",
        "nonce_mismatch",
        "expired",
        "not_yet_valid",
        "bad_signature",
        "malformed",
    }
)


class SiweRejected(Exception):
    """A sign-in message was refused; ``reason`` is a short machine code.

    Codes: ``domain_mismatch``, ``uri_mismatch``, ``chain_mismatch``, ``nonce_mismatch``,
    ``expired``, ``not_yet_valid``, ``bad_signature``, ``malformed``. Safe to log and to
    return to the client; it never contains the message or signature.
    """

    def __init__(self, reason: str) -> None:
        """Create a rejection with one of the documented reason codes."""
        if reason not in REASON_CODES:
            raise ValueError(f"unknown SIWE rejection reason {reason!r}")
        super().__init__(reason)
        self.reason = reason


def new_nonce() -> str:
    """Return a fresh random nonce of 22 alphanumeric characters (``secrets`` based).

    Store it server-side with an expiry; it must be consumed at most once.
    """
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(_NONCE_LENGTH))


def _require_aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return value


def build_message(
    address: str,
    domain: str,
    uri: str,
    chain_id: int,
    nonce: str,
    statement: str | None,
    issued_at: datetime,
    expiration_time: datetime,
    *,
    not_before: datetime | None = None,
) -> str:
    """Return the EIP-4361 text for the wallet to sign with ``personal_sign``.

    ``address`` may be in any case; it is checksummed. ``domain`` is the RFC 3986 authority
    (host[:port]) the browser is on, ``uri`` the sign-in resource. Datetimes must be
    timezone-aware; they are written in UTC with millisecond precision.

    Raises ``ValueError`` for a bad address, a nonce that is not >= 8 alphanumerics, a
    statement containing a newline, naive datetimes, ``expiration_time <= issued_at``,
    a non-positive chain id, or any field siwe rejects.
    """
    if not _NONCE_RE.fullmatch(nonce):
        raise ValueError("nonce must be at least 8 alphanumeric characters")
    if isinstance(chain_id, bool) or not isinstance(chain_id, int) or chain_id < 1:
        # siwe renders chain id 0 as 1, so refuse it rather than sign for the wrong chain.
        raise ValueError("chain_id must be a positive integer")
    if statement is not None and ("\n" in statement or "\r" in statement or not statement):
        raise ValueError("statement must be one non-empty line")
    _require_aware("issued_at", issued_at)
    _require_aware("expiration_time", expiration_time)
    if expiration_time <= issued_at:
        raise ValueError("expiration_time must be after issued_at")
    if not_before is not None:
        _require_aware("not_before", not_before)
    try:
        checksummed = to_checksum_address(address)
    except (ValueError, TypeError):
        raise ValueError("address is not a valid Ethereum address") from None
    lib = _siwe()
    try:
        message = lib.SiweMessage(
            domain=domain,
            address=checksummed,
            uri=uri,
            version="1",
            chain_id=chain_id,
            nonce=nonce,
            statement=statement,
            issued_at=lib.ISO8601Datetime.from_datetime(issued_at),
            expiration_time=lib.ISO8601Datetime.from_datetime(expiration_time),
            not_before=(
                lib.ISO8601Datetime.from_datetime(not_before) if not_before is not None else None
            ),
        )
    except ValidationError as exc:
        raise ValueError(f"invalid SIWE field(s): {exc.error_count()} error(s)") from exc
    text: str = message.prepare_message()
    return text


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(parts: SplitResult) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in; ValueError for a port
    that is not a number."""
    scheme = parts.scheme.lower()
    return scheme, parts.hostname or "", parts.port or _DEFAULT_PORTS.get(scheme)


def _is_under(uri: str, base: str) -> bool:
    """Whether ``uri`` is ``base`` or a resource below it: same origin, a path equal to or
    under ``base``'s path (any query or fragment), no user info, no dot segments."""
    try:
        got, want = urlsplit(uri), urlsplit(base)
        if "@" in got.netloc or not got.hostname or _origin(got) != _origin(want):
            return False
    except ValueError:  # a port that is not a number
        return False
    segments = unquote(got.path).split("/")
    if "." in segments or ".." in segments:
        return False
    prefix = want.path.rstrip("/")
    return not prefix or got.path == prefix or got.path.startswith(prefix + "/")


def _parse(message_text: str) -> siwe.SiweMessage:
    """Parse strictly, and insist the text is exactly the canonical serialisation.

    The canonical check matters because siwe verifies the signature over its own
    re-serialisation: requiring equality means the fields we check are exactly the ones the
    user saw and signed, whichever parser was used.
    """
    if not isinstance(message_text, str):
        raise SiweRejected("malformed")
    lib = _siwe()
    try:
        if message_text.isascii():
            parsed = lib.SiweMessage.from_message(message_text, abnf=True)
        else:
            parsed = lib.SiweMessage.from_message(message_text, abnf=False)
            # Only the statement may leave ASCII (see the module docstring).
            if (
                parsed.statement is None
                or not message_text.replace(parsed.statement, "", 1).isascii()
            ):
                raise SiweRejected("malformed")
        canonical = parsed.prepare_message()
    except SiweRejected:
        raise
    except (ValueError, TypeError, ValidationError):
        raise SiweRejected("malformed") from None
    if canonical != message_text:
        raise SiweRejected("malformed")
    return parsed


def verify(
    message_text: str,
    signature: str,
    *,
    expected_domain: str,
    expected_uri: str,
    expected_chain_id: int,
    expected_nonce: str,
    now: datetime | None = None,
) -> str:
    """Check a signed SIWE message and return the checksummed address that signed it.

    Promises: the text is a canonical EIP-4361 message for ``expected_domain``, a ``uri``
    under ``expected_uri`` (see the module docstring) and ``expected_chain_id``, carrying
    ``expected_nonce``, valid at ``now`` (default: current UTC time; must be
    timezone-aware), and ``signature`` (``0x`` + 65-byte hex) is an EOA
    signature of that exact text by the address in it. No network access.

    Does NOT mark the nonce used: the caller must consume it atomically (see module doc).

    Raises :class:`SiweRejected` with ``malformed``, ``domain_mismatch``, ``uri_mismatch``,
    ``chain_mismatch``, ``nonce_mismatch``, ``expired``, ``not_yet_valid`` or
    ``bad_signature``; ``ValueError`` if ``now`` is naive (a programming error).
    """
    if now is None:
        now = datetime.now(tz=UTC)
    _require_aware("now", now)

    parsed = _parse(message_text)
    if parsed.domain != expected_domain:
        raise SiweRejected("domain_mismatch")
    # siwe itself never looks at the URI (see the module docstring).
    if not _is_under(str(parsed.uri), expected_uri):
        raise SiweRejected("uri_mismatch")
    if parsed.chain_id != expected_chain_id:
        raise SiweRejected("chain_mismatch")
    # Constant-time, although a nonce's secrecy is not what protects it; cheap anyway.
    if not secrets.compare_digest(parsed.nonce.encode(), expected_nonce.encode()):
        raise SiweRejected("nonce_mismatch")
    if not isinstance(signature, str) or not _SIGNATURE_RE.fullmatch(signature):
        raise SiweRejected("bad_signature")

    # siwe repeats the domain/nonce/time checks and recovers the signer. provider=None is
    # deliberate: with a provider siwe would call out for EIP-1271 contract wallets.
    lib = _siwe()
    try:
        parsed.verify(
            signature,
            domain=expected_domain,
            nonce=expected_nonce,
            timestamp=now,
            provider=None,
        )
    except lib.ExpiredMessage:
        raise SiweRejected("expired") from None
    except lib.NotYetValidMessage:
        raise SiweRejected("not_yet_valid") from None
    except lib.DomainMismatch:
        raise SiweRejected("domain_mismatch") from None
    except lib.NonceMismatch:
        raise SiweRejected("nonce_mismatch") from None
    except lib.VerificationError:
        raise SiweRejected("bad_signature") from None
    except (ValueError, TypeError, BadSignature, EthUtilsValidationError):
        # siwe only maps some recovery failures; r/s out of range or an unrecoverable point
        # escape from eth_keys/eth_utils/coincurve as these.
        raise SiweRejected("bad_signature") from None

    address = str(parsed.address)
    if not is_checksum_address(address):  # siwe's model already enforces EIP-55
        raise SiweRejected("malformed")
    return to_checksum_address(address)
