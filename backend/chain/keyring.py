"""The keys a process sends transactions with: relayer keys and role keys (ADR 0008).

Relayer keys pay the gas of users' forward requests. Role keys sign the platform's own actions,
one key per operational role (backend/chain/role_keys.py). The web process, which only enqueues
actions, is given role ADDRESSES (ROLE_ADDRESSES); the worker, which signs, is given the keys
(ROLE_PRIVATE_KEYS). Likewise the web process needs only the relayers' addresses
(RELAYER_ADDRESSES, in the order of RELAYER_PRIVATE_KEYS) to pick a user's relayer. Asking for a
role nobody configured is a clear AppError, never a fallback to another key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import coincurve
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address

from backend.chain.role_config import parse_role_keys, role_addresses
from backend.config import Settings, SettingsError
from backend.core.errors import AppError


class KeyRing:
    """Relayer keys (pay gas for forwarded requests) and role keys (sign platform actions)."""

    def __init__(
        self,
        relayers: Sequence[str],
        roles: Mapping[str, str],
        addresses: Mapping[str, str] | None = None,
        relayer_addresses: Sequence[str] = (),
    ) -> None:
        """`relayer_addresses`: the relayers' addresses when this process has not their keys;
        with the keys too, they must be the same addresses in the same order."""
        self._relayers: list[LocalAccount] = [Account.from_key(k) for k in relayers]
        from_keys = [str(a.address) for a in self._relayers]
        given = [str(to_checksum_address(a)) for a in relayer_addresses]
        if from_keys and given and given != from_keys:
            raise SettingsError(
                "RELAYER_ADDRESSES must be the addresses of RELAYER_PRIVATE_KEYS, in that order"
            )
        self._relayer_addresses: list[str] = from_keys or given
        self._roles: dict[str, LocalAccount] = {n: Account.from_key(k) for n, k in roles.items()}
        self._role_addresses: dict[str, str] = {
            **{n: str(to_checksum_address(a)) for n, a in (addresses or {}).items()},
            **{n: str(a.address) for n, a in self._roles.items()},
        }
        self._by_address: dict[str, LocalAccount] = {
            a.address: a for a in [*self._relayers, *self._roles.values()]
        }
        self._signing: dict[str, coincurve.PrivateKey] = {
            address: coincurve.PrivateKey(bytes(a.key)) for address, a in self._by_address.items()
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        """Raises SettingsError for a retired `admin` key, an unknown role or a mismatch."""
        relayers = [k.strip() for k in (settings.relayer_private_keys or "").split(",") if k]
        if settings.relayer_private_key and settings.relayer_private_key not in relayers:
            relayers.insert(0, settings.relayer_private_key)
        addresses = role_addresses(settings.role_private_keys, settings.role_addresses)
        relayer_addresses = [
            a.strip() for a in (settings.relayer_addresses or "").split(",") if a.strip()
        ]
        for a in relayer_addresses:
            if not is_address(a):
                raise SettingsError(f"RELAYER_ADDRESSES: {a!r} is not an address")
        return cls(
            relayers, parse_role_keys(settings.role_private_keys), addresses, relayer_addresses
        )

    @property
    def relayer_addresses(self) -> list[str]:
        return list(self._relayer_addresses)

    @property
    def role_addresses(self) -> dict[str, str]:
        return dict(self._role_addresses)

    def relayer_for(self, user_address: str) -> str:
        """The relayer of one user: always the same, so the user's requests stay in order."""
        relayers = self._relayer_addresses
        if not relayers:
            raise AppError("no relayer key is configured", code="no_relayer")
        return relayers[int(user_address, 16) % len(relayers)]

    def role(self, name: str) -> str:
        """The address of role key `name` (known from its key or from ROLE_ADDRESSES)."""
        try:
            return self._role_addresses[name]
        except KeyError:
            raise AppError(f"no key configured for role {name!r}", code="no_role_key") from None

    def account(self, address: str) -> LocalAccount:
        try:
            return self._by_address[to_checksum_address(address)]
        except KeyError:
            raise AppError(f"no key configured for sender {address}", code="no_key") from None

    def signing_key(self, address: str) -> coincurve.PrivateKey:
        """The sender's key for `sign_dynamic_fee_tx` (address as `account(...)` gives it)."""
        key = self._signing.get(address)
        if key is None:
            key = self._signing[str(self.account(address).address)]
        return key
