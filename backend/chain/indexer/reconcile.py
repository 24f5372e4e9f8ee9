"""Reconciliation: the SQL projection against chain reads."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from eth_abi import encode as abi_encode
from eth_utils import keccak
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from backend.chain.indexer.decoding import _checksum
from backend.chain.indexer.events import ZERO_ADDRESS
from backend.chain.indexer_models import (
    ChainEventRecord,
    ReconciliationReport,
    TokenBalance,
    TokenOwner,
    WatchedContract,
)
from backend.chain.registry import artifact
from backend.chain.rpc import JsonRpc, RpcError


@dataclass(frozen=True)
class Difference:
    """One place where the SQL projection and the chain disagree."""

    chain_id: int
    contract_address: str
    kind: str  # "balance", "total_supply", "owner", "nft_balance"
    subject: str  # holder address, token id, or "" for totals
    block_number: int
    sql_value: str
    chain_value: str


def _selector(signature: str) -> str:
    return "0x" + keccak(text=signature)[:4].hex()


def _has_function(artifact_name: str, name: str) -> bool:
    return any(
        i.get("type") == "function" and i.get("name") == name for i in artifact(artifact_name).abi
    )


def _transfer_kind(artifact_name: str) -> str | None:
    for item in artifact(artifact_name).abi:
        if item.get("type") == "event" and item.get("name") == "Transfer":
            names = [i["name"] for i in item["inputs"]]
            if "value" in names:
                return "erc20"
            if "tokenId" in names:
                return "erc721"
    return None


def reconcile(engine: Engine, rpc: JsonRpc, chain_id: int) -> tuple[int, list[Difference]]:
    """Compare every projected ERC-20 balance (and total supply) and ERC-721 owner with chain
    reads at the block each contract is indexed to. Returns (values checked, differences)."""
    diffs: list[Difference] = []
    checked = 0
    with Session(engine) as s:
        watched = list(
            s.scalars(select(WatchedContract).where(WatchedContract.chain_id == chain_id))
        )
        for w in watched:
            kind = _transfer_kind(w.artifact)
            if (
                kind is None
                or w.synced_to < w.from_block
                or not _has_function(w.artifact, "balanceOf")
            ):
                continue
            block = hex(w.synced_to)

            def call(data: str, block: str = block, to: str = w.address) -> tuple[str, list[Any]]:
                return ("eth_call", [{"to": to, "data": data}, block])

            if kind == "erc20":
                rows = s.execute(
                    select(TokenBalance.holder, TokenBalance.amount).where(
                        TokenBalance.chain_id == chain_id,
                        TokenBalance.contract_address == w.address,
                    )
                ).all()
                # The projection sums Transfer events; a token whose balanceOf leaves out
                # expired points (RegionPoints) reports that sum as rawBalanceOf.
                sel = _selector(
                    "rawBalanceOf(address)"
                    if _has_function(w.artifact, "rawBalanceOf")
                    else "balanceOf(address)"
                )
                calls = [call(sel + abi_encode(["address"], [h]).hex()) for h, _ in rows]
                has_supply = _has_function(w.artifact, "totalSupply")
                if has_supply:
                    calls.append(call(_selector("totalSupply()")))
                results = _batched(rpc, calls)
                for (holder, amount), raw in zip(rows, results, strict=False):
                    checked += 1
                    if int(raw, 16) != int(amount):
                        diffs.append(
                            Difference(
                                chain_id,
                                w.address,
                                "balance",
                                holder,
                                w.synced_to,
                                str(int(amount)),
                                str(int(raw, 16)),
                            )
                        )
                if has_supply:
                    checked += 1
                    total = sum(int(a) for _, a in rows)
                    on_chain = int(results[-1], 16)
                    if total != on_chain:
                        diffs.append(
                            Difference(
                                chain_id,
                                w.address,
                                "total_supply",
                                "",
                                w.synced_to,
                                str(total),
                                str(on_chain),
                            )
                        )
            else:
                owned = s.execute(
                    select(TokenOwner.token_id, TokenOwner.owner).where(
                        TokenOwner.chain_id == chain_id, TokenOwner.contract_address == w.address
                    )
                ).all()
                sel = _selector("ownerOf(uint256)")
                results = _batched(
                    rpc, [call(sel + abi_encode(["uint256"], [int(t)]).hex()) for t, _ in owned]
                )
                counts: dict[str, int] = defaultdict(int)
                for (token_id, owner), raw in zip(owned, results, strict=True):
                    checked += 1
                    counts[owner] += 1
                    chain_owner = (
                        _checksum("0x" + raw[-40:]) if raw and raw != "0x" else ZERO_ADDRESS
                    )
                    if chain_owner != owner:
                        diffs.append(
                            Difference(
                                chain_id,
                                w.address,
                                "owner",
                                str(int(token_id)),
                                w.synced_to,
                                owner,
                                chain_owner,
                            )
                        )
                sel = _selector("balanceOf(address)")
                holders = sorted(counts)
                results = _batched(
                    rpc, [call(sel + abi_encode(["address"], [h]).hex()) for h in holders]
                )
                for holder, raw in zip(holders, results, strict=True):
                    checked += 1
                    if int(raw, 16) != counts[holder]:
                        diffs.append(
                            Difference(
                                chain_id,
                                w.address,
                                "nft_balance",
                                holder,
                                w.synced_to,
                                str(counts[holder]),
                                str(int(raw, 16)),
                            )
                        )
    return checked, diffs


def _batched(rpc: JsonRpc, calls: list[tuple[str, list[Any]]], size: int = 200) -> list[Any]:
    out: list[Any] = []
    for i in range(0, len(calls), size):
        try:
            out += rpc.batch(calls[i : i + size])
        except RpcError:
            # A reverting call (e.g. ownerOf a burnt token) fails the batch: go one by one.
            for method, params in calls[i : i + size]:
                try:
                    out.append(rpc.call(method, params))
                except RpcError:
                    out.append("0x")
    return out


def store_report(engine: Engine, chain_id: int, checked: int, diffs: list[Difference]) -> int:
    """Save a reconciliation report; returns its id."""
    with Session(engine) as s, s.begin():
        report = ReconciliationReport(
            chain_id=chain_id,
            checked=checked,
            ok=not diffs,
            differences=[d.__dict__ for d in diffs],
        )
        s.add(report)
        s.flush()
        return report.id


def projection_snapshot(engine: Engine, chain_id: int) -> dict[str, Any]:
    """Everything the indexer projects for a chain, as plain sorted data (tests, re-scan diff)."""
    with Session(engine) as s:
        events = s.execute(
            select(
                ChainEventRecord.contract_address,
                ChainEventRecord.event_name,
                ChainEventRecord.args,
                ChainEventRecord.block_number,
                ChainEventRecord.block_hash,
                ChainEventRecord.tx_hash,
                ChainEventRecord.log_index,
            )
            .where(ChainEventRecord.chain_id == chain_id)
            .order_by(ChainEventRecord.block_number, ChainEventRecord.log_index)
        ).all()
        balances = s.execute(
            select(TokenBalance.contract_address, TokenBalance.holder, TokenBalance.amount)
            .where(TokenBalance.chain_id == chain_id, TokenBalance.amount != 0)
            .order_by(TokenBalance.contract_address, TokenBalance.holder)
        ).all()
        owners = s.execute(
            select(TokenOwner.contract_address, TokenOwner.token_id, TokenOwner.owner)
            .where(TokenOwner.chain_id == chain_id)
            .order_by(TokenOwner.contract_address, TokenOwner.token_id)
        ).all()
        count = s.scalar(
            select(func.count())
            .select_from(ChainEventRecord)
            .where(ChainEventRecord.chain_id == chain_id)
        )
    return {
        "events": [tuple(r) for r in events],
        "event_count": count,
        "balances": [(c, h, int(a)) for c, h, a in balances],
        "owners": [(c, int(t), o) for c, t, o in owners],
    }
