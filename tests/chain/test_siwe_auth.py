"""Unit tests for Sign-In with Ethereum verification (offline, no chain needed)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from backend.chain.siwe_auth import SiweRejected, build_message, new_nonce, verify

DOMAIN = "furusato.example"
PUBLIC_URL = "https://furusato.example"
URI = "https://furusato.example/login"
CHAIN_ID = 31337
ISSUED = datetime(2025, 4, 1, 9, 0, tzinfo=UTC)
EXPIRES = ISSUED + timedelta(minutes=10)
DURING = ISSUED + timedelta(minutes=1)
STATEMENT = "ふるさとにサインインします / Sign in to Furusato"


@pytest.fixture
def account() -> LocalAccount:
    signer: LocalAccount = Account.from_key(b"\x11" * 32)
    return signer


@pytest.fixture
def nonce() -> str:
    return new_nonce()


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any socket connection during these tests is a failure (EIP-1271 calls, RPC)."""

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield


def _message(account: LocalAccount, nonce_value: str, **overrides: Any) -> str:
    fields: dict[str, Any] = {
        "address": account.address,
        "domain": DOMAIN,
        "uri": URI,
        "chain_id": CHAIN_ID,
        "nonce": nonce_value,
        "statement": STATEMENT,
        "issued_at": ISSUED,
        "expiration_time": EXPIRES,
    }
    fields.update(overrides)
    return build_message(**fields)


def _sign(account: LocalAccount, text: str) -> str:
    return "0x" + account.sign_message(encode_defunct(text=text)).signature.hex().removeprefix("0x")


def _verify(text: str, signature: str, nonce: str, **overrides: Any) -> str:
    kwargs: dict[str, Any] = {
        "expected_domain": DOMAIN,
        "expected_uri": PUBLIC_URL,
        "expected_chain_id": CHAIN_ID,
        "expected_nonce": nonce,
        "now": DURING,
    }
    kwargs.update(overrides)
    return verify(text, signature, **kwargs)


def _reason(exc: pytest.ExceptionInfo[SiweRejected]) -> str:
    return exc.value.reason


# --- nonce and message building ---------------------------------------------------------


def test_new_nonce_is_long_alphanumeric_and_unique() -> None:
    nonces = {new_nonce() for _ in range(200)}
    assert len(nonces) == 200
    assert all(len(n) >= 8 and n.isalnum() and n.isascii() for n in nonces)


def test_build_message_layout(account: LocalAccount, nonce: str) -> None:
    text = _message(account, nonce, address=account.address.lower())
    lines = text.split("\n")
    assert lines[0] == f"{DOMAIN} wants you to sign in with your Ethereum account:"
    assert lines[1] == account.address  # checksummed even when given lower case
    assert STATEMENT in lines
    assert f"Chain ID: {CHAIN_ID}" in lines
    assert f"Nonce: {nonce}" in lines
    assert "Issued At: 2025-04-01T09:00:00.000Z" in lines
    assert "Expiration Time: 2025-04-01T09:10:00.000Z" in lines


@pytest.mark.parametrize(
    "override",
    [
        {"nonce": "short"},
        {"nonce": "has spaces in it"},
        {"statement": "two\nlines"},
        {"chain_id": 0},
        {"address": "0x1234"},
        {"issued_at": datetime(2025, 4, 1, 9, 0)},  # naive
        {"expiration_time": ISSUED},
        {"domain": "furusato.example/path"},
        {"uri": "not a uri"},
    ],
)
def test_build_message_rejects_bad_input(
    account: LocalAccount, nonce: str, override: dict[str, Any]
) -> None:
    with pytest.raises(ValueError):
        _message(account, nonce, **override)


# --- verification -----------------------------------------------------------------------


@pytest.mark.parametrize("statement", [STATEMENT, "Sign in to Furusato", None])
def test_valid_message_verifies(account: LocalAccount, nonce: str, statement: str | None) -> None:
    text = _message(account, nonce, statement=statement)
    assert _verify(text, _sign(account, text), nonce) == account.address


def test_verify_with_default_clock(account: LocalAccount, nonce: str) -> None:
    now = datetime.now(tz=UTC)
    text = _message(account, nonce, issued_at=now, expiration_time=now + timedelta(minutes=5))
    assert (
        verify(
            text,
            _sign(account, text),
            expected_domain=DOMAIN,
            expected_uri=PUBLIC_URL,
            expected_chain_id=CHAIN_ID,
            expected_nonce=nonce,
        )
        == account.address
    )


def test_now_in_another_timezone(account: LocalAccount, nonce: str) -> None:
    jst = timezone(timedelta(hours=9))
    text = _message(account, nonce)
    assert _verify(text, _sign(account, text), nonce, now=DURING.astimezone(jst)) == (
        account.address
    )


def test_naive_now_is_a_programming_error(account: LocalAccount, nonce: str) -> None:
    text = _message(account, nonce)
    with pytest.raises(ValueError):
        _verify(text, _sign(account, text), nonce, now=datetime(2025, 4, 1, 9, 1))


def test_replay_with_other_nonce(account: LocalAccount, nonce: str) -> None:
    text = _message(account, nonce)
    with pytest.raises(SiweRejected) as exc:
        _verify(text, _sign(account, text), new_nonce())
    assert _reason(exc) == "nonce_mismatch"


def test_wrong_domain(account: LocalAccount, nonce: str) -> None:
    text = _message(account, nonce, domain="evil.example")
    with pytest.raises(SiweRejected) as exc:
        _verify(text, _sign(account, text), nonce)
    assert _reason(exc) == "domain_mismatch"


@pytest.mark.parametrize(
    ("uri", "public_url"),
    [
        ("https://furusato.example", PUBLIC_URL),
        ("https://furusato.example/", PUBLIC_URL),
        ("https://furusato.example/login?next=/me#wallet", PUBLIC_URL),
        ("https://furusato.example:443/login", PUBLIC_URL),  # the default port, written out
        ("https://FURUSATO.example/login", PUBLIC_URL),  # hosts are case-insensitive
        ("https://furusato.example/app", "https://furusato.example/app/"),
        ("https://furusato.example/app/login", "https://furusato.example/app"),
        ("http://127.0.0.1:5000/login", "http://127.0.0.1:5000"),
    ],
)
def test_a_uri_of_this_site_verifies(
    account: LocalAccount, nonce: str, uri: str, public_url: str
) -> None:
    """EIP-4361's uri is the resource signed for: PUBLIC_URL itself (what our pages build) or
    anything under it (what a client that signs window.location.href builds)."""
    text = _message(account, nonce, uri=uri)
    assert _verify(text, _sign(account, text), nonce, expected_uri=public_url) == account.address


@pytest.mark.parametrize(
    ("uri", "public_url"),
    [
        ("https://evil.example/login", PUBLIC_URL),
        ("http://furusato.example/login", PUBLIC_URL),  # another scheme
        ("https://furusato.example:8443/login", PUBLIC_URL),  # another port
        ("https://furusato.example.evil.example/login", PUBLIC_URL),
        ("https://user@furusato.example/login", PUBLIC_URL),  # user info
        ("https://evil.example@furusato.example/", PUBLIC_URL),
        ("https://furusato.example/other", "https://furusato.example/app"),
        ("https://furusato.example/application", "https://furusato.example/app"),
        ("https://furusato.example/app/../other", "https://furusato.example/app"),
        ("https://furusato.example/app/%2e%2e/other", "https://furusato.example/app"),
        ("urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66", PUBLIC_URL),
        ("http://127.0.0.1:5001", "http://127.0.0.1:5000"),
    ],
)
def test_a_uri_of_another_site_is_refused(
    account: LocalAccount, nonce: str, uri: str, public_url: str
) -> None:
    text = _message(account, nonce, uri=uri)
    with pytest.raises(SiweRejected) as exc:
        _verify(text, _sign(account, text), nonce, expected_uri=public_url)
    assert _reason(exc) == "uri_mismatch"


def test_wrong_chain(account: LocalAccount, nonce: str) -> None:
    text = _message(account, nonce, chain_id=1)
    with pytest.raises(SiweRejected) as exc:
        _verify(text, _sign(account, text), nonce)
    assert _reason(exc) == "chain_mismatch"


@pytest.mark.parametrize("now", [EXPIRES, EXPIRES + timedelta(seconds=1)])
def test_expired(account: LocalAccount, nonce: str, now: datetime) -> None:
    text = _message(account, nonce)
    with pytest.raises(SiweRejected) as exc:
        _verify(text, _sign(account, text), nonce, now=now)
    assert _reason(exc) == "expired"


def test_not_yet_valid(account: LocalAccount, nonce: str) -> None:
    text = _message(account, nonce, not_before=ISSUED + timedelta(minutes=5))
    signature = _sign(account, text)
    with pytest.raises(SiweRejected) as exc:
        _verify(text, signature, nonce, now=DURING)
    assert _reason(exc) == "not_yet_valid"
    assert _verify(text, signature, nonce, now=ISSUED + timedelta(minutes=6)) == account.address


def test_signature_by_another_key(account: LocalAccount, nonce: str) -> None:
    text = _message(account, nonce)
    other = Account.from_key(b"\x22" * 32)
    with pytest.raises(SiweRejected) as exc:
        _verify(text, _sign(other, text), nonce)
    assert _reason(exc) == "bad_signature"


@pytest.mark.parametrize(
    "signature",
    ["", "0x", "0x1234", "not hex", "0x" + "00" * 65, "0x" + "ff" * 65, "0x" + "zz" * 65],
)
def test_garbage_signature(account: LocalAccount, nonce: str, signature: str) -> None:
    text = _message(account, nonce)
    with pytest.raises(SiweRejected) as exc:
        _verify(text, signature, nonce)
    assert _reason(exc) == "bad_signature"


def test_signature_over_other_text(account: LocalAccount, nonce: str) -> None:
    text = _message(account, nonce)
    with pytest.raises(SiweRejected) as exc:
        _verify(text, _sign(account, text + " "), nonce)
    assert _reason(exc) == "bad_signature"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello world",
        "ふるさと",
        "furusato.example wants you to sign in with your Ethereum account:\n0xnope",
    ],
)
def test_garbage_text(account: LocalAccount, nonce: str, text: str) -> None:
    with pytest.raises(SiweRejected) as exc:
        _verify(text, _sign(account, text), nonce)
    assert _reason(exc) == "malformed"


def test_non_canonical_text_is_malformed(account: LocalAccount, nonce: str) -> None:
    text = _message(account, nonce)
    for variant in (text + "\n", text.replace("\n", "\r\n"), text.replace(": ", ":  ")):
        with pytest.raises(SiweRejected) as exc:
            _verify(variant, _sign(account, variant), nonce)
        assert _reason(exc) == "malformed"
    # Leading spaces parse as part of the domain, which then does not match.
    with pytest.raises(SiweRejected) as exc:
        _verify("  " + text, _sign(account, "  " + text), nonce)
    assert _reason(exc) == "domain_mismatch"


def test_non_ascii_outside_statement_is_malformed(account: LocalAccount, nonce: str) -> None:
    text = _message(account, nonce, statement="Sign in").replace(
        "URI: https://furusato.example/login", "URI: https://furusato.example/ログイン"
    )
    with pytest.raises(SiweRejected) as exc:
        _verify(text, _sign(account, text), nonce)
    assert _reason(exc) == "malformed"


def test_lowercase_address_in_text_is_malformed(account: LocalAccount, nonce: str) -> None:
    text = _message(account, nonce).replace(account.address, account.address.lower())
    with pytest.raises(SiweRejected) as exc:
        _verify(text, _sign(account, text), nonce)
    assert _reason(exc) == "malformed"


def test_reason_is_the_message(account: LocalAccount, nonce: str) -> None:
    text = _message(account, nonce)
    with pytest.raises(SiweRejected) as exc:
        _verify(text, _sign(account, text), nonce, expected_domain="other.example")
    assert str(exc.value) == "domain_mismatch"
    assert text not in repr(exc.value)
