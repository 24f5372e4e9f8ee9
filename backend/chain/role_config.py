"""Parse the role key settings: ROLE_PRIVATE_KEYS (worker) and ROLE_ADDRESSES (web).

Both are "name=value,name=value". The web process holds only addresses (it enqueues an admin
action under its sender's address); the worker, which signs, holds the keys. A process given
both must be given the same address for every role. The retired single `admin` key, unknown
names and malformed values are refused at startup with a message that says what to set.
"""

from __future__ import annotations

from eth_account import Account
from eth_utils import is_address, to_checksum_address

from backend.chain.role_keys import RETIRED_ROLES, ROLES
from backend.config import SettingsError


def _pairs(setting: str, raw: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in (raw or "").split(","):
        if not item.strip():
            continue
        name, sep, value = item.strip().partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not value:
            raise SettingsError(f"{setting} must look like issuer=0x...,minter=0x...")
        if name in RETIRED_ROLES:
            raise SettingsError(
                f"{setting}: the single {name!r} role key is retired (docs/adr/0008-role-keys.md);"
                f" configure one key per role: {', '.join(ROLES)}"
            )
        if name not in ROLES:
            raise SettingsError(f"{setting}: unknown role {name!r}; roles are {', '.join(ROLES)}")
        if name in out:
            raise SettingsError(f"{setting}: role {name!r} is given twice")
        out[name] = value
    return out


def parse_role_keys(raw: str | None) -> dict[str, str]:
    """ROLE_PRIVATE_KEYS -> {role: private key}; each key must be a valid secp256k1 key."""
    keys = _pairs("ROLE_PRIVATE_KEYS", raw)
    for name, key in keys.items():
        try:
            Account.from_key(key)
        except (ValueError, TypeError):
            raise SettingsError(f"ROLE_PRIVATE_KEYS: the {name} key is not a private key") from None
    return keys


def parse_role_addresses(raw: str | None) -> dict[str, str]:
    """ROLE_ADDRESSES -> {role: checksummed address}."""
    addresses = _pairs("ROLE_ADDRESSES", raw)
    for name, address in addresses.items():
        if not is_address(address):
            raise SettingsError(f"ROLE_ADDRESSES: {name}={address} is not an address")
    return {name: str(to_checksum_address(a)) for name, a in addresses.items()}


def role_addresses(keys_raw: str | None, addresses_raw: str | None) -> dict[str, str]:
    """Every configured role's address, from its key or from ROLE_ADDRESSES (which must agree)."""
    out = parse_role_addresses(addresses_raw)
    for name, key in parse_role_keys(keys_raw).items():
        address = str(Account.from_key(key).address)
        if out.setdefault(name, address) != address:
            raise SettingsError(
                f"ROLE_ADDRESSES gives {name}={out[name]} but its key in ROLE_PRIVATE_KEYS"
                f" is {address}'s"
            )
    return out
