"""Deploy the platform's contracts to any RPC URL and record them in deployments/<chain_id>.json.

    python -m backend.chain.deploy --rpc-url http://127.0.0.1:8545 [--town sarabetsu:SRB] ...

The deployer key comes from DEPLOYER_PRIVATE_KEY or DEPLOYER_PRIVATE_KEY_FILE (on the local
anvil chain it defaults to anvil's first public test key). Deploying is additive: a key already
in the file whose address still holds code is kept, so running it twice deploys nothing new.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3
from web3.logs import DISCARD

from backend.chain.anvil import DEV_KEYS
from backend.chain.registry import (
    DeployedContract,
    Deployments,
    RegistryError,
    artifact,
    load_deployments,
    save_deployments,
)

log = logging.getLogger(__name__)
LOCAL_CHAIN_IDS = {31337}


CATEGORIES = (
    "ambassador_card",
    "resident_card",
    "event_ticket",
    "vip_ticket",
    "experience",
    "naming_right",
    "donation_certificate",
    "lodging_right",
)  # the order of FanCollection.Category


@dataclass(frozen=True)
class CollectionSpec:
    slug: str
    name: str
    symbol: str
    max_supply: int
    category: str
    soulbound: bool = False
    votes: bool = False
    royalty_bps: int = 500


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


def demo_town(public_url: str = "http://127.0.0.1:5000") -> TownSpec:
    """更別村 / Sarabetsu as `make run` shows it: welcome points expire after 180 days."""
    return TownSpec(
        "sarabetsu",
        "Sarabetsu Points",
        "SRB",
        programmes=(ProgrammeSpec(1, 180), ProgrammeSpec(2, 0)),
        collections=(
            CollectionSpec(
                "ambassador",
                "Sarabetsu Ambassador Card",
                "SRBAMB",
                500,
                "ambassador_card",
                votes=True,
            ),
        ),
    )


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
        tx = getattr(contract.functions, fn)(*args).build_transaction(
            {"from": self.account.address}
        )
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


def deploy_platform(
    w3: Web3,
    private_key: str,
    deployments_dir: Path,
    towns: list[TownSpec],
    metadata_base_url: str = "http://127.0.0.1:5000",
) -> Deployments:
    """Deploy what is missing and write the deployments file: the forwarder, the collection
    factory, and per town its points (with programmes) and its collections (via the factory)."""
    chain_id = w3.eth.chain_id
    try:
        existing = load_deployments(deployments_dir, chain_id).contracts
    except RegistryError:
        existing = {}
    local = chain_id in LOCAL_CHAIN_IDS
    contracts = {k: c for k, c in existing.items() if _still_current(w3, c, local)}
    # Towns and collections hang off the forwarder and the factory: renew them with those.
    if "FanCollectionFactory" not in contracts or "FurusatoForwarder" not in contracts:
        contracts = {k: c for k, c in contracts.items() if not k.startswith("towns.")}
    d = Deployer(w3, private_key)

    def ensure(key: str, name: str, *args: Any) -> DeployedContract:
        if key not in contracts:
            contracts[key] = d.deploy(key, name, *args)
            save_deployments(deployments_dir, Deployments(chain_id, dict(contracts)))
        return contracts[key]

    forwarder = ensure("FurusatoForwarder", "FurusatoForwarder")
    factory = ensure("FanCollectionFactory", "FanCollectionFactory", d.address, forwarder.address)
    factory_c = w3.eth.contract(address=factory.address, abi=artifact("FanCollectionFactory").abi)
    for town in towns:
        points_key = f"towns.{town.slug}.RegionPoints"
        fresh = points_key not in contracts
        points = ensure(
            points_key,
            "RegionPoints",
            town.points_name,
            town.points_symbol,
            d.address,
            forwarder.address,
        )
        if fresh:
            points_c = w3.eth.contract(address=points.address, abi=artifact("RegionPoints").abi)
            for prog in town.programmes:
                d.call(points_c, "setProgramme", prog.programme_id, prog.expiry_days, True)
        for spec in town.collections:
            key = f"towns.{town.slug}.collections.{spec.slug}"
            if key in contracts:
                continue
            config = (
                spec.name,
                spec.symbol,
                f"{metadata_base_url.rstrip('/')}/meta/{town.slug}/{spec.slug}/",
                spec.max_supply,
                CATEGORIES.index(spec.category),
                spec.soulbound,
                spec.votes,
                d.address,
                d.address,
                spec.royalty_bps,
            )
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
            save_deployments(deployments_dir, Deployments(chain_id, dict(contracts)))
    deployments = Deployments(chain_id, contracts)
    save_deployments(deployments_dir, deployments)
    return deployments


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


def main(argv: list[str] | None = None) -> int:
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
    parser.add_argument(
        "--demo", action="store_true", help="deploy the demo town 更別村 / Sarabetsu"
    )
    parser.add_argument(
        "--metadata-base-url", default=os.environ.get("PUBLIC_URL", "http://127.0.0.1:5000")
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    w3 = Web3(Web3.HTTPProvider(args.rpc_url, request_kwargs={"timeout": 30}))
    chain_id = w3.eth.chain_id
    towns = []
    for spec in args.town:
        slug, _, symbol = spec.partition(":")
        towns.append(TownSpec(slug, f"{slug.title()} Points", symbol or slug[:3].upper()))
    if args.demo:
        towns.append(demo_town())
    deployments = deploy_platform(
        w3, deployer_key_for(chain_id), args.deployments_dir, towns, args.metadata_base_url
    )
    print(f"chain {chain_id}: {len(deployments.contracts)} contracts in {args.deployments_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
