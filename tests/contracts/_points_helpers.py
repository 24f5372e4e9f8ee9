"""Helpers for the RegionPoints / PrimarySale tests: deploy from the committed artifacts, send as
anvil's unlocked dev accounts, decode custom errors by selector, sign EIP-712, move time, and a
small event-driven expiry indexer (the reference for docs/adr/0002-points-expiry.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import (
    function_abi_to_4byte_selector,
    get_abi_input_types,
    get_abi_output_types,
    keccak,
)
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    ContractPanicError,
)

from backend.points.lots import EVENTS as LOT_EVENTS
from backend.points.lots import LotBook

ROOT = Path(__file__).resolve().parents[2]
ABI_DIR = ROOT / "backend" / "chain" / "abi"
ABI_DIRS = (ABI_DIR, ROOT / "tests" / "abi")  # the app's, then contracts/test/'s
GAS = 5_000_000
ZERO = "0x" + "00" * 20
DAY = 86_400
DAY_OFFSET = 9 * 3600  # RegionPoints expiry days start at 00:00 JST


def artifact(name: str) -> dict[str, Any]:
    path = next(p for p in (d / f"{name}.json" for d in ABI_DIRS) if p.exists())
    return json.loads(path.read_text())


def _abi_type(inp: dict[str, Any]) -> str:
    if inp["type"].startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in inp["components"]) + ")" + inp["type"][5:]
    return inp["type"]


def _selectors() -> dict[str, str]:
    out = {"0x08c379a0": "Error", "0x4e487b71": "Panic"}
    for path in (p for d in ABI_DIRS for p in sorted(d.glob("*.json"))):
        for item in json.loads(path.read_text())["abi"]:
            if item["type"] == "error":
                sig = f"{item['name']}({','.join(_abi_type(i) for i in item['inputs'])})"
                out["0x" + keccak(text=sig)[:4].hex()] = item["name"]
    return out


SELECTORS = _selectors()


def role(name: str) -> bytes:
    return b"\x00" * 32 if name == "DEFAULT_ADMIN_ROLE" else keccak(text=name)


def addr(key: str) -> str:
    return Account.from_key(key).address


def deploy(w3: Web3, name: str, *args: Any, sender: str) -> Contract:
    art = artifact(name)
    factory = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
    tx_hash = factory.constructor(*args).transact({"from": sender, "gas": 8_000_000})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    assert receipt.status == 1, f"deploy {name} failed"
    return w3.eth.contract(address=receipt.contractAddress, abi=art["abi"])


def expect_deploy_revert(w3: Web3, name: str, *args: Any, sender: str, error: str) -> None:
    art = artifact(name)
    factory = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
    with reverts(error):
        factory.constructor(*args).estimate_gas({"from": sender})


def send(fn: Any, sender: str, gas: int = GAS) -> Any:
    """Send a contract call as an unlocked anvil account; return the (successful) receipt."""
    w3 = fn.w3
    tx_hash = fn.transact({"from": sender, "gas": gas})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    assert receipt.status == 1
    return receipt


def error_name(exc: Exception) -> str:
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    if not isinstance(data, str):
        return f"<undecoded {exc!r}>"
    return SELECTORS.get(data[:10], data[:10])


@contextmanager
def reverts(name: str) -> Iterator[None]:
    """Assert the block raises a revert whose custom error (by selector) is `name`."""
    try:
        yield
    except (ContractCustomError, ContractPanicError, ContractLogicError) as exc:
        got = error_name(exc)
        assert got == name, f"expected {name}, got {got} ({exc!r})"
    else:
        raise AssertionError(f"expected revert {name}")


def expect_revert(fn: Any, sender: str, name: str) -> None:
    """The call reverts (checked with eth_call and with a real transaction) with error `name`."""
    with reverts(name):
        fn.call({"from": sender})
    with reverts(name):
        fn.transact({"from": sender})  # estimate_gas fails first, with the same revert data


def now(w3: Web3) -> int:
    return w3.eth.get_block("latest").timestamp


def warp(w3: Web3, to_timestamp: int) -> None:
    """Mine a block at `to_timestamp` (later than the latest block)."""
    w3.provider.make_request("evm_setNextBlockTimestamp", [to_timestamp])
    w3.provider.make_request("evm_mine", [])


def next_block_at(w3: Web3, timestamp: int) -> None:
    """The next transaction is mined in a block at exactly `timestamp`.

    warp() then a send puts the send in the block after the warped one, and anvil dates that
    block by the wall clock's advance since: on a loaded machine a second had passed, and a
    transfer meant for "one second before expiry" ran at the expiry (a full run, stop 28).
    """
    w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])


def day_start(day: int) -> int:
    return day * DAY - DAY_OFFSET


def events(contract: Contract, name: str, receipt: Any) -> list[Any]:
    return list(getattr(contract.events, name)().process_receipt(receipt, errors=_DISCARD))


from web3.logs import DISCARD as _DISCARD  # noqa: E402 - other events in a receipt are skipped


def sign_typed(
    key: str, domain: dict[str, Any], types: dict[str, Any], primary: str, message: dict[str, Any]
) -> bytes:
    full = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            **types,
        },
        "primaryType": primary,
        "domain": domain,
        "message": message,
    }
    return bytes(Account.sign_message(encode_typed_data(full_message=full), key).signature)


def sign_permit(
    key: str,
    token: Contract,
    spender: str,
    value: int,
    deadline: int,
    *,
    chain_id: int | None = None,
    nonce: int | None = None,
) -> tuple[int, bytes, bytes]:
    owner = addr(key)
    domain = {
        "name": token.functions.name().call(),
        "version": "1",
        "chainId": chain_id if chain_id is not None else token.w3.eth.chain_id,
        "verifyingContract": token.address,
    }
    types = {
        "Permit": [
            {"name": "owner", "type": "address"},
            {"name": "spender", "type": "address"},
            {"name": "value", "type": "uint256"},
            {"name": "nonce", "type": "uint256"},
            {"name": "deadline", "type": "uint256"},
        ]
    }
    msg = {
        "owner": owner,
        "spender": spender,
        "value": value,
        "nonce": nonce if nonce is not None else token.functions.nonces(owner).call(),
        "deadline": deadline,
    }
    sig = sign_typed(key, domain, types, "Permit", msg)
    return sig[64], sig[:32], sig[32:64]


# ---------------------------------------------------------------------------- lots from events


# The property tests compare the chain with the LotBook after every step: hundreds of view
# calls and log decodes per test. web3's contract objects look the function up in the whole ABI
# on every call (about 2 ms of CPU each, most of those tests' time), so the hot reads go through
# `view`, which finds the selector and types once, and the logs are matched to their event by
# topic instead of by trying each event's decoder in turn.
_VIEWS: dict[tuple[str, str], tuple[bytes, list[str], list[str]]] = {}


def view(contract: Contract, fn: str, *args: Any) -> Any:
    """`contract.functions.<fn>(*args).call()` for a view function that is not overloaded:
    one value, or a tuple of them."""
    key = (contract.address, fn)
    found = _VIEWS.get(key)
    if found is None:
        abi = getattr(contract.functions, fn).abi
        found = _VIEWS[key] = (
            function_abi_to_4byte_selector(abi),
            get_abi_input_types(abi),
            get_abi_output_types(abi),
        )
    selector, ins, outs = found
    data = "0x" + (selector + abi_encode(ins, list(args))).hex()
    answer = contract.w3.provider.make_request(
        "eth_call", [{"to": contract.address, "data": data}, "latest"]
    )
    assert "error" not in answer, answer
    values = abi_decode(outs, bytes.fromhex(answer["result"].removeprefix("0x")))
    return values[0] if len(values) == 1 else values


def chain_lot_book(points: Contract) -> LotBook:
    """The backend's LotBook fed with every RegionPoints event on chain, in chain order."""
    logs = points.w3.eth.get_logs({"address": points.address, "fromBlock": 0, "toBlock": "latest"})
    topics = {getattr(points.events, name).topic: name for name in LOT_EVENTS}
    book = LotBook(strict=True)
    for log in sorted(logs, key=lambda lg: (lg["blockNumber"], lg["logIndex"])):
        name = topics.get(log["topics"][0].to_0x_hex()) if log["topics"] else None
        if name is None:  # not an event the lots follow
            continue
        args = getattr(points.events, name)().process_log(log)["args"]
        book.apply(name, args, (log["blockNumber"], log["transactionIndex"]))
    return book


def chain_lots(points: Contract, holder: str) -> list[tuple[int, int]]:
    days, amounts = view(points, "lotsOf", holder)
    return list(zip(days, amounts, strict=True))
