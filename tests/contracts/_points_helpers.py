"""Helpers for the RegionPoints / PrimarySale tests: deploy from the committed artifacts, send as
anvil's unlocked dev accounts, decode custom errors by selector, sign EIP-712, move time, and a
small event-driven expiry indexer (the reference for docs/adr/0002-points-expiry.md).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError

ROOT = Path(__file__).resolve().parents[2]
ABI_DIR = ROOT / "backend" / "chain" / "abi"
GAS = 5_000_000
ZERO = "0x" + "00" * 20
DAY = 86_400
DAY_OFFSET = 9 * 3600  # RegionPoints expiry days start at 00:00 JST


def artifact(name: str) -> dict[str, Any]:
    return json.loads((ABI_DIR / f"{name}.json").read_text())


def _abi_type(inp: dict[str, Any]) -> str:
    if inp["type"].startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in inp["components"]) + ")" + inp["type"][5:]
    return inp["type"]


def _selectors() -> dict[str, str]:
    out = {"0x08c379a0": "Error", "0x4e487b71": "Panic"}
    for path in ABI_DIR.glob("*.json"):
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


# ---------------------------------------------------------------------------- expiry indexer


class ExpiryIndexer:
    """The reference sweep: rebuilds every account's lots from RegionPoints events.

    Rules (docs/adr/0002-points-expiry.md): an issuance is a lot expiring on day
    issueDay + expiryDays + 1 (JST days); any debit (payment, transfer, redemption, burn) consumes
    the sender's lots oldest first; a transfer to an active merchant ends the lots (merchant
    revenue does not expire); a transfer to anyone else (OPEN policy) moves the consumed lot
    pieces, with their expiry, to the recipient.
    """

    def __init__(self, points: Contract) -> None:
        self.points = points
        self.w3 = points.w3

    def lots(self) -> dict[str, list[list[int]]]:
        p = self.points
        ev = p.events
        logs = self.w3.eth.get_logs({"address": p.address, "fromBlock": 0, "toBlock": "latest"})
        topic = {
            name: Web3.keccak(text=sig).hex().removeprefix("0x")
            for name, sig in {
                "Transfer": "Transfer(address,address,uint256)",
                "PointsIssued": "PointsIssued(address,uint256,uint256,string)",
                "PointsBatchIssued": "PointsBatchIssued(uint256,uint256,uint256,uint40,string)",
                "ProgrammeSet": "ProgrammeSet(uint256,uint32,bool)",
                "MerchantAdded": "MerchantAdded(address)",
                "MerchantSuspended": "MerchantSuspended(address)",
                "MerchantRemoved": "MerchantRemoved(address)",
            }.items()
        }
        by_topic = {v: k for k, v in topic.items()}
        programmes: dict[int, int] = {}
        merchants: dict[str, bool] = {}
        lots: dict[str, list[list[int]]] = defaultdict(list)
        # group by transaction, keeping order
        txs: dict[tuple[int, int], list[Any]] = defaultdict(list)
        for log in logs:
            txs[(log["blockNumber"], log["transactionIndex"])].append(log)
        block_ts: dict[int, int] = {}
        for (block, _), tx_logs in sorted(txs.items()):
            decoded = []
            for log in tx_logs:
                name = by_topic.get(log["topics"][0].hex().removeprefix("0x"))
                if name:
                    decoded.append((name, getattr(ev, name)().process_log(log)["args"]))
            programme_id = next(
                (
                    a["programmeId"]
                    for n, a in decoded
                    if n in ("PointsIssued", "PointsBatchIssued")
                ),
                None,
            )
            for name, a in decoded:
                if name == "ProgrammeSet":
                    programmes[a["programmeId"]] = a["expiryDays"]
                elif name == "MerchantAdded":
                    merchants[a["merchant"]] = True
                elif name in ("MerchantSuspended", "MerchantRemoved"):
                    merchants[a["merchant"]] = False
                elif name == "Transfer":
                    frm, to, value = a["from"], a["to"], a["value"]
                    if frm == ZERO:
                        days = programmes.get(programme_id, 0)
                        if days:
                            if block not in block_ts:
                                block_ts[block] = self.w3.eth.get_block(block).timestamp
                            day = (block_ts[block] + DAY_OFFSET) // DAY + days + 1
                            lots[to].append([day, value])
                        continue
                    pieces = self._consume(lots[frm], value)
                    if to != ZERO and not merchants.get(to, False):
                        lots[to].extend(pieces)
                        lots[to].sort()
        return lots

    @staticmethod
    def _consume(queue: list[list[int]], value: int) -> list[list[int]]:
        queue.sort()
        taken = []
        while value and queue:
            day, amount = queue[0]
            use = min(amount, value)
            taken.append([day, use])
            value -= use
            if use == amount:
                queue.pop(0)
            else:
                queue[0][1] -= use
        return taken

    def due(self, through_day: int) -> dict[int, dict[str, int]]:
        """{day: {holder: expired amount}} for every lot expiring on or before `through_day`."""
        out: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for holder, queue in self.lots().items():
            for day, amount in queue:
                if day <= through_day and amount:
                    out[day][holder] += amount
        return out

    def sweep(self, expirer: str) -> int:
        """Burn every expired lot and complete every due sweep; return the points expired."""
        p = self.points
        total = 0
        while True:
            due_at = p.functions.sweepDueAt().call()
            if due_at == 0 or due_at > now(self.w3):
                return total
            due_day = (due_at + DAY_OFFSET) // DAY
            for day, holders in sorted(self.due(due_day).items()):
                addrs = list(holders)
                amounts = [holders[h] for h in addrs]
                send(p.functions.expire(day, addrs, amounts), expirer)
                total += sum(amounts)
            send(p.functions.completeSweep(due_day), expirer)
