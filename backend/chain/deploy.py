"""Deploy the platform's contracts to any RPC URL and record them in deployments/<chain_id>.json.

    python -m backend.deploy --rpc-url http://127.0.0.1:8545 [--town sarabetsu:SRB] [--demo] ...

(the command lives in backend/deploy.py, which knows the demo towns' domain data; this module
knows no domain: programmes and collection categories come in the TownSpec).

The deployer key comes from DEPLOYER_PRIVATE_KEY or DEPLOYER_PRIVATE_KEY_FILE (on the local
anvil chain it defaults to anvil's first public test key). Deploying is additive: a key already
in the file whose address still holds code is kept, so running it twice deploys nothing new.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3
from web3.logs import DISCARD

from backend.chain import safe
from backend.chain.anvil import DEV_KEYS
from backend.chain.dao_settings import (
    LOCAL_CHAIN_IDS,
    MIN_GUARDIAN_THRESHOLD,
    DaoSpec,
    GovernanceSettingsError,
    GuardianSpec,
    chamber_settings,
    validate,
)
from backend.chain.registry import (
    DeployedContract,
    Deployments,
    RegistryError,
    artifact,
    load_deployments,
    save_deployments,
)
from backend.chain.role_config import parse_role_addresses
from backend.chain.role_keys import (
    CONTRACT_ROLES,
    DEV_ROLE_KEYS,
    LOCAL_ONLY_ROLES,
    ROLES,
    grants_for,
    role_id,
)
from backend.chain.rpc import web3_provider

log = logging.getLogger(__name__)
# anvil accounts 7, 8 and 9 own the dev guardian Safe (2 of 3) on a local chain
DEV_GUARDIAN_KEYS = (DEV_KEYS[7], DEV_KEYS[8], DEV_KEYS[9])
SAFE_CONTRACTS = ("SafeL2", "SafeProxyFactory", "CompatibilityFallbackHandler")
__all__ = ["DaoSpec", "GovernanceSettingsError", "GuardianSpec", "deploy_platform"]


@dataclass(frozen=True)
class CollectionSpec:
    slug: str
    name: str
    symbol: str
    max_supply: int
    category: str  # a key of the town's `categories` (backend/shop/categories.py)
    soulbound: bool = False
    votes: bool = False
    royalty_bps: int = 500
    # (perk id, uses per token, valid until (unix s, 0 = no end)), set while the deployer is
    # still the collection's admin; later perks need the town's timelock.
    perks: tuple[tuple[int, int, int], ...] = ()


@dataclass(frozen=True)
class ProgrammeSpec:
    programme_id: int
    expiry_days: int  # 0: the points never expire


@dataclass(frozen=True)
class TownSpec:
    slug: str
    points_name: str
    points_symbol: str
    programmes: tuple[ProgrammeSpec, ...] = ()
    collections: tuple[CollectionSpec, ...] = ()
    dao: DaoSpec | None = None
    # The collection category keys in the order of `FanCollection.Category` (the caller that
    # knows the shop passes backend/shop/categories.py KEYS): a collection's category is
    # deployed as its index here. Needed only by a town with collections.
    categories: tuple[str, ...] = ()
    # Slugs of partner towns: when this town is deployed, its points declare each partner whose
    # points exist (RegionPoints.setPartner, while the deployer still holds SETTINGS_ROLE). A
    # partnership holds once both towns declared it: deploy them together, or the other town's
    # town_settings key declares its side later.
    partners: tuple[str, ...] = ()


class Deployer:
    """Sends contract-creation and setup transactions from one key, waiting for each receipt."""

    def __init__(self, w3: Web3, private_key: str) -> None:
        self.w3 = w3
        self.account = Account.from_key(private_key)
        self._nonce = int(w3.eth.get_transaction_count(self.account.address, "pending"))

    @property
    def address(self) -> str:
        return str(self.account.address)

    def _send(self, tx: Any) -> Any:
        tx.setdefault("from", self.account.address)
        tx["nonce"] = self._nonce
        tx["chainId"] = self.w3.eth.chain_id
        if "gas" not in tx:
            tx["gas"] = int(self.w3.eth.estimate_gas(tx, "pending") * 1.2)
        base = self.w3.eth.get_block("latest").get("baseFeePerGas", 0)
        tx.setdefault("maxPriorityFeePerGas", self.w3.to_wei(1, "gwei"))
        tx.setdefault("maxFeePerGas", base * 2 + tx["maxPriorityFeePerGas"])
        signed = self.account.sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        self._nonce += 1
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        if receipt["status"] != 1:
            raise RuntimeError(f"transaction {tx_hash.hex()} reverted")
        return receipt

    def call(self, contract: Any, fn: str, *args: Any) -> Any:
        """Send `contract.fn(*args)` from the deployer key and return the receipt."""
        return self.call_fn(getattr(contract.functions, fn)(*args))

    def call_fn(self, fn: Any) -> Any:
        """Send a bound contract function call from the deployer key; returns the receipt."""
        tx = fn.build_transaction({"from": self.account.address})
        tx.pop("nonce", None)
        return self._send(dict(tx))

    def deploy(self, key: str, name: str, *args: Any) -> DeployedContract:
        art = artifact(name)
        factory = self.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        tx = factory.constructor(*args).build_transaction({"from": self.account.address})
        tx.pop("nonce", None)
        receipt = self._send(dict(tx))
        log.info("deployed %s (%s) at %s", key, name, receipt["contractAddress"])
        return DeployedContract(
            key=key,
            contract=name,
            address=receipt["contractAddress"],
            block_number=receipt["blockNumber"],
            tx_hash="0x" + receipt["transactionHash"].hex().removeprefix("0x"),
            code_hash=art.code_hash,
        )


def _still_current(w3: Web3, c: DeployedContract, local: bool) -> bool:
    """Keep a recorded contract while its address holds code; on a local chain also require
    that it was built from today's sources (a changed contract is deployed afresh)."""
    if len(w3.eth.get_code(Web3.to_checksum_address(c.address))) == 0:
        return False
    return not local or c.code_hash == artifact(c.contract).code_hash


def town_keys(town: TownSpec) -> list[str]:
    """Every deployments key a town's full set of contracts is recorded under."""
    keys = [f"towns.{town.slug}.{name}" for name in TOWN_CONTRACTS]
    keys.append(f"towns.{town.slug}.Guardian")
    if town.dao is not None and any(c.votes for c in town.collections):
        keys.append(f"towns.{town.slug}.CardChamber")
    return keys + [f"towns.{town.slug}.collections.{c.slug}" for c in town.collections]


TOWN_CONTRACTS = (
    "RegionPoints",
    "TownTreasury",
    "PrimarySale",
    "ResidentPass",
    "ResidentChamber",
    "TownPoll",
)
ZERO_ADDRESS = "0x" + "00" * 20


def deploy_platform(
    w3: Web3,
    private_key: str,
    deployments_dir: Path,
    towns: list[TownSpec],
    metadata_base_url: str = "http://127.0.0.1:5000",
    platform_proposer: str | None = None,
    role_addresses: Mapping[str, str] | None = None,
) -> Deployments:
    """Deploy what is missing and write the deployments file.

    Platform: the forwarder, the collection factory and, on a local chain, the test yen
    stablecoin. Per town, as one set (a town with any piece missing or stale is deployed afresh):
    points with their programmes, treasury (timelock), primary sale, resident pass, the
    chambers (a governor per voting token, both proposers on the treasury), polls, and the
    town's collections created through the factory, with the sale allowed to mint them, and the
    town guardian (a Safe) that may cancel queued payouts. Every town's governance settings are
    checked first: unsafe ones raise GovernanceSettingsError before anything is sent.
    `platform_proposer` may propose without votes (default: the `clerk` role key).

    Roles (ADR 0008): each town contract's DEFAULT_ADMIN_ROLE goes to the town's timelock, the
    operational roles to `role_addresses` (role name -> address; on a local chain anvil's
    accounts 10 onwards by default, elsewhere required), and the deployer renounces every role it
    had on the town's contracts.
    """
    chain_id = w3.eth.chain_id
    for town in towns:
        validate(town.dao or DaoSpec(), chain_id, town.slug)
    roles = _role_addresses(role_addresses, chain_id in LOCAL_CHAIN_IDS)
    try:
        existing = load_deployments(deployments_dir, chain_id).contracts
    except RegistryError:
        existing = {}
    local = chain_id in LOCAL_CHAIN_IDS
    contracts = {k: c for k, c in existing.items() if _still_current(w3, c, local)}
    # Towns hang off the forwarder and the factory: renew them with those.
    if "FanCollectionFactory" not in contracts or "FurusatoForwarder" not in contracts:
        contracts = {k: c for k, c in contracts.items() if not k.startswith("towns.")}
    d = Deployer(w3, private_key)

    def save() -> None:
        save_deployments(deployments_dir, Deployments(chain_id, dict(contracts)))

    def ensure(key: str, name: str, *args: Any) -> DeployedContract:
        if key not in contracts:
            contracts[key] = d.deploy(key, name, *args)
            save()
        return contracts[key]

    def bound(c: DeployedContract) -> Any:
        return w3.eth.contract(
            address=Web3.to_checksum_address(c.address), abi=artifact(c.contract).abi
        )

    forwarder = ensure("FurusatoForwarder", "FurusatoForwarder")
    factory = ensure("FanCollectionFactory", "FanCollectionFactory", d.address, forwarder.address)
    # The founder key creates the collections of towns set up through the outbox (town_setup.py),
    # the collections key those created from the staff console (ADR 0014).
    factory_c = bound(factory)
    for grant in grants_for("FanCollectionFactory", local=local):
        holder = roles.get(grant.holder)
        if holder and not factory_c.functions.hasRole(role_id(grant.role), holder).call():
            d.call(factory_c, "grantRole", role_id(grant.role), holder)
    if local and "TestYenStablecoin" not in contracts:
        yen = bound(ensure("TestYenStablecoin", "TestYenStablecoin", d.address))
        # Test yen is minted by the faucet key only (the deployer keeps its admin: local only).
        _grant_role_keys(d, yen, "TestYenStablecoin", roles, local)
        d.call(yen, "renounceRole", yen.functions.MINTER_ROLE().call(), d.address)
    # Safe's singleton, factory and fallback handler: each town's guardian is a proxy of them.
    for name in SAFE_CONTRACTS:
        if name not in contracts:
            contracts = {k: c for k, c in contracts.items() if not k.endswith(".Guardian")}
        ensure(name, name)
    proposer = Web3.to_checksum_address(platform_proposer or roles["clerk"])
    fresh: list[TownSpec] = []
    for town in towns:
        keys = town_keys(town)
        if all(k in contracts for k in keys):
            points = bound(contracts[f"towns.{town.slug}.RegionPoints"])
            if points.functions.hasRole(role_id("DEFAULT_ADMIN_ROLE"), d.address).call():
                # Deployed before ADR 0008: hand it over to the timelock and the role keys now.
                _assign_roles(d, town, contracts, bound, roles, local)
            continue
        prefix = f"towns.{town.slug}."
        contracts = {k: c for k, c in contracts.items() if not k.startswith(prefix)}
        _deploy_town(
            d, town, forwarder, factory, metadata_base_url, contracts, bound, save, proposer
        )
        fresh.append(town)
    # Partners after every town exists (setPartner wants the partner's points deployed), and
    # before the deployer hands each town over.
    _declare_partners(d, fresh, contracts, bound)
    for town in fresh:
        _assign_roles(d, town, contracts, bound, roles, local)
    deployments = Deployments(chain_id, contracts)
    save_deployments(deployments_dir, deployments)
    return deployments


def _deploy_town(
    d: Deployer,
    town: TownSpec,
    forwarder: DeployedContract,
    factory: DeployedContract,
    metadata_base_url: str,
    contracts: dict[str, DeployedContract],
    bound: Any,
    save: Any,
    platform_proposer: str,
) -> None:
    prefix = f"towns.{town.slug}."
    me = d.address
    fwd = forwarder.address
    dao = town.dao or DaoSpec()
    chain_id = d.w3.eth.chain_id
    settings = chamber_settings(dao, chain_id, platform_proposer, town.slug).as_tuple()

    def deploy(name: str, contract: str, *args: Any) -> Any:
        contracts[prefix + name] = d.deploy(prefix + name, contract, *args)
        save()
        return bound(contracts[prefix + name])

    points = deploy("RegionPoints", "RegionPoints", town.points_name, town.points_symbol, me, fwd)
    # The deployer sets the first programmes itself; _assign_roles renounces the role after.
    d.call(points, "grantRole", role_id("SETTINGS_ROLE"), me)
    for prog in town.programmes:
        d.call(points, "setProgramme", prog.programme_id, prog.expiry_days, True)
    treasury = deploy("TownTreasury", "TownTreasury", dao.timelock_delay, [], [ZERO_ADDRESS], me)
    sale = deploy("PrimarySale", "PrimarySale", me, treasury.address, fwd)
    residents = deploy(
        "ResidentPass", "ResidentPass", *resident_pass_args(town, metadata_base_url, me, fwd)
    )
    factory_c = bound(factory)
    voting_token = None
    for spec in town.collections:
        key = f"{prefix}collections.{spec.slug}"
        config = collection_config(town, spec, metadata_base_url, me, treasury.address)
        receipt = d.call(factory_c, "createCollection", config)
        (event,) = factory_c.events.CollectionCreated().process_receipt(receipt, errors=DISCARD)
        contracts[key] = DeployedContract(
            key=key,
            contract="FanCollection",
            address=event["args"]["collection"],
            block_number=receipt["blockNumber"],
            tx_hash="0x" + receipt["transactionHash"].hex().removeprefix("0x"),
            code_hash=artifact("FanCollection").code_hash,
        )
        save()
        collection = bound(contracts[key])
        d.call(collection, "grantRole", collection.functions.MINTER_ROLE().call(), sale.address)
        for perk_id, uses, valid_until in spec.perks:
            d.call(collection, "setPerk", perk_id, uses, valid_until)
        if spec.votes and voting_token is None:
            voting_token = contracts[key].address
    chambers = []
    if voting_token is not None:
        chambers.append(
            deploy(
                "CardChamber",
                "TownGovernor",
                chamber_name(town, "Card Chamber"),
                voting_token,
                treasury.address,
                settings,
                fwd,
            )
        )
    chambers.append(
        deploy(
            "ResidentChamber",
            "TownGovernor",
            chamber_name(town, "Resident Chamber"),
            residents.address,
            treasury.address,
            settings,
            fwd,
        )
    )
    proposer = treasury.functions.PROPOSER_ROLE().call()
    canceller = treasury.functions.CANCELLER_ROLE().call()
    for chamber in chambers:
        d.call(treasury, "grantRole", proposer, chamber.address)
        d.call(treasury, "grantRole", canceller, chamber.address)
    # The guardian may cancel a queued payout during the treasury's delay (ADR 0006).
    guardian = _deploy_guardian(d, town, dao.guardian, treasury.address, contracts, save)
    d.call(treasury, "grantRole", canceller, guardian)
    # From here only the chambers' votes move treasury funds.
    d.call(treasury, "renounceRole", treasury.functions.DEFAULT_ADMIN_ROLE().call(), me)
    deploy("TownPoll", "TownPoll", me, fwd)


def _declare_partners(
    d: Deployer, fresh: list[TownSpec], contracts: Mapping[str, DeployedContract], bound: Any
) -> None:
    """Each freshly deployed town's points declare its partners whose points exist."""
    for town in fresh:
        points = bound(contracts[f"towns.{town.slug}.RegionPoints"])
        for slug in town.partners:
            other = contracts.get(f"towns.{slug}.RegionPoints")
            if other is None or slug == town.slug:
                log.warning("town %s: partner %s has no points here; not declared", town.slug, slug)
                continue
            d.call(points, "setPartner", other.address, True)
            log.info("town %s declares %s a partner town", town.slug, slug)


def category_index(town: TownSpec, key: str) -> int:
    """The `FanCollection.Category` value of a category key (ValueError for an unknown key)."""
    if key not in town.categories:
        raise ValueError(f"town {town.slug!r}: category {key!r} is not in its categories")
    return town.categories.index(key)


# What a town's contracts are called and built with, shared with town_setup.py (the same town
# set up through the outbox).


def chamber_name(town: TownSpec, chamber: str) -> str:
    """e.g. "Sarabetsu Card Chamber"."""
    return f"{town.points_name.removesuffix(' Points')} {chamber}"


def resident_pass_args(
    town: TownSpec, metadata_base_url: str, admin: str, forwarder: str
) -> tuple[Any, ...]:
    """ResidentPass's constructor arguments."""
    return (
        f"{town.points_name.removesuffix(' Points')} Resident",
        f"{town.points_symbol}RES",
        f"{metadata_base_url.rstrip('/')}/meta/{town.slug}/resident/",
        admin,
        forwarder,
    )


def collection_config(
    town: TownSpec, spec: CollectionSpec, metadata_base_url: str, admin: str, treasury: Any
) -> tuple[Any, ...]:
    """`FanCollectionFactory.createCollection`'s config (royalties go to the town's treasury,
    never to a platform key)."""
    return (
        spec.name,
        spec.symbol,
        f"{metadata_base_url.rstrip('/')}/meta/{town.slug}/{spec.slug}/",
        spec.max_supply,
        category_index(town, spec.category),
        spec.soulbound,
        spec.votes,
        admin,
        treasury,
        spec.royalty_bps,
    )


def guardian_salt(key: str, treasury: str) -> int:
    """The guardian Safe's CREATE2 salt: one guardian per treasury, so a town deployed afresh
    gets a new Safe, not a CREATE2 clash."""
    return int.from_bytes(Web3.keccak(text=f"{key}:{treasury}"), "big")


def _role_addresses(given: Mapping[str, str] | None, local: bool) -> dict[str, str]:
    """Every role key's address: the given ones, anvil's accounts 10 onwards on a local chain."""
    if given is None and local:
        return {n: str(Account.from_key(k).address) for n, k in DEV_ROLE_KEYS.items()}
    roles = {n: str(Web3.to_checksum_address(a)) for n, a in (given or {}).items()}
    missing = [n for n in ROLES if n not in roles and (local or n not in LOCAL_ONLY_ROLES)]
    if missing:
        raise SystemExit(f"ROLE_ADDRESSES must name every role key; missing: {', '.join(missing)}")
    return roles


def _grant_role_keys(
    d: Deployer, contract: Any, kind: str, roles: Mapping[str, str], local: bool
) -> None:
    for grant in grants_for(kind, local=local):
        d.call(contract, "grantRole", role_id(grant.role), roles[grant.holder])


def _assign_roles(
    d: Deployer,
    town: TownSpec,
    contracts: Mapping[str, DeployedContract],
    bound: Any,
    roles: Mapping[str, str],
    local: bool,
) -> None:
    """Hand a freshly deployed town over: operational roles to the role keys, every admin role
    to the town's timelock, then the deployer renounces all it held (ADR 0008). From here an
    admin change (setTreasury, grantRole, ...) needs a vote of the chambers; programmes, the
    transfer policy and partners are the town_settings key's (SETTINGS_ROLE, ADR 0012)."""
    prefix = f"towns.{town.slug}."
    timelock = contracts[prefix + "TownTreasury"].address
    for key, c in contracts.items():
        if not key.startswith(prefix) or c.contract not in CONTRACT_ROLES:
            continue
        contract = bound(c)
        if c.contract != "TownTreasury":  # the timelock already administers itself
            _grant_role_keys(d, contract, c.contract, roles, local)
            d.call(contract, "grantRole", role_id("DEFAULT_ADMIN_ROLE"), timelock)
        for name in CONTRACT_ROLES[c.contract]:
            if contract.functions.hasRole(role_id(name), d.address).call():
                d.call(contract, "renounceRole", role_id(name), d.address)


def _deploy_guardian(
    d: Deployer,
    town: TownSpec,
    spec: GuardianSpec,
    treasury: str,
    contracts: dict[str, DeployedContract],
    save: Any,
) -> str:
    """Create the town's guardian Safe (owners from the settings; anvil's accounts 7-9, 2 of 3,
    on a local chain when none are given) and record it as towns.<slug>.Guardian."""
    owners = spec.owners or tuple(Account.from_key(k).address for k in DEV_GUARDIAN_KEYS)
    key = f"towns.{town.slug}.Guardian"
    salt = guardian_salt(key, treasury)
    address, receipt = safe.create_safe(
        d.w3,
        lambda fn: d.call_fn(fn),
        factory=contracts["SafeProxyFactory"].address,
        singleton=contracts["SafeL2"].address,
        fallback_handler=contracts["CompatibilityFallbackHandler"].address,
        owners=owners,
        threshold=spec.threshold,
        salt=salt,
    )
    contracts[key] = DeployedContract(
        key=key,
        contract="SafeL2",  # a proxy: its ABI is the singleton's
        address=address,
        block_number=receipt["blockNumber"],
        tx_hash="0x" + receipt["transactionHash"].hex().removeprefix("0x"),
        code_hash=artifact("SafeL2").code_hash,
    )
    save()
    log.info("town %s guardian Safe %s (%d of %s)", town.slug, address, spec.threshold, owners)
    return address


def deployer_key_for(chain_id: int) -> str:
    key = os.environ.get("DEPLOYER_PRIVATE_KEY")
    path = os.environ.get("DEPLOYER_PRIVATE_KEY_FILE")
    if path:
        key = Path(path).read_text().strip()
    if key:
        return key
    if chain_id in LOCAL_CHAIN_IDS:
        return DEV_KEYS[0]
    raise SystemExit(
        f"chain {chain_id} is not a local chain: set DEPLOYER_PRIVATE_KEY or _FILE to deploy"
    )


def main(argv: list[str] | None = None, demo: Callable[[], list[TownSpec]] | None = None) -> int:
    """The deploy command (`python -m backend.deploy`, which passes the demo towns as `demo`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rpc-url", default=os.environ.get("RPC_URL", "http://127.0.0.1:8545"))
    parser.add_argument(
        "--deployments-dir",
        type=Path,
        default=Path(os.environ.get("DEPLOYMENTS_DIR", "deployments")),
    )
    parser.add_argument(
        "--town",
        action="append",
        default=[],
        metavar="SLUG:SYMBOL",
        help="deploy points for a town, e.g. mukawa:MKW (repeatable)",
    )
    if demo is not None:
        parser.add_argument(
            "--demo",
            action="store_true",
            help="deploy the demo towns 更別村 / Sarabetsu and 洞爺湖町 / Lake Toya",
        )
    parser.add_argument(
        "--metadata-base-url", default=os.environ.get("PUBLIC_URL", "http://127.0.0.1:5000")
    )
    # A real chain refuses a town without guardian owners (ADR 0006): they are the town's
    # own people, so they can only come from the operator, never from a default.
    parser.add_argument(
        "--guardian-owners",
        default=os.environ.get("GUARDIAN_OWNERS", ""),
        metavar="0xA,0xB,0xC",
        help="addresses of the --town guardians' Safe owners (env GUARDIAN_OWNERS)",
    )
    parser.add_argument(
        "--guardian-threshold",
        type=int,
        default=int(os.environ.get("GUARDIAN_THRESHOLD", MIN_GUARDIAN_THRESHOLD)),
        help="signatures the guardian needs to cancel a payout (env GUARDIAN_THRESHOLD)",
    )
    args = parser.parse_args(argv)
    owners = tuple(a.strip() for a in args.guardian_owners.split(",") if a.strip())
    bad = [a for a in owners if not Web3.is_address(a)]
    if bad:
        print(f"refused: --guardian-owners: {', '.join(bad)} is not an address", file=sys.stderr)
        return 2
    dao = DaoSpec(
        guardian=GuardianSpec(
            tuple(Web3.to_checksum_address(a) for a in owners), args.guardian_threshold
        )
    )
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    w3 = Web3(web3_provider(args.rpc_url))
    chain_id = w3.eth.chain_id
    towns = []
    for spec in args.town:
        slug, _, symbol = spec.partition(":")
        towns.append(TownSpec(slug, f"{slug.title()} Points", symbol or slug[:3].upper(), dao=dao))
    if demo is not None and args.demo:
        towns.extend(demo())
    try:
        deployments = deploy_platform(
            w3,
            deployer_key_for(chain_id),
            args.deployments_dir,
            towns,
            args.metadata_base_url,
            platform_proposer=os.environ.get("PLATFORM_PROPOSER_ADDRESS") or None,
            role_addresses=parse_role_addresses(os.environ.get("ROLE_ADDRESSES")) or None,
        )
    except GovernanceSettingsError as e:
        print(f"refused: {e}", file=sys.stderr)
        return 2
    print(f"chain {chain_id}: {len(deployments.contracts)} contracts in {args.deployments_dir}")
    return 0
