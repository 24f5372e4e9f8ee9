"""Role keys and timelock admin actions for tests on the dev chain (ADR 0008).

After deploy no key administers a town contract: its DEFAULT_ADMIN_ROLE is the town's timelock
(TownTreasury). A test that needs an admin change (setTreasury, grantRole, ...) sends it AS the
timelock, which anvil lets us impersonate; operational actions (setProgramme and the other
town settings included: SETTINGS_ROLE, ADR 0012) go from the role's own dev account (anvil
accounts 10-25, unlocked by anvil): `as_role`.
"""

from __future__ import annotations

from typing import Any

from eth_account import Account
from web3 import Web3

from backend.chain.registry import Deployments
from backend.chain.role_keys import DEV_ROLE_KEYS

# ROLE_PRIVATE_KEYS / ROLE_ADDRESSES values with every dev role key.
ROLE_PRIVATE_KEYS = ",".join(f"{n}={k}" for n, k in DEV_ROLE_KEYS.items())
ROLE_ADDRESSES = ",".join(f"{n}={Account.from_key(k).address}" for n, k in DEV_ROLE_KEYS.items())


def role_address(name: str) -> str:
    """The dev address of role key `name` ("issuer", "minter", ...)."""
    return str(Account.from_key(DEV_ROLE_KEYS[name]).address)


def role_key(name: str) -> str:
    return DEV_ROLE_KEYS[name]


def timelock_of(deployments: Deployments, town: str = "sarabetsu") -> str:
    return Web3.to_checksum_address(deployments.address(f"towns.{town}.TownTreasury"))


def as_timelock(
    w3: Web3, deployments: Deployments, fn: Any, town: str = "sarabetsu", mine: bool = True
) -> Any:
    """Send the bound contract call `fn` from the town's timelock (impersonated); returns the
    receipt. What a passed, queued and executed proposal would do, without the vote."""
    timelock = timelock_of(deployments, town)
    w3.provider.make_request("anvil_impersonateAccount", [timelock])
    try:
        if int(w3.eth.get_balance(timelock)) < 10**18:
            w3.provider.make_request("anvil_setBalance", [timelock, hex(10**19)])
        tx_hash = fn.transact({"from": timelock})
        if mine:
            w3.provider.make_request("anvil_mine", ["0x1"])
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    finally:
        w3.provider.make_request("anvil_stopImpersonatingAccount", [timelock])
    assert receipt["status"] == 1, f"timelock call reverted: {receipt}"
    return receipt


def as_role(w3: Web3, name: str, fn: Any) -> Any:
    """Send the bound contract call `fn` from role key `name`'s dev account, mine it; returns
    the receipt (e.g. `as_role(w3, "town_settings", points.functions.setProgramme(...))`)."""
    tx_hash = fn.transact({"from": role_address(name)})
    w3.provider.make_request("anvil_mine", ["0x1"])
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    assert receipt["status"] == 1, f"{name} call reverted: {receipt}"
    return receipt
