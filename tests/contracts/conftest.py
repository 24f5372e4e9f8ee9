"""Fixtures for the fan-collection and DAO contract tests (anvil through the committed artifacts).

Everything is deployed in session- or module-scoped fixtures on `session_w3`, so the function
`w3` fixture snapshots after deployment and reverts each test's changes.

Helpers are exposed through the `chain` fixture (a `Chain`): deploy, send, expect_revert (decodes
the custom error selector against every artifact's ABI), mine, sign typed data.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError

from backend.shop.categories import CATEGORIES
from tests.contracts.forwarding import FORWARD_REQUEST_TYPES, forwarder_domain

ROOT = Path(__file__).resolve().parents[2]
ABI_DIR = ROOT / "backend" / "chain" / "abi"
ABI_DIRS = (ABI_DIR, ROOT / "tests" / "abi")  # the app's, then contracts/test/'s
TX_GAS = 6_000_000  # fixed: anvil under-estimates Votes/Governor transactions against "latest"

# FanCollection.Category member name -> value, from the one list (tests/unit/test_categories.py
# checks it against the enum).
CATEGORY = {c.member: i for i, c in enumerate(CATEGORIES)}


def artifact(name: str) -> dict[str, Any]:
    path = next(p for p in (d / f"{name}.json" for d in ABI_DIRS) if p.exists())
    return json.loads(path.read_text())


def _error_selectors() -> dict[bytes, str]:
    out: dict[bytes, str] = {
        bytes.fromhex("08c379a0"): "Error",
        bytes.fromhex("4e487b71"): "Panic",
    }
    for path in (p for d in ABI_DIRS for p in sorted(d.glob("*.json"))):
        for item in json.loads(path.read_text())["abi"]:
            if item["type"] == "error":
                sig = f"{item['name']}({','.join(_abi_type(i) for i in item['inputs'])})"
                out[keccak(text=sig)[:4]] = item["name"]
    return out


def _abi_type(inp: dict[str, Any]) -> str:
    if inp["type"].startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in inp["components"]) + ")" + inp["type"][5:]
    return inp["type"]


class RevertMismatch(AssertionError):
    pass


@dataclass
class Chain:
    w3: Web3
    keys: tuple[str, ...]
    accounts: list[str] = field(default_factory=list)
    errors: dict[bytes, str] = field(default_factory=_error_selectors)

    def __post_init__(self) -> None:
        # anvil's unlocked accounts send transactions; sign only with `key(i)`, which checks that
        # the key really is that account's (DEV_KEYS[6] once was not).
        self.accounts = list(self.w3.eth.accounts[:10])

    def key(self, i: int) -> str:
        """The private key of account `i`, checked against the node's account."""
        k = self.keys[i]
        assert Account.from_key(k).address == self.accounts[i], (
            f"anvil.keys[{i}] is not account {i}"
        )
        return k

    # ------------------------------------------------------------------ tx helpers
    def contract(self, name: str, address: str) -> Contract:
        return self.w3.eth.contract(address=address, abi=artifact(name)["abi"])

    def deploy(self, name: str, *args: Any, sender: int = 0) -> Contract:
        art = artifact(name)
        factory = self.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
        tx = factory.constructor(*args).transact({"from": self.accounts[sender], "gas": 15_000_000})
        rcpt = self.w3.eth.wait_for_transaction_receipt(tx)
        assert rcpt.status == 1, f"deploying {name} failed"
        return self.contract(name, rcpt.contractAddress)

    def send(self, fn: Any, sender: int | str = 0, value: int = 0, gas: int = TX_GAS) -> Any:
        """Send from an anvil (unlocked) account; raise with the decoded error on revert."""
        frm = self.accounts[sender] if isinstance(sender, int) else sender
        try:
            tx = fn.transact({"from": frm, "gas": gas, "value": value})
        except ContractLogicError as e:  # pragma: no cover - anvil may pre-check
            raise AssertionError(f"reverted: {self.decode(e)}") from e
        rcpt = self.w3.eth.wait_for_transaction_receipt(tx)
        if rcpt.status != 1:
            try:
                fn.call({"from": frm, "value": value}, block_identifier=rcpt.blockNumber - 1)
            except ContractLogicError as e:
                raise AssertionError(f"reverted: {self.decode(e)}") from e
            raise AssertionError("transaction reverted")
        return rcpt

    def send_raw(self, fn: Any, key: str, gas: int = TX_GAS) -> Any:
        """Sign with `key` and send (a relayer that is not an anvil-unlocked account)."""
        acct = Account.from_key(key)
        tx = fn.build_transaction(
            {
                "from": acct.address,
                "gas": gas,
                "nonce": self.w3.eth.get_transaction_count(acct.address, "pending"),
                "chainId": self.w3.eth.chain_id,
            }
        )
        signed = acct.sign_transaction(tx)
        rcpt = self.w3.eth.wait_for_transaction_receipt(
            self.w3.eth.send_raw_transaction(signed.raw_transaction)
        )
        assert rcpt.status == 1
        return rcpt

    def decode(self, e: Exception) -> str:
        data = getattr(e, "data", None)
        if isinstance(data, dict):
            data = data.get("data")
        if not isinstance(data, str) or not data.startswith("0x") or len(data) < 10:
            return f"<no revert data: {e}>"
        return self.errors.get(bytes.fromhex(data[2:10]), f"<unknown selector {data[:10]}>")

    def expect_revert(self, fn: Any, error: str, sender: int | str = 0, value: int = 0) -> None:
        """Assert that calling `fn` from `sender` reverts with the custom error named `error`."""
        frm = self.accounts[sender] if isinstance(sender, int) else sender
        try:
            fn.call({"from": frm, "value": value, "gas": TX_GAS})
        except ContractLogicError as e:
            got = self.decode(e)
            if got != error:
                raise RevertMismatch(f"expected {error}, got {got} ({e})") from e
            return
        raise RevertMismatch(f"expected {error}, but the call succeeded")

    # ------------------------------------------------------------------ chain helpers
    def mine(self, blocks: int = 1) -> None:
        self.w3.provider.make_request("anvil_mine", [hex(blocks)])

    def increase_time(self, seconds: int) -> None:
        self.w3.provider.make_request("evm_increaseTime", [seconds])
        self.mine(1)

    def block(self) -> int:
        return self.w3.eth.block_number

    def now(self) -> int:
        return self.w3.eth.get_block("latest").timestamp

    def sign_typed(
        self, key: str, domain: dict[str, Any], types: dict[str, Any], message: dict[str, Any]
    ) -> bytes:
        msg = encode_typed_data(domain_data=domain, message_types=types, message_data=message)
        return Account.sign_message(msg, private_key=key).signature

    def events(self, contract: Contract, rcpt: Any, event: str) -> list[Any]:
        from web3.logs import DISCARD

        return list(getattr(contract.events, event)().process_receipt(rcpt, errors=DISCARD))

    def role(self, name: str) -> bytes:
        return b"\x00" * 32 if name == "DEFAULT_ADMIN_ROLE" else keccak(text=name)


# ---------------------------------------------------------------------- accounts (indexes)
ADMIN, MINTER, VERIFIER, ALICE, BOB, CAROL, RELAYER, OUTSIDER, DAVE, ERIN = range(10)


@pytest.fixture(scope="session")
def chain(session_w3: Web3, anvil: Any) -> Chain:
    return Chain(session_w3, tuple(anvil.keys))


@pytest.fixture(scope="session")
def forwarder(chain: Chain) -> Contract:
    return chain.deploy("FurusatoForwarder")


@pytest.fixture(scope="session")
def factory(chain: Chain, forwarder: Contract) -> Contract:
    return chain.deploy("FanCollectionFactory", chain.accounts[ADMIN], forwarder.address)


def collection_config(
    chain: Chain,
    *,
    name: str = "Sarabetsu Ambassador",
    symbol: str = "SARA",
    base_uri: str = "https://furusato.example/meta/sara/",
    max_supply: int = 1000,
    category: str = "AMBASSADOR_CARD",
    soulbound: bool = False,
    votes: bool = False,
    royalty_bps: int = 500,
) -> tuple[Any, ...]:
    return (
        name,
        symbol,
        base_uri,
        max_supply,
        CATEGORY[category],
        soulbound,
        votes,
        chain.accounts[ADMIN],
        chain.accounts[ADMIN],
        royalty_bps,
    )


@pytest.fixture(scope="session")
def make_collection(chain: Chain, factory: Contract) -> Callable[..., Contract]:
    """Create a collection through the factory, with MINTER and VERIFIER roles granted."""

    def make(**kw: Any) -> Contract:
        rcpt = chain.send(factory.functions.createCollection(collection_config(chain, **kw)), ADMIN)
        addr = chain.events(factory, rcpt, "CollectionCreated")[0].args.collection
        c = chain.contract("FanCollection", addr)
        chain.send(c.functions.grantRole(chain.role("MINTER_ROLE"), chain.accounts[MINTER]), ADMIN)
        chain.send(
            c.functions.grantRole(chain.role("VERIFIER_ROLE"), chain.accounts[VERIFIER]), ADMIN
        )
        return c

    return make


@pytest.fixture(scope="module")
def plain_collection(make_collection: Callable[..., Contract]) -> Contract:
    return make_collection(category="EVENT_TICKET", name="Toyako Fireworks", symbol="TOYA")


@pytest.fixture(scope="module")
def card_collection(make_collection: Callable[..., Contract]) -> Contract:
    return make_collection(votes=True)


@pytest.fixture(scope="module")
def soulbound_collection(make_collection: Callable[..., Contract]) -> Contract:
    return make_collection(
        soulbound=True,
        category="DONATION_CERTIFICATE",
        name="Mukawa Thanks",
        symbol="MKW",
        royalty_bps=0,
    )


@pytest.fixture(scope="session")
def plain_erc721(chain: Chain) -> Contract:
    return chain.deploy("PlainERC721")


# ---------------------------------------------------------------------- DAO
VOTING_DELAY = 1
VOTING_PERIOD = 10
CARD_QUORUM_PERCENT = 50  # of 5 cards -> quorum 2
RESIDENT_QUORUM_PERCENT = 50  # of 4 residents -> quorum 2
TIMELOCK_DELAY = 60
PROPOSAL_THRESHOLD = 1  # votes
QUORUM_FLOOR = 2  # votes, whatever the supply


def chamber_settings(
    chain: Chain,
    quorum_percent: int,
    *,
    threshold: int = PROPOSAL_THRESHOLD,
    floor: int = QUORUM_FLOOR,
    proposer: int | None = None,
) -> tuple[int, int, int, int, int, str]:
    """TownGovernor.ChamberSettings; `proposer` is the platform proposer (none by default)."""
    platform = chain.accounts[proposer] if proposer is not None else "0x" + "00" * 20
    return (VOTING_DELAY, VOTING_PERIOD, threshold, quorum_percent, floor, platform)


@dataclass
class Dao:
    cards: Contract
    residents: Contract
    treasury: Contract
    card_chamber: Contract
    resident_chamber: Contract
    points: Contract  # an ERC-20 the treasury holds (PlainERC20 test token)


@pytest.fixture(scope="module")
def dao(chain: Chain, forwarder: Contract, make_collection: Callable[..., Contract]) -> Dao:
    """Card chamber + resident chamber, both proposers on one TownTreasury holding ERC-20 and ETH.

    Cards: ALICE 3, BOB 1, CAROL 1 (supply 5, quorum 2).
    Residents: ALICE, BOB, CAROL, DAVE (quorum 2).
    """
    a = chain.accounts
    cards = make_collection(votes=True, name="Sarabetsu Ambassador DAO", symbol="SADAO")
    for holder, n in ((ALICE, 3), (BOB, 1), (CAROL, 1)):
        chain.send(cards.functions.saleMint(a[holder], n), MINTER)
    residents = chain.deploy(
        "ResidentPass",
        "Sarabetsu Resident",
        "SRES",
        "https://furusato.example/meta/res/",
        a[ADMIN],
        forwarder.address,
    )
    for i, holder in enumerate((ALICE, BOB, CAROL, DAVE)):
        chain.send(residents.functions.issue(a[holder], keccak(text=f"person-{i}")), ADMIN)
    treasury = chain.deploy(
        "TownTreasury", TIMELOCK_DELAY, [], [Web3.to_checksum_address("0x" + "00" * 20)], a[ADMIN]
    )
    card_chamber = chain.deploy(
        "TownGovernor",
        "Sarabetsu Card Chamber",
        cards.address,
        treasury.address,
        chamber_settings(chain, CARD_QUORUM_PERCENT),
        forwarder.address,
    )
    resident_chamber = chain.deploy(
        "TownGovernor",
        "Sarabetsu Resident Chamber",
        residents.address,
        treasury.address,
        chamber_settings(chain, RESIDENT_QUORUM_PERCENT),
        forwarder.address,
    )
    for gov in (card_chamber, resident_chamber):
        chain.send(treasury.functions.grantRole(chain.role("PROPOSER_ROLE"), gov.address), ADMIN)
        chain.send(treasury.functions.grantRole(chain.role("CANCELLER_ROLE"), gov.address), ADMIN)
    chain.send(treasury.functions.renounceRole(chain.role("DEFAULT_ADMIN_ROLE"), a[ADMIN]), ADMIN)
    points = chain.deploy("PlainERC20")  # stands in for sale proceeds in a yen stablecoin
    chain.send(points.functions.mint(treasury.address, 1_000_000), ADMIN)
    _eth_to(chain, treasury.address, 10**18)
    chain.mine(1)
    return Dao(cards, residents, treasury, card_chamber, resident_chamber, points)


def _eth_to(chain: Chain, to: str, value: int) -> None:
    tx = chain.w3.eth.send_transaction({"from": chain.accounts[ADMIN], "to": to, "value": value})
    assert chain.w3.eth.wait_for_transaction_receipt(tx).status == 1


@pytest.fixture(scope="module")
def town_poll(chain: Chain, forwarder: Contract) -> Contract:
    return chain.deploy("TownPoll", chain.accounts[ADMIN], forwarder.address)


@pytest.fixture(scope="session")
def gas_report(artifacts_dir: Path) -> Any:
    """Collects gas figures into test-artifacts/gas-report.json (read by the final report)."""
    path = artifacts_dir / "gas-report.json"

    def record(key: str, value: Any) -> None:
        # pytest-xdist workers share this file: read, update and replace it under a lock.
        with open(artifacts_dir / "gas-report.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
            data[key] = value
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
            tmp.replace(path)

    return record


@pytest.fixture(scope="session")
def keys(anvil: Any) -> tuple[str, ...]:
    return tuple(anvil.keys)


@pytest.fixture(scope="session")
def chain_id(session_w3: Web3) -> int:
    return session_w3.eth.chain_id


def forward_request(
    chain: Chain, forwarder: Contract, key: str, to: str, data: bytes, gas: int = 500_000
) -> tuple[Any, ...]:
    """Build a signed ERC2771Forwarder.ForwardRequestData tuple for `data` sent to `to`."""
    frm = Account.from_key(key).address
    deadline = chain.now() + 3600
    nonce = forwarder.functions.nonces(frm).call()
    domain = forwarder_domain(chain.w3.eth.chain_id, forwarder.address)
    types = FORWARD_REQUEST_TYPES
    msg = {
        "from": frm,
        "to": to,
        "value": 0,
        "gas": gas,
        "nonce": nonce,
        "deadline": deadline,
        "data": data,
    }
    sig = chain.sign_typed(key, domain, types, msg)
    return (frm, to, 0, gas, deadline, data, sig)


@pytest.fixture(scope="session")
def relay(chain: Chain, forwarder: Contract) -> Callable[..., Any]:
    """relay(key, contract_fn) -> receipt: RELAYER submits `key`'s call via the forwarder."""

    def do(key: str, fn: Any) -> Any:
        data = bytes.fromhex(fn._encode_transaction_data()[2:])
        req = forward_request(chain, forwarder, key, fn.address, data)
        return chain.send(forwarder.functions.execute(req), RELAYER)

    return do
