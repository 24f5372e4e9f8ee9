"""Custodial key vault: secp256k1 account keys sealed with envelope encryption.

Layout of one sealed key (every field fits a DB column):

- ``ciphertext``/``nonce``: the 32-byte private key encrypted with AES-256-GCM under a fresh,
  per-key *data key*; the associated data binds the blob to the checksummed address, so a
  ciphertext copied onto another row fails to decrypt instead of signing for the wrong user.
- ``wrapped_data_key``: the data key encrypted by a *master key* (``master_key_id`` names it).
  Master keys sit behind :class:`MasterKeyProvider`, so a cloud KMS can replace
  :class:`LocalMasterKey` without touching stored ciphertexts; rotation only re-wraps the
  data key (:meth:`KeyVault.rewrap`).

Callers never receive the raw private key except through
:meth:`KeyVault.export_private_key`, which demands a fresh re-authentication and which the
caller must audit-log. Nothing in this module logs or ``repr``s key material; logs carry
addresses and master key ids only.

Limits worth knowing: Python cannot reliably wipe memory (``bytes`` are immutable and
eth_account makes its own copies), so a decrypted key lives in process memory until garbage
collected. Error reporters that capture frame locals (e.g. Sentry's
``include_local_variables``) could see it if an exception escapes mid-signing; keep that off.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eth_account import Account
from eth_account.datastructures import SignedMessage, SignedTransaction
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils.address import is_checksum_address

from backend.chain.errors import ChainError

log = logging.getLogger(__name__)

__all__ = [
    "KeyIntegrityError",
    "KeyVault",
    "KeyVaultError",
    "LocalMasterKey",
    "MasterKeyProvider",
    "ReauthenticationRequired",
    "SealedKey",
    "SealedSigner",
    "UnknownMasterKey",
    "generate_master_key_text",
]

_KEY_BYTES = 32  # AES-256 keys and secp256k1 private keys are both 32 bytes
_NONCE_BYTES = 12  # the GCM nonce size NIST recommends; random is safe at our volumes
_TAG_BYTES = 16
_WRAP_VERSION = b"\x01"  # leading byte of a LocalMasterKey wrap, so the format can evolve
# Domain-separation labels for the associated data: a wrapped data key and a key ciphertext
# can never be mistaken for one another even if a future change shared a key between them.
_WRAP_AAD_PREFIX = b"furusato/keyvault/wrap/v1:"
_SEAL_AAD_PREFIX = b"furusato/keyvault/seal/v1:"
_KEY_ID_RE = re.compile(r"[A-Za-z0-9._:/-]{1,64}")
_HEX_KEY_RE = re.compile(r"(?:0x)?[0-9a-fA-F]{64}")


class KeyVaultError(ChainError):
    """Root of every error this module raises on purpose (a ChainError, as all the chain
    package's errors)."""


class UnknownMasterKey(KeyVaultError):
    """A sealed key names a master key id that no configured provider holds."""


class KeyIntegrityError(KeyVaultError):
    """A sealed blob failed authentication: tampered, truncated, or moved to another address."""


class ReauthenticationRequired(KeyVaultError):
    """Exporting a private key needs a fresh re-authentication of the user."""


@runtime_checkable
class MasterKeyProvider(Protocol):
    """Wraps and unwraps data keys; a cloud KMS adapter implements this too.

    ``unwrap`` must raise :class:`KeyIntegrityError` when the wrapped bytes fail
    authentication, and must not put key material into messages, logs or ``repr``.
    """

    @property
    def key_id(self) -> str:
        """Stable identifier stored next to every data key this provider wrapped."""
        ...

    def wrap(self, data_key: bytes) -> bytes:
        """Encrypt ``data_key``; the result is opaque and storable."""
        ...

    def unwrap(self, wrapped: bytes) -> bytes:
        """Decrypt a value produced by :meth:`wrap` of the same key id."""
        ...


def _check_key_id(key_id: str) -> str:
    if not isinstance(key_id, str) or not _KEY_ID_RE.fullmatch(key_id):
        raise KeyVaultError("master key id must be 1-64 characters of A-Z a-z 0-9 . _ : / -")
    return key_id


def generate_master_key_text() -> str:
    """Return a new random 256-bit master key as base64 text, for a settings value.

    The result is a secret: print it once to the operator, never log it.
    """
    return base64.b64encode(os.urandom(_KEY_BYTES)).decode("ascii")


class LocalMasterKey:
    """A master key held in process memory (from settings), wrapping with AES-256-GCM.

    Wrap format: ``0x01 || nonce(12) || AES-GCM(data_key) || tag(16)``, with
    ``label || key_id`` as associated data so a wrap cannot be replayed under another id.
    """

    __slots__ = ("_aead", "_key_id")

    def __init__(self, key_id: str, key: bytes) -> None:
        """Use ``key`` (exactly 32 bytes) as master key ``key_id``.

        Raises :class:`KeyVaultError` on a malformed id or key length.
        """
        _check_key_id(key_id)
        if not isinstance(key, (bytes, bytearray)) or len(key) != _KEY_BYTES:
            raise KeyVaultError("a local master key must be exactly 32 bytes")
        self._key_id = key_id
        # Only the AESGCM object is kept; it does not expose the key through repr.
        self._aead = AESGCM(bytes(key))

    @classmethod
    def from_text(cls, key_id: str, text: str) -> LocalMasterKey:
        """Build from settings text: 64 hex digits (optional ``0x``) or base64 of 32 bytes.

        Raises :class:`KeyVaultError` (never echoing the text) when it is neither.
        """
        text = text.strip()
        raw: bytes | None = None
        # Hex first: 64 hex digits are also valid base64 (of 48 bytes), never the reverse.
        if _HEX_KEY_RE.fullmatch(text):
            raw = bytes.fromhex(text.removeprefix("0x"))
        elif text.isascii():
            # Standard then URL-safe alphabet; validate=True rejects stray characters.
            for altchars in (None, b"-_"):
                try:
                    candidate = base64.b64decode(text.encode("ascii"), altchars, validate=True)
                except (binascii.Error, ValueError):
                    continue
                if len(candidate) == _KEY_BYTES:
                    raw = candidate
                    break
        if raw is None:
            raise KeyVaultError(
                f"master key {key_id!r} must be 64 hex digits or base64 of 32 bytes"
            )
        return cls(key_id, raw)

    @classmethod
    def generate(cls, key_id: str) -> LocalMasterKey:
        """Return a master key with fresh random bytes (tests, first-run setup)."""
        return cls(key_id, os.urandom(_KEY_BYTES))

    @property
    def key_id(self) -> str:
        """The id stored with every data key this master key wraps."""
        return self._key_id

    def _aad(self) -> bytes:
        return _WRAP_AAD_PREFIX + self._key_id.encode("ascii")

    def wrap(self, data_key: bytes) -> bytes:
        """Encrypt ``data_key`` under this master key with a random nonce."""
        nonce = os.urandom(_NONCE_BYTES)
        return _WRAP_VERSION + nonce + self._aead.encrypt(nonce, bytes(data_key), self._aad())

    def unwrap(self, wrapped: bytes) -> bytes:
        """Decrypt a wrap made by this key id; raises :class:`KeyIntegrityError` if tampered."""
        wrapped = bytes(wrapped)
        head = len(_WRAP_VERSION) + _NONCE_BYTES
        if len(wrapped) < head + _TAG_BYTES or not wrapped.startswith(_WRAP_VERSION):
            raise KeyIntegrityError("wrapped data key is malformed")
        nonce, body = wrapped[len(_WRAP_VERSION) : head], wrapped[head:]
        try:
            return self._aead.decrypt(nonce, body, self._aad())
        except InvalidTag:
            raise KeyIntegrityError(
                f"wrapped data key failed authentication under master key {self._key_id!r}"
            ) from None

    def __repr__(self) -> str:
        return f"LocalMasterKey(key_id={self._key_id!r})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        # Pickling would copy the key into task queues or caches; refuse outright.
        raise TypeError("LocalMasterKey cannot be pickled")


@dataclass(frozen=True)
class SealedKey:
    """An encrypted account key as stored in the DB; safe to log via ``repr``.

    ``address`` is the EIP-55 checksummed address, ``master_key_id`` names the master key
    that wrapped ``wrapped_data_key``. The bytes fields are opaque.
    """

    address: str
    ciphertext: bytes = field(repr=False)
    nonce: bytes = field(repr=False)
    wrapped_data_key: bytes = field(repr=False)
    master_key_id: str

    def __repr__(self) -> str:
        return f"SealedKey(address={self.address!r}, master_key_id={self.master_key_id!r})"

    __str__ = __repr__

    def columns(self) -> dict[str, Any]:
        """The five stored fields, as keyword arguments for a table row that keeps the key."""
        return {
            "address": self.address,
            "ciphertext": self.ciphertext,
            "nonce": self.nonce,
            "wrapped_data_key": self.wrapped_data_key,
            "master_key_id": self.master_key_id,
        }

    @classmethod
    def from_row(cls, row: Any) -> SealedKey:
        """The sealed key kept in a row with those five columns (ValueError if one is empty)."""
        if None in (row.ciphertext, row.nonce, row.wrapped_data_key, row.master_key_id):
            raise ValueError(f"{row.address} has no sealed key")
        return cls(
            address=row.address,
            ciphertext=bytes(row.ciphertext),
            nonce=bytes(row.nonce),
            wrapped_data_key=bytes(row.wrapped_data_key),
            master_key_id=row.master_key_id,
        )


def _seal_aad(address: str) -> bytes:
    return _SEAL_AAD_PREFIX + address.encode("ascii")


class KeyVault:
    """Creates, seals, uses and re-wraps custodial account keys.

    ``providers`` maps master key id -> provider and must hold every id that appears in
    stored rows (old ids stay until :meth:`rewrap` has moved all rows off them);
    ``active_key_id`` is the one new and re-wrapped keys use.
    """

    __slots__ = ("_active", "_providers")

    def __init__(self, providers: Mapping[str, MasterKeyProvider], active_key_id: str) -> None:
        """Build a vault over ``providers`` that seals new keys under ``active_key_id``.

        Raises :class:`UnknownMasterKey` if ``active_key_id`` has no provider, and
        :class:`KeyVaultError` if a mapping key differs from its provider's ``key_id``
        (the id is authenticated data, so a mismatch would make every unwrap fail).
        """
        for key_id, provider in providers.items():
            if provider.key_id != key_id:
                raise KeyVaultError(
                    f"provider registered as {key_id!r} reports key_id {provider.key_id!r}"
                )
        self._providers: dict[str, MasterKeyProvider] = dict(providers)
        if active_key_id not in self._providers:
            raise UnknownMasterKey(f"active master key {active_key_id!r} is not configured")
        self._active = active_key_id

    @property
    def active_key_id(self) -> str:
        """Id of the master key that wraps newly created and re-wrapped keys."""
        return self._active

    def __repr__(self) -> str:
        return f"KeyVault(active_key_id={self._active!r}, key_ids={sorted(self._providers)!r})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("KeyVault cannot be pickled")

    def _provider(self, key_id: str) -> MasterKeyProvider:
        try:
            return self._providers[key_id]
        except KeyError:
            raise UnknownMasterKey(f"master key {key_id!r} is not configured") from None

    # --- creation ---------------------------------------------------------------------

    def create_key(self) -> SealedKey:
        """Generate a new secp256k1 account and return it sealed under the active master key.

        The private key never leaves this call unencrypted.
        """
        account = Account.create()
        address = account.address
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(_NONCE_BYTES)
        ciphertext = AESGCM(data_key).encrypt(nonce, bytes(account.key), _seal_aad(address))
        wrapped = self._provider(self._active).wrap(data_key)
        del account, data_key
        log.debug("created custodial key %s under master key %s", address, self._active)
        return SealedKey(
            address=address,
            ciphertext=ciphertext,
            nonce=nonce,
            wrapped_data_key=wrapped,
            master_key_id=self._active,
        )

    # --- unsealing (private) ----------------------------------------------------------

    def _data_key(self, sealed: SealedKey) -> bytes:
        data_key = self._provider(sealed.master_key_id).unwrap(sealed.wrapped_data_key)
        if len(data_key) != _KEY_BYTES:
            raise KeyIntegrityError(f"data key for {sealed.address} has the wrong length")
        return data_key

    def _decrypt(self, sealed: SealedKey, data_key: bytes) -> bytes:
        if not is_checksum_address(sealed.address):
            raise KeyIntegrityError("sealed key address is not an EIP-55 checksummed address")
        if len(sealed.nonce) != _NONCE_BYTES:
            raise KeyIntegrityError(f"sealed key nonce for {sealed.address} is malformed")
        try:
            private_key = AESGCM(data_key).decrypt(
                bytes(sealed.nonce), bytes(sealed.ciphertext), _seal_aad(sealed.address)
            )
        except InvalidTag:
            raise KeyIntegrityError(
                f"sealed key for {sealed.address} failed authentication"
            ) from None
        return private_key

    @contextmanager
    def _account(self, sealed: SealedKey) -> Iterator[LocalAccount]:
        """Yield the decrypted account for one operation; the reference dies with the block."""
        private_key = self._decrypt(sealed, self._data_key(sealed))
        try:
            account: LocalAccount = Account.from_key(private_key)
        except ValueError:  # drop the cause: key-parsing errors are no place for key bytes
            raise KeyIntegrityError(f"sealed key for {sealed.address} is not a valid key") from None
        finally:
            del private_key
        # AEAD already binds the address; this re-check guards against a provider bug or a
        # blob sealed by different code with a mismatched address.
        if account.address != sealed.address:
            raise KeyIntegrityError(f"sealed key does not belong to {sealed.address}")
        try:
            yield account
        finally:
            del account

    # --- signing ----------------------------------------------------------------------

    def sign_typed_data(self, sealed: SealedKey, full_message: dict[str, Any]) -> SignedMessage:
        """Sign EIP-712 typed data given as one dict (``types``, ``primaryType``,
        ``domain``, ``message``).

        Raises :class:`UnknownMasterKey`, :class:`KeyIntegrityError`, and eth_account's own
        errors for malformed typed data.
        """
        with self._account(sealed) as account:
            signed = account.sign_typed_data(full_message=full_message)
        log.debug("signed typed data with %s", sealed.address)
        return signed

    def sign_transaction(self, sealed: SealedKey, tx: dict[str, Any]) -> SignedTransaction:
        """Sign a transaction dict (must include ``chainId``, ``nonce``, gas fields).

        Raises :class:`UnknownMasterKey`, :class:`KeyIntegrityError`, and eth_account's own
        errors for an invalid transaction.
        """
        with self._account(sealed) as account:
            signed = account.sign_transaction(tx)
        log.debug("signed transaction with %s", sealed.address)
        return signed

    def sign_message(self, sealed: SealedKey, text: str) -> SignedMessage:
        """Sign ``text`` as an EIP-191 personal message (``personal_sign``).

        Raises :class:`UnknownMasterKey` or :class:`KeyIntegrityError`.
        """
        with self._account(sealed) as account:
            signed = account.sign_message(encode_defunct(text=text))
        log.debug("signed message with %s", sealed.address)
        return signed

    def signer(self, sealed: SealedKey) -> SealedSigner:
        """Return an object bound to ``sealed`` that signs through this vault.

        It holds no key material: each call unseals, signs, and drops the key.
        """
        return SealedSigner(self, sealed)

    # --- rotation and export ----------------------------------------------------------

    def needs_rewrap(self, sealed: SealedKey) -> bool:
        """True when ``sealed`` is wrapped under a master key other than the active one."""
        return sealed.master_key_id != self._active

    def rewrap(self, sealed: SealedKey) -> SealedKey:
        """Re-wrap the data key under the active master key; ciphertext, nonce and address
        are unchanged. The blob is fully verified first so a corrupt row is not re-blessed.

        Raises :class:`UnknownMasterKey` if the old master key is not configured, and
        :class:`KeyIntegrityError` if the blob does not authenticate.
        """
        data_key = self._data_key(sealed)
        with self._account(sealed):
            pass  # proves the data key opens this exact ciphertext for this address
        wrapped = self._provider(self._active).wrap(data_key)
        del data_key
        log.debug(
            "rewrapped key %s from master key %s to %s",
            sealed.address,
            sealed.master_key_id,
            self._active,
        )
        return SealedKey(
            address=sealed.address,
            ciphertext=sealed.ciphertext,
            nonce=sealed.nonce,
            wrapped_data_key=wrapped,
            master_key_id=self._active,
        )

    def export_private_key(self, sealed: SealedKey, *, reauthenticated: bool) -> str:
        """Return the ``0x``-prefixed hex private key, for a user taking self-custody.

        ``reauthenticated`` must be the literal ``True`` (a fresh password/passkey check
        just happened); anything else raises :class:`ReauthenticationRequired` before any
        decryption. The caller must audit-log every export. Also raises
        :class:`UnknownMasterKey` or :class:`KeyIntegrityError`.
        """
        if reauthenticated is not True:
            raise ReauthenticationRequired(
                f"exporting the key of {sealed.address} requires re-authentication"
            )
        with self._account(sealed) as account:
            exported = "0x" + bytes(account.key).hex()
        log.info("exported private key of %s", sealed.address)
        return exported


class SealedSigner:
    """Signs for one sealed key through its vault; holds no key material."""

    __slots__ = ("_sealed", "_vault")

    def __init__(self, vault: KeyVault, sealed: SealedKey) -> None:
        """Bind ``sealed`` to ``vault``; nothing is decrypted until a sign call."""
        self._vault = vault
        self._sealed = sealed

    @property
    def address(self) -> str:
        """Checksummed address this signer signs for."""
        return self._sealed.address

    def sign_typed_data(self, full_message: dict[str, Any]) -> SignedMessage:
        """See :meth:`KeyVault.sign_typed_data`."""
        return self._vault.sign_typed_data(self._sealed, full_message)

    def sign_transaction(self, tx: dict[str, Any]) -> SignedTransaction:
        """See :meth:`KeyVault.sign_transaction`."""
        return self._vault.sign_transaction(self._sealed, tx)

    def sign_message(self, text: str) -> SignedMessage:
        """See :meth:`KeyVault.sign_message`."""
        return self._vault.sign_message(self._sealed, text)

    def __repr__(self) -> str:
        return f"SealedSigner(address={self._sealed.address!r})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("SealedSigner cannot be pickled")
