"""Unit tests for the custodial key vault (no chain needed)."""

from __future__ import annotations

import base64
import dataclasses
import logging
import pickle
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_utils.address import is_checksum_address

from backend.chain.keys import (
    KeyIntegrityError,
    KeyVault,
    KeyVaultError,
    LocalMasterKey,
    MasterKeyProvider,
    ReauthenticationRequired,
    SealedKey,
    UnknownMasterKey,
    generate_master_key_text,
)

MASTER_A = bytes(range(32))
MASTER_B = bytes(range(100, 132))

TYPED_DATA: dict[str, Any] = {
    "types": {
        "EIP712Domain": [
            {"name": "name", "type": "string"},
            {"name": "version", "type": "string"},
            {"name": "chainId", "type": "uint256"},
            {"name": "verifyingContract", "type": "address"},
        ],
        "Vote": [
            {"name": "proposalId", "type": "uint256"},
            {"name": "support", "type": "uint8"},
        ],
    },
    "primaryType": "Vote",
    "domain": {
        "name": "FurusatoGovernor",
        "version": "1",
        "chainId": 31337,
        "verifyingContract": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
    },
    "message": {"proposalId": 42, "support": 1},
}

TX: dict[str, Any] = {
    "type": 2,
    "chainId": 31337,
    "nonce": 0,
    "to": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "value": 1,
    "gas": 21_000,
    "maxFeePerGas": 2_000_000_000,
    "maxPriorityFeePerGas": 1_000_000_000,
    "data": b"",
}


def _key_a() -> LocalMasterKey:
    return LocalMasterKey("kek-a", MASTER_A)


def _key_b() -> LocalMasterKey:
    return LocalMasterKey("kek-b", MASTER_B)


@pytest.fixture
def vault() -> KeyVault:
    return KeyVault({"kek-a": _key_a()}, "kek-a")


@pytest.fixture
def sealed(vault: KeyVault) -> SealedKey:
    return vault.create_key()


def _secret_forms(vault: KeyVault, sealed: SealedKey) -> list[str]:
    """Every textual form the private key and master keys could leak in."""
    key_hex = vault.export_private_key(sealed, reauthenticated=True)
    bare = key_hex.removeprefix("0x")
    forms = [key_hex, bare, bare.upper()]
    for master in (MASTER_A, MASTER_B):
        forms += [master.hex(), base64.b64encode(master).decode(), repr(master)]
    return forms


# --- master keys ------------------------------------------------------------------------


def test_local_master_key_satisfies_protocol() -> None:
    assert isinstance(_key_a(), MasterKeyProvider)


def test_wrap_round_trip_and_random_nonce() -> None:
    kek = _key_a()
    data_key = bytes(32)
    w1, w2 = kek.wrap(data_key), kek.wrap(data_key)
    assert w1 != w2
    assert kek.unwrap(w1) == kek.unwrap(w2) == data_key


def test_wrap_bound_to_key_id() -> None:
    wrapped = LocalMasterKey("kek-a", MASTER_A).wrap(bytes(32))
    with pytest.raises(KeyIntegrityError):
        LocalMasterKey("kek-other", MASTER_A).unwrap(wrapped)


@pytest.mark.parametrize(
    "text",
    [
        MASTER_A.hex(),
        "0x" + MASTER_A.hex(),
        MASTER_A.hex().upper(),
        base64.b64encode(MASTER_A).decode(),
        base64.urlsafe_b64encode(MASTER_A).decode(),
        "  " + base64.b64encode(MASTER_A).decode() + "\n",
    ],
)
def test_from_text_accepts_hex_and_base64(text: str) -> None:
    kek = LocalMasterKey.from_text("kek-a", text)
    assert _key_a().unwrap(kek.wrap(b"x" * 32)) == b"x" * 32


@pytest.mark.parametrize(
    "text", ["", "abc", MASTER_A.hex()[:-2], base64.b64encode(bytes(31)).decode(), "ü" * 44]
)
def test_from_text_rejects_bad_text_without_echoing_it(text: str) -> None:
    with pytest.raises(KeyVaultError) as exc:
        LocalMasterKey.from_text("kek-a", text)
    if text:
        assert text not in str(exc.value)


def test_generate_helpers() -> None:
    text = generate_master_key_text()
    assert len(base64.b64decode(text)) == 32
    LocalMasterKey.from_text("kek-new", text)
    assert LocalMasterKey.generate("k1").key_id == "k1"


def test_master_key_rejects_bad_length_and_id() -> None:
    with pytest.raises(KeyVaultError):
        LocalMasterKey("kek-a", bytes(16))
    with pytest.raises(KeyVaultError):
        LocalMasterKey("bad id with spaces", MASTER_A)


def test_vault_config_errors() -> None:
    with pytest.raises(UnknownMasterKey):
        KeyVault({"kek-a": _key_a()}, "kek-b")
    with pytest.raises(KeyVaultError):
        KeyVault({"kek-x": _key_a()}, "kek-x")


# --- sealing and signing ----------------------------------------------------------------


def test_sealed_key_shape(vault: KeyVault, sealed: SealedKey) -> None:
    assert sealed.master_key_id == "kek-a"
    assert is_checksum_address(sealed.address)
    for blob in (sealed.ciphertext, sealed.nonce, sealed.wrapped_data_key):
        assert isinstance(blob, bytes)
    assert len(sealed.nonce) == 12
    with pytest.raises(dataclasses.FrozenInstanceError):
        sealed.address = "0x0"  # type: ignore[misc]
    assert vault.create_key().address != sealed.address


def test_sign_typed_data_round_trip(vault: KeyVault, sealed: SealedKey) -> None:
    signed = vault.sign_typed_data(sealed, TYPED_DATA)
    recovered = Account.recover_message(
        encode_typed_data(full_message=TYPED_DATA), signature=signed.signature
    )
    assert recovered == sealed.address


def test_sign_transaction_round_trip(vault: KeyVault, sealed: SealedKey) -> None:
    signed = vault.sign_transaction(sealed, dict(TX))
    assert Account.recover_transaction(signed.raw_transaction) == sealed.address


def test_sign_message_round_trip(vault: KeyVault, sealed: SealedKey) -> None:
    signed = vault.sign_message(sealed, "ふるさと login")
    recovered = Account.recover_message(
        encode_defunct(text="ふるさと login"), signature=signed.signature
    )
    assert recovered == sealed.address


def test_signer_object(vault: KeyVault, sealed: SealedKey) -> None:
    signer = vault.signer(sealed)
    assert signer.address == sealed.address
    signed = signer.sign_message("hello")
    assert Account.recover_message(encode_defunct(text="hello"), signature=signed.signature) == (
        sealed.address
    )
    assert Account.recover_transaction(signer.sign_transaction(dict(TX)).raw_transaction) == (
        sealed.address
    )
    typed = signer.sign_typed_data(TYPED_DATA)
    assert (
        Account.recover_message(
            encode_typed_data(full_message=TYPED_DATA), signature=typed.signature
        )
        == sealed.address
    )


# --- integrity --------------------------------------------------------------------------


def _flip(blob: bytes, index: int = -1) -> bytes:
    mutable = bytearray(blob)
    mutable[index] ^= 0x01
    return bytes(mutable)


@pytest.mark.parametrize(
    "change",
    [
        lambda s: {"ciphertext": _flip(s.ciphertext)},
        lambda s: {"ciphertext": _flip(s.ciphertext, 0)},
        lambda s: {"ciphertext": s.ciphertext[:-1]},
        lambda s: {"nonce": _flip(s.nonce)},
        lambda s: {"nonce": s.nonce[:-1]},
        lambda s: {"wrapped_data_key": _flip(s.wrapped_data_key)},
        lambda s: {"wrapped_data_key": _flip(s.wrapped_data_key, 0)},
        lambda s: {"wrapped_data_key": s.wrapped_data_key[:20]},
        lambda s: {"address": s.address.lower()},
    ],
    ids=[
        "ciphertext-tag",
        "ciphertext-body",
        "ciphertext-truncated",
        "nonce",
        "nonce-short",
        "wrapped-tag",
        "wrapped-version",
        "wrapped-truncated",
        "address-lowercase",
    ],
)
def test_tampering_is_detected(vault: KeyVault, sealed: SealedKey, change: Any) -> None:
    tampered = dataclasses.replace(sealed, **change(sealed))
    with pytest.raises(KeyIntegrityError):
        vault.sign_message(tampered, "x")
    with pytest.raises(KeyIntegrityError):
        vault.rewrap(tampered)


def test_swapped_blob_between_rows(vault: KeyVault) -> None:
    alice, bob = vault.create_key(), vault.create_key()
    # Bob's row pointing at Alice's encrypted key: must not sign (as anyone).
    swapped = dataclasses.replace(
        bob, ciphertext=alice.ciphertext, nonce=alice.nonce, wrapped_data_key=alice.wrapped_data_key
    )
    with pytest.raises(KeyIntegrityError):
        vault.sign_message(swapped, "x")
    # Only the address swapped.
    with pytest.raises(KeyIntegrityError):
        vault.sign_message(dataclasses.replace(alice, address=bob.address), "x")


def test_wrapped_key_from_other_master_key_id(vault: KeyVault, sealed: SealedKey) -> None:
    both = KeyVault({"kek-a": _key_a(), "kek-b": _key_b()}, "kek-a")
    relabelled = dataclasses.replace(sealed, master_key_id="kek-b")
    with pytest.raises(KeyIntegrityError):
        both.sign_message(relabelled, "x")


def test_unknown_master_key(sealed: SealedKey) -> None:
    only_b = KeyVault({"kek-b": _key_b()}, "kek-b")
    with pytest.raises(UnknownMasterKey):
        only_b.sign_message(sealed, "x")
    with pytest.raises(UnknownMasterKey):
        only_b.rewrap(sealed)
    with pytest.raises(UnknownMasterKey):
        only_b.export_private_key(sealed, reauthenticated=True)


def test_errors_share_a_root() -> None:
    for cls in (UnknownMasterKey, KeyIntegrityError, ReauthenticationRequired):
        assert issubclass(cls, KeyVaultError)


# --- rotation ---------------------------------------------------------------------------


def test_rotation_rewrap(sealed: SealedKey) -> None:
    a_vault = KeyVault({"kek-a": _key_a()}, "kek-a")
    key_hex = a_vault.export_private_key(sealed, reauthenticated=True)
    rotating = KeyVault({"kek-a": _key_a(), "kek-b": _key_b()}, "kek-b")
    assert rotating.needs_rewrap(sealed)

    rewrapped = rotating.rewrap(sealed)

    assert rewrapped.master_key_id == "kek-b"
    assert rewrapped.address == sealed.address
    assert rewrapped.ciphertext == sealed.ciphertext
    assert rewrapped.nonce == sealed.nonce
    assert rewrapped.wrapped_data_key != sealed.wrapped_data_key
    assert not rotating.needs_rewrap(rewrapped)

    b_only = KeyVault({"kek-b": _key_b()}, "kek-b")
    signed = b_only.sign_message(rewrapped, "after rotation")
    assert (
        Account.recover_message(encode_defunct(text="after rotation"), signature=signed.signature)
        == sealed.address
    )
    assert b_only.export_private_key(rewrapped, reauthenticated=True) == key_hex
    # The old row no longer opens once key A is retired.
    with pytest.raises(UnknownMasterKey):
        b_only.sign_message(sealed, "x")


def test_rewrap_under_same_key_keeps_working(vault: KeyVault, sealed: SealedKey) -> None:
    again = vault.rewrap(sealed)
    assert again.master_key_id == "kek-a"
    assert again.ciphertext == sealed.ciphertext
    vault.sign_message(again, "x")


# --- export -----------------------------------------------------------------------------


@pytest.mark.parametrize("flag", [False, None, 1, "yes"])
def test_export_refused_without_reauthentication(
    vault: KeyVault, sealed: SealedKey, flag: Any
) -> None:
    with pytest.raises(ReauthenticationRequired):
        vault.export_private_key(sealed, reauthenticated=flag)


def test_export_with_reauthentication(vault: KeyVault, sealed: SealedKey) -> None:
    key_hex = vault.export_private_key(sealed, reauthenticated=True)
    assert key_hex.startswith("0x") and len(key_hex) == 66
    assert Account.from_key(key_hex).address == sealed.address


# --- no key material in repr, str, pickles or logs ------------------------------------


def test_repr_and_str_hold_no_key_material(vault: KeyVault, sealed: SealedKey) -> None:
    both = KeyVault({"kek-a": _key_a(), "kek-b": _key_b()}, "kek-a")
    objects: list[object] = [
        sealed,
        vault,
        both,
        _key_a(),
        _key_b(),
        vault.signer(sealed),
    ]
    texts = [f(o) for o in objects for f in (repr, str)]
    for secret in _secret_forms(vault, sealed):
        for text in texts:
            assert secret.lower() not in text.lower()
    assert repr(sealed) == (f"SealedKey(address={sealed.address!r}, master_key_id='kek-a')")
    for blob in (sealed.ciphertext, sealed.wrapped_data_key):
        assert blob.hex() not in repr(sealed)


def test_secret_holders_refuse_pickling(vault: KeyVault, sealed: SealedKey) -> None:
    for obj in (_key_a(), vault, vault.signer(sealed)):
        with pytest.raises(TypeError):
            pickle.dumps(obj)
    # The sealed row itself is ciphertext: fine to pickle (e.g. into a task payload).
    assert pickle.loads(pickle.dumps(sealed)) == sealed


def test_errors_hold_no_key_material(vault: KeyVault, sealed: SealedKey) -> None:
    messages = []
    for bad in (
        dataclasses.replace(sealed, ciphertext=_flip(sealed.ciphertext)),
        dataclasses.replace(sealed, wrapped_data_key=_flip(sealed.wrapped_data_key)),
    ):
        with pytest.raises(KeyIntegrityError) as exc:
            vault.sign_message(bad, "x")
        assert exc.value.__cause__ is None
        messages.append(str(exc.value) + repr(exc.value))
    with pytest.raises(ReauthenticationRequired) as reauth:
        vault.export_private_key(sealed, reauthenticated=False)
    messages.append(str(reauth.value))
    for secret in _secret_forms(vault, sealed):
        for message in messages:
            assert secret.lower() not in message.lower()


def test_no_key_material_in_debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # root: catches eth_account, web3, cryptography too
    a_vault = KeyVault({"kek-a": _key_a()}, "kek-a")
    sealed = a_vault.create_key()
    a_vault.sign_message(sealed, "hello")
    a_vault.sign_typed_data(sealed, TYPED_DATA)
    a_vault.sign_transaction(sealed, dict(TX))
    rotated = KeyVault({"kek-a": _key_a(), "kek-b": _key_b()}, "kek-b").rewrap(sealed)
    KeyVault({"kek-b": _key_b()}, "kek-b").sign_message(rotated, "after")
    with pytest.raises(KeyIntegrityError):
        a_vault.sign_message(dataclasses.replace(sealed, nonce=_flip(sealed.nonce)), "x")

    assert any(sealed.address in r.getMessage() for r in caplog.records)  # logging did run
    logged = (
        "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
        + caplog.text
    )
    secrets = _secret_forms(a_vault, sealed)  # export after capture: its own log line is fine
    for secret in secrets:
        assert secret.lower() not in logged.lower()
