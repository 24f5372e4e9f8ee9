"""`flask --app backend roles check --town <slug>`: who holds which role, read from the chain.

The town's contracts use OpenZeppelin's plain AccessControl (not AccessControlEnumerable: an
enumerable set would add ~40k gas to every grant and a storage read to nothing we need), so
holders cannot be listed directly. Instead the candidates are the expected holders plus every
account that a RoleGranted log of the contract ever named; `hasRole` then says who holds the
role now. A stray holder (or a missing expected one) makes the check fail (exit status 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import click
from eth_utils import keccak, to_checksum_address
from flask import current_app
from flask.cli import with_appcontext
from web3 import Web3

from backend.chain.dao_settings import LOCAL_CHAIN_IDS
from backend.chain.keyring import KeyRing
from backend.chain.registry import Deployments, artifact, load_deployments
from backend.chain.role_keys import CONTRACT_ROLES, DEV_ROLE_KEYS, grants_for, role_id
from backend.chain.rpc import web3_provider

ZERO = "0x" + "00" * 20
ROLE_GRANTED = "0x" + keccak(text="RoleGranted(bytes32,address,address)").hex()
CHAMBERS = ("CardChamber", "ResidentChamber")


@dataclass
class RoleMap:
    """contract key -> role name -> holders (checksummed), with a label for each address."""

    roles: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    def label(self, address: str) -> str:
        return self.labels.get(address, "UNKNOWN")


def expected_roles(
    deployments: Deployments, slug: str, role_addresses: Mapping[str, str], local: bool
) -> RoleMap:
    """The holders ADR 0008 prescribes for every role of every AccessControl contract of a town:
    admin = the town's timelock; operational roles = the role keys; a collection's minter = the
    town's PrimarySale; the timelock's proposers = the chambers, its cancellers = the chambers and
    the guardian Safe, its executor = anyone (0x0)."""
    prefix = f"towns.{slug}."
    town = {
        k.removeprefix(prefix): c for k, c in deployments.contracts.items() if k.startswith(prefix)
    }
    if "TownTreasury" not in town:
        raise click.ClickException(f"town {slug!r} is not deployed on chain {deployments.chain_id}")

    def addr(name: str) -> str:
        return str(to_checksum_address(town[name].address))

    timelock = addr("TownTreasury")
    out = RoleMap(labels={timelock: "timelock (TownTreasury)", ZERO: "anyone (0x0)"})
    for name, a in role_addresses.items():
        out.labels[str(to_checksum_address(a))] = f"{name} key"
    for name in (*CHAMBERS, "Guardian", "PrimarySale"):
        if name in town:
            out.labels[addr(name)] = "guardian Safe" if name == "Guardian" else name
    chambers = {addr(n) for n in CHAMBERS if n in town}
    for key, c in sorted(town.items()):
        if c.contract not in CONTRACT_ROLES:
            continue
        roles: dict[str, set[str]] = {r: set() for r in CONTRACT_ROLES[c.contract]}
        roles["DEFAULT_ADMIN_ROLE"] = {timelock}
        for grant in grants_for(c.contract, local=local):
            roles[grant.role].add(str(to_checksum_address(role_addresses[grant.holder])))
        if c.contract == "FanCollection":
            roles["MINTER_ROLE"] = {addr("PrimarySale")}
        if c.contract == "TownTreasury":
            roles["PROPOSER_ROLE"] = set(chambers)
            roles["CANCELLER_ROLE"] = chambers | (
                {addr("Guardian")} if "Guardian" in town else set()
            )
            roles["EXECUTOR_ROLE"] = {ZERO}
        out.roles[prefix + key] = roles
    return out


def _granted_accounts(w3: Web3, address: str, from_block: int, chunk: int) -> set[str]:
    """Every account a RoleGranted log of `address` named (any role, ever)."""
    found: set[str] = set()
    head = int(w3.eth.block_number)
    start = from_block
    while start <= head:
        end = min(head, start + chunk - 1)
        logs = w3.eth.get_logs(
            {
                "address": to_checksum_address(address),
                "topics": [ROLE_GRANTED],
                "fromBlock": start,
                "toBlock": end,
            }
        )
        for entry in logs:
            found.add(str(to_checksum_address(bytes(entry["topics"][2])[-20:])))
        start = end + 1
    return found


def actual_roles(w3: Web3, deployments: Deployments, expected: RoleMap, chunk: int) -> RoleMap:
    """Who holds each role now: hasRole over the expected holders and every account ever granted."""
    out = RoleMap(labels=dict(expected.labels))
    for key, roles in expected.roles.items():
        c = deployments.contracts[key]
        contract = w3.eth.contract(
            address=to_checksum_address(c.address), abi=artifact(c.contract).abi
        )
        candidates = set().union(*roles.values()) | _granted_accounts(
            w3, contract.address, c.block_number, chunk
        )
        out.roles[key] = {
            role: {a for a in candidates if contract.functions.hasRole(role_id(role), a).call()}
            for role in roles
        }
    return out


def platform_proposers(w3: Web3, deployments: Deployments, slug: str) -> dict[str, str]:
    """Each chamber's platformProposer (the key that may propose without votes)."""
    out = {}
    for name in CHAMBERS:
        c = deployments.contracts.get(f"towns.{slug}.{name}")
        if c is not None:
            gov = w3.eth.contract(
                address=to_checksum_address(c.address), abi=artifact(c.contract).abi
            )
            out[c.key] = str(gov.functions.platformProposer().call())
    return out


def check(
    w3: Web3,
    deployments: Deployments,
    slug: str,
    role_addresses: Mapping[str, str],
    chunk: int = 2000,
    echo: object = print,
) -> bool:
    """Print the town's role map; True when every holder is the expected one."""
    local = deployments.chain_id in LOCAL_CHAIN_IDS
    expected = expected_roles(deployments, slug, role_addresses, local)
    actual = actual_roles(w3, deployments, expected, chunk)
    ok = True
    say = echo if callable(echo) else print
    for key, roles in expected.roles.items():
        say(f"{key} {deployments.contracts[key].address}")
        for role, want in roles.items():
            have = actual.roles[key][role]
            holders = ", ".join(f"{expected.label(a)} {a}" for a in sorted(have)) or "nobody"
            bad = sorted(have - want)
            missing = sorted(want - have)
            mark = "ok" if not bad and not missing else "MISMATCH"
            say(f"  {role:<22} {holders}  [{mark}]")
            for a in bad:
                say(f"    unexpected holder: {a} ({expected.label(a)})")
            for a in missing:
                say(f"    missing holder: {expected.label(a)} {a}")
            ok = ok and mark == "ok"
    clerk = role_addresses.get("clerk")
    for key, proposer in platform_proposers(w3, deployments, slug).items():
        right = clerk is not None and proposer == to_checksum_address(clerk)
        mark = "ok" if right else "MISMATCH"
        say(f"{key} platformProposer {expected.label(proposer)} {proposer}  [{mark}]")
        ok = ok and right
    say("roles check: ok" if ok else "roles check: FAILED (a holder is not the expected one)")
    return ok


def configured_role_addresses(settings: object, chain_id: int) -> dict[str, str]:
    """The role addresses this process is configured with (ROLE_ADDRESSES / ROLE_PRIVATE_KEYS);
    on a local chain, anvil's accounts 10-19 for any role not configured."""
    addresses = KeyRing.from_settings(settings).role_addresses  # type: ignore[arg-type]
    if chain_id in LOCAL_CHAIN_IDS:
        from eth_account import Account

        for name, key in DEV_ROLE_KEYS.items():
            addresses.setdefault(name, str(Account.from_key(key).address))
    return addresses


@click.group("roles")
def roles_cli() -> None:
    """On-chain roles of the platform's contracts (ADR 0008)."""


@roles_cli.command("check")
@click.option("--town", "slug", required=True, help="the town's slug, e.g. sarabetsu")
@with_appcontext
def check_command(slug: str) -> None:
    """Print who holds every role of every contract of a town; exit 1 on an unexpected holder."""
    settings = current_app.extensions["settings"]
    w3 = Web3(web3_provider(settings.rpc_url))
    chain_id = int(w3.eth.chain_id)
    deployments = load_deployments(settings.deployments_dir, chain_id)
    addresses = configured_role_addresses(settings, chain_id)
    if not check(w3, deployments, slug, addresses, settings.indexer_chunk_size, click.echo):
        raise SystemExit(1)
