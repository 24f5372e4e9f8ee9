"""The custodial key vault as configured by settings, and master-key rotation.

Settings format (secrets: never logged, never in ``repr``):

- ``MASTER_KEY="<key_id>:<key>"``: the *active* master key. ``<key>`` is 64 hex digits
  (optional ``0x``) or base64 of 32 bytes; ``<key_id>`` is 1-64 of ``A-Z a-z 0-9 . _ : / -``
  and is stored next to every data key it wraps, so it must never be reused for other bytes.
- ``RETIRED_MASTER_KEYS="<key_id>:<key>,<key_id>:<key>"``: older master keys that may still
  unwrap stored data keys but never wrap new ones.

Rotation: put the new key in ``MASTER_KEY`` and the old one in ``RETIRED_MASTER_KEYS``, deploy,
run ``flask --app backend keys rotate`` (re-wraps every stored data key under the active
master key; addresses and ciphertexts are unchanged), and once it reports 0 keys left under
other master keys, drop the old key from ``RETIRED_MASTER_KEYS``.

This package knows no domain: tables that hold sealed keys register a :class:`SealedKeyStore`
factory on the app with :func:`register_key_store` (accounts does it when its blueprint is
registered), and rotation walks every registered store. The ``keys`` command group
(:data:`keys_cli`) is registered by the composition root (``create_app``), so the app that
rotation walks is the one flask builds, with every store wired in.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import click
from flask import current_app
from flask.cli import with_appcontext

from backend.chain.keys import (
    KeyVault,
    KeyVaultError,
    LocalMasterKey,
    MasterKeyProvider,
    SealedKey,
    generate_master_key_text,
)

if TYPE_CHECKING:
    from flask import Flask

    from backend.config import Settings

log = logging.getLogger(__name__)

__all__ = [
    "CustodyNotConfigured",
    "RotationReport",
    "SealedKeyStore",
    "get_vault",
    "keys_cli",
    "main",
    "parse_master_key",
    "register_key_store",
    "rotate",
    "rotate_app",
    "vault_from_settings",
]

_VAULT_EXT = "custody.vault"
_STORES_EXT = "custody.key_stores"


class CustodyNotConfigured(KeyVaultError):
    """MASTER_KEY (or RETIRED_MASTER_KEYS) is missing or malformed; the message names which."""


def parse_master_key(text: str, setting: str = "MASTER_KEY") -> LocalMasterKey:
    """Parse one ``<key_id>:<key>`` entry into a :class:`LocalMasterKey`.

    Raises :class:`CustodyNotConfigured` naming ``setting``, never echoing the key.
    """
    key_id, sep, key_text = text.strip().rpartition(":")
    if not sep or not key_id or not key_text:
        raise CustodyNotConfigured(
            f"{setting} entries must look like '<key_id>:<64 hex digits or base64 of 32 bytes>'"
        )
    try:
        return LocalMasterKey.from_text(key_id, key_text)
    except KeyVaultError as exc:
        raise CustodyNotConfigured(f"{setting}: {exc}") from None


def vault_from_settings(settings: Settings) -> KeyVault:
    """Build the vault: ``master_key`` active, each of ``retired_master_keys`` unwrap-only.

    Raises :class:`CustodyNotConfigured` when ``master_key`` is unset or an entry is
    malformed, or when two entries share a key id.
    """
    if not settings.master_key:
        raise CustodyNotConfigured("MASTER_KEY is not set; custodial wallets are unavailable")
    active = parse_master_key(settings.master_key)
    providers: dict[str, MasterKeyProvider] = {active.key_id: active}
    for entry in (settings.retired_master_keys or "").split(","):
        if not entry.strip():
            continue
        retired = parse_master_key(entry, "RETIRED_MASTER_KEYS")
        if retired.key_id in providers:
            raise CustodyNotConfigured(
                f"master key id {retired.key_id!r} appears more than once in MASTER_KEY and "
                "RETIRED_MASTER_KEYS"
            )
        providers[retired.key_id] = retired
    return KeyVault(providers, active.key_id)


def get_vault(app: Flask) -> KeyVault:
    """The app's vault, built from its settings on first use and then kept.

    Raises :class:`CustodyNotConfigured` (see :func:`vault_from_settings`).
    """
    vault = app.extensions.get(_VAULT_EXT)
    if vault is None:
        vault = vault_from_settings(app.extensions["settings"])
        app.extensions[_VAULT_EXT] = vault
    return vault  # type: ignore[no-any-return]


# --- rotation ----------------------------------------------------------------------------


class SealedKeyStore(Protocol):
    """A table of sealed keys, as rotation sees it. Implemented by the domain owning the table."""

    name: str

    def pending(self, active_key_id: str, after: str | None, limit: int) -> Sequence[SealedKey]:
        """Up to ``limit`` keys not wrapped by ``active_key_id``, ordered by address, with
        address greater than ``after`` (all when ``None``)."""
        ...

    def replace(self, old: SealedKey, new: SealedKey) -> bool:
        """Store ``new``'s wrap for ``old.address`` if the row still holds ``old``'s wrap;
        False when the row changed meanwhile (it is then left alone)."""
        ...

    def commit(self) -> None:
        """Make the replacements so far durable."""
        ...

    def count_pending(self, active_key_id: str) -> int:
        """How many keys are still wrapped by a master key other than ``active_key_id``."""
        ...


class ModelKeyStore:
    """A SealedKeyStore over any table whose rows carry a sealed key in the columns
    ``address, ciphertext, nonce, wrapped_data_key, master_key_id`` and a ``sealed_key()``
    method; ``where`` narrows it to the rows that hold keys (e.g. custodial addresses only)."""

    def __init__(self, name: str, session: Any, model: Any, *where: Any) -> None:
        self.name = name
        self.session = session
        self.model = model
        self.where = where

    def _not_under(self, active_key_id: str) -> tuple[Any, ...]:
        return (*self.where, self.model.master_key_id != active_key_id)

    def pending(self, active_key_id: str, after: str | None, limit: int) -> Sequence[SealedKey]:
        from sqlalchemy import select

        m = self.model
        query = select(m).where(*self._not_under(active_key_id))
        if after is not None:
            query = query.where(m.address > after)
        rows = self.session.scalars(query.order_by(m.address).limit(limit))
        return [row.sealed_key() for row in rows]

    def replace(self, old: SealedKey, new: SealedKey) -> bool:
        from sqlalchemy import update

        m = self.model
        done = self.session.execute(
            update(m)
            .where(
                m.address == old.address,
                m.master_key_id == old.master_key_id,
                # Compare-and-set: a row re-wrapped meanwhile is left alone.
                m.wrapped_data_key == old.wrapped_data_key,
            )
            .values(wrapped_data_key=new.wrapped_data_key, master_key_id=new.master_key_id)
        )
        return bool(done.rowcount == 1)

    def commit(self) -> None:
        self.session.commit()

    def count_pending(self, active_key_id: str) -> int:
        from sqlalchemy import func, select

        query = select(func.count()).select_from(self.model).where(*self._not_under(active_key_id))
        return int(self.session.scalar(query) or 0)


@dataclass(frozen=True)
class RotationReport:
    store: str
    active_key_id: str
    rewrapped: int
    skipped: int
    remaining: int


def rotate(vault: KeyVault, store: SealedKeyStore, *, batch_size: int = 200) -> RotationReport:
    """Re-wrap every key in ``store`` under the vault's active master key, a batch per commit.

    Addresses, ciphertexts and nonces are unchanged; each blob is fully authenticated before
    it is re-wrapped. Safe to re-run and to run while the app serves requests (old wraps stay
    readable while their key is retired). Raises :class:`UnknownMasterKey` when a row names a
    master key that is neither active nor retired, and :class:`KeyIntegrityError` for a
    corrupt row; batches committed before that stay committed.
    """
    active = vault.active_key_id
    rewrapped = skipped = 0
    after: str | None = None
    while True:
        batch = store.pending(active, after, batch_size)
        if not batch:
            break
        for sealed in batch:
            if store.replace(sealed, vault.rewrap(sealed)):
                rewrapped += 1
            else:
                skipped += 1
        store.commit()
        after = batch[-1].address
    remaining = store.count_pending(active)
    log.info(
        "master key rotation of %s: %d rewrapped, %d skipped, %d left under other keys",
        store.name,
        rewrapped,
        skipped,
        remaining,
    )
    return RotationReport(store.name, active, rewrapped, skipped, remaining)


def register_key_store(app: Flask, factory: Callable[[], SealedKeyStore]) -> None:
    """Let rotation reach a table of sealed keys; ``factory`` runs inside an app context."""
    app.extensions.setdefault(_STORES_EXT, []).append(factory)


def rotate_app(app: Flask, *, batch_size: int = 200) -> list[RotationReport]:
    """Rotate every store registered on ``app`` to its active master key (see :func:`rotate`)."""
    vault = get_vault(app)
    reports = []
    with app.app_context():
        for factory in app.extensions.get(_STORES_EXT, []):
            reports.append(rotate(vault, factory(), batch_size=batch_size))
    return reports


# --- command line ------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``generate-key [--id ID]``: print a new ``<key_id>:<base64>`` line for MASTER_KEY.
    (Rotation needs the app: ``flask --app backend keys rotate``, see :data:`keys_cli`.)"""
    parser = argparse.ArgumentParser(prog="python -m backend.chain.custody")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate-key", help="print a new master key line for MASTER_KEY")
    gen.add_argument("--id", default="mk-1", help="key id to put in front of the key")
    args = parser.parse_args(argv)
    line = f"{args.id}:{generate_master_key_text()}"
    parse_master_key(line)  # validates the id
    print(line)
    return 0


@click.group("keys")
def keys_cli() -> None:
    """Custodial keys: master-key rotation."""


@keys_cli.command("rotate")
@click.option("--batch-size", type=int, default=200, show_default=True)
@with_appcontext
def rotate_command(batch_size: int) -> None:
    """Re-wrap every custodial key under MASTER_KEY; exit 1 if any are left behind."""
    try:
        reports = rotate_app(current_app, batch_size=batch_size)
    except KeyVaultError as exc:
        click.echo(f"rotation failed: {exc}", err=True)
        raise SystemExit(1) from None
    for r in reports:
        click.echo(
            f"{r.store}: {r.rewrapped} re-wrapped under {r.active_key_id}, {r.skipped} skipped, "
            f"{r.remaining} left under other master keys"
        )
    if not all(r.remaining == 0 for r in reports):
        raise SystemExit(1)


if __name__ == "__main__":
    sys.exit(main())
