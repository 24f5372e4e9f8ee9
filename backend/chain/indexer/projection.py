"""The token projection: ERC-20 balances and ERC-721 owners from Transfer events."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from backend.chain.indexer.events import (
    _HANDLERS,
    ZERO_ADDRESS,
    ChainEvent,
    Handler,
    _Fold,
    _FoldStep,
)
from backend.chain.indexer.storage import _upsert
from backend.chain.indexer_models import (
    TokenBalance,
    TokenOwner,
)
from backend.core.upsert import insert_for

# ERC-20 balances and ERC-721 owners from Transfer events: chain-level, not a domain, and the
# projection that reconciliation checks. Registered like any domain handler.


def _balance_deltas(events: Sequence[ChainEvent], sign: int) -> dict[tuple[str, str], int]:
    deltas: dict[tuple[str, str], int] = defaultdict(int)
    for ev in events:
        value = int(ev.args["value"]) * sign
        if ev.args["from"] != ZERO_ADDRESS:
            deltas[(ev.contract_address, ev.args["from"])] -= value
        if ev.args["to"] != ZERO_ADDRESS:
            deltas[(ev.contract_address, ev.args["to"])] += value
    return deltas


def _apply_balances(s: Session, chain_id: int, deltas: dict[tuple[str, str], int]) -> None:
    rows = [
        {"chain_id": chain_id, "contract_address": c, "holder": h, "amount": d}
        for (c, h), d in deltas.items()
        if d
    ]
    if not rows:
        return
    stmt = insert_for(s, TokenBalance)
    stmt = stmt.on_conflict_do_update(
        index_elements=["chain_id", "contract_address", "holder"],
        set_={"amount": TokenBalance.__table__.c.amount + stmt.excluded.amount},
    )
    s.execute(stmt, rows)


def _set_owners(s: Session, chain_id: int, owners: dict[tuple[str, int], str | None]) -> None:
    gone = [(c, t) for (c, t), o in owners.items() if o is None]
    for c, t in gone:
        s.execute(
            delete(TokenOwner).where(
                TokenOwner.chain_id == chain_id,
                TokenOwner.contract_address == c,
                TokenOwner.token_id == Decimal(t),
            )
        )
    _upsert(
        s,
        TokenOwner,
        [
            {"chain_id": chain_id, "contract_address": c, "token_id": Decimal(t), "owner": o}
            for (c, t), o in owners.items()
            if o is not None
        ],
        ["chain_id", "contract_address", "token_id"],
        ["owner"],
    )


def _transfers(events: Sequence[ChainEvent]) -> tuple[list[ChainEvent], list[ChainEvent]]:
    fungible = [ev for ev in events if "value" in ev.args]
    nft = [ev for ev in events if "tokenId" in ev.args]
    return fungible, nft


def apply_transfers(s: Session, events: Sequence[ChainEvent]) -> None:
    fungible, nft = _transfers(events)
    if fungible:
        _apply_balances(s, fungible[0].chain_id, _balance_deltas(fungible, 1))
    if nft:
        owners: dict[tuple[str, int], str | None] = {}
        for ev in nft:
            to = ev.args["to"]
            owners[(ev.contract_address, int(ev.args["tokenId"]))] = (
                None if to == ZERO_ADDRESS else to
            )
        _set_owners(s, nft[0].chain_id, owners)


def revert_transfers(s: Session, events: Sequence[ChainEvent]) -> None:
    """Undo Transfer events; `events` come newest first."""
    fungible, nft = _transfers(events)
    if fungible:
        _apply_balances(s, fungible[0].chain_id, _balance_deltas(fungible, -1))
    if nft:
        owners: dict[tuple[str, int], str | None] = {}
        for ev in nft:  # newest first: the last write is the oldest event's `from`
            frm = ev.args["from"]
            owners[(ev.contract_address, int(ev.args["tokenId"]))] = (
                None if frm == ZERO_ADDRESS else frm
            )
        _set_owners(s, nft[0].chain_id, owners)


def _fold_transfer(state: dict[str, Any], contract: str, args: dict[str, Any]) -> None:
    """apply_transfers one event at a time: net balance deltas and last owners of the chunk."""
    if "value" in args:
        deltas = state.get("deltas")
        if deltas is None:
            deltas = state["deltas"] = defaultdict(int)
        value = int(args["value"])
        if args["from"] != ZERO_ADDRESS:
            deltas[(contract, args["from"])] -= value
        if args["to"] != ZERO_ADDRESS:
            deltas[(contract, args["to"])] += value
    if "tokenId" in args:
        to = args["to"]
        owners = state.get("owners")
        if owners is None:
            owners = state["owners"] = {}
        owners[(contract, int(args["tokenId"]))] = None if to == ZERO_ADDRESS else to


def _bind_transfer(state: dict[str, Any], contract: str, names: tuple[str, ...]) -> _FoldStep:
    """_fold_transfer for one contract's Transfer with these argument names, on value tuples."""
    if names == ("from", "to", "value"):
        deltas: defaultdict[tuple[str, str], int] = state.setdefault("deltas", defaultdict(int))

        def erc20(values: tuple[Any, ...]) -> None:
            frm, to, value = values
            if frm != ZERO_ADDRESS:
                deltas[(contract, frm)] -= value
            if to != ZERO_ADDRESS:
                deltas[(contract, to)] += value

        return erc20
    if names == ("from", "to", "tokenId"):
        owners: dict[tuple[str, int], str | None] = state.setdefault("owners", {})

        def erc721(values: tuple[Any, ...]) -> None:
            _, to, token_id = values
            owners[(contract, token_id)] = None if to == ZERO_ADDRESS else to

        return erc721

    def other(values: tuple[Any, ...]) -> None:
        _fold_transfer(state, contract, dict(zip(names, values, strict=True)))

    return other


def _finish_transfers(s: Session, chain_id: int, state: dict[str, Any]) -> None:
    if "deltas" in state:
        _apply_balances(s, chain_id, state["deltas"])
    if "owners" in state:
        _set_owners(s, chain_id, state["owners"])


# One upsert per (token, holder) per chunk, folded as the chunk is decoded.
TOKEN_PROJECTION = Handler(
    "Transfer",
    apply_transfers,
    revert_transfers,
    fold=_Fold(_fold_transfer, _finish_transfers, _bind_transfer),
)
_HANDLERS.append(TOKEN_PROJECTION)
