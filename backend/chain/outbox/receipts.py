"""Receipts: settle in-flight rows once their transaction (any attempt) is mined with enough
confirmations (confirmed, reverted with its decoded error, or cancelled), and account the gas
paid per town and per user and day."""

from __future__ import annotations

import datetime as dt
import logging
import time
from decimal import Decimal
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.chain.forwarder import ForwardRequest
from backend.chain.outbox.context import OutboxContext, to_hex, today
from backend.chain.outbox.errors import ErrorKind, RpcError, RpcUnavailable, decode_revert
from backend.chain.outbox.lookup import BY_HASH, RECEIPT, ask_attempts, each_attempt, in_block
from backend.chain.outbox.states import IN_FLIGHT, S, transition_batched, write_events
from backend.chain.outbox_models import GasSpend, OutboxAttempt, OutboxTx
from backend.chain.registry import RegistryError, artifact

log = logging.getLogger(__name__)


def _abi_type(inp: dict[str, Any]) -> str:
    """An ABI input's canonical type (tuples spelled out)."""
    t = str(inp["type"])
    if t.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in inp["components"]) + ")" + t[5:]
    return t


def record_spend(session: Session, spends: dict[tuple[str, int], list[int]]) -> None:
    """Add {(scope, id): [wei, count]} to today's gas spend rows (one row lock each)."""
    day = today()
    with session.no_autoflush:
        for (scope, scope_id), (wei, count) in sorted(spends.items()):
            row = session.scalar(
                select(GasSpend)
                .where(
                    GasSpend.scope == scope,
                    GasSpend.scope_id == scope_id,
                    GasSpend.day == day,
                )
                .with_for_update()
            )
            if row is None:
                row = GasSpend(scope=scope, scope_id=scope_id, day=day, wei=0, tx_count=0)
                session.add(row)
            row.wei = Decimal(int(row.wei or 0) + wei)
            row.tx_count = (row.tx_count or 0) + count


# "Another transaction took this row's nonce" fails the row for good, so the answer must hold in
# two rounds at least this many seconds apart. One answer can be wrong: behind a provider's load
# balancer the nonce may come from a node that has the new block and the transaction lookups
# from one that does not have it yet, so a mined transaction looks unknown for a moment.
CONSUMED_GRACE_SECONDS = 2.0


class ReceiptChecker:
    """Reads receipts of in-flight rows and settles them (worker side)."""

    def __init__(self, ctx: OutboxContext) -> None:
        self.ctx = ctx
        self.consumed_grace = CONSUMED_GRACE_SECONDS
        # Row id -> when its nonce was first seen used with none of its transactions known.
        # Per process: a restarted worker asks twice again, which only delays a failure.
        self._suspects: dict[int, float] = {}

    def gas_spent(
        self, session: Session, scope: str, scope_id: int, day: dt.date | None = None
    ) -> int:
        """Wei of gas paid for a town or a user on `day` (today by default)."""
        value = session.scalar(
            select(func.coalesce(func.sum(GasSpend.wei), 0)).where(
                GasSpend.scope == scope,
                GasSpend.scope_id == scope_id,
                GasSpend.day == (day or today()),
            )
        )
        return int(value or 0)

    def check_receipts(self, session: Session, limit: int = 1000) -> dict[str, int]:
        """Settle in-flight rows whose transaction (any attempt) is mined with enough
        confirmations: confirmed, reverted (decoded error) or cancelled. Commits.

        The rows are locked (PostgreSQL; SKIP LOCKED): two checkers at once, in two workers (a
        block watcher's and a beat's), settle disjoint rows, so no row is settled, or its gas
        counted, twice. SQLite has no row locks: one worker process there (outbox_tasks)."""
        rows = list(
            session.scalars(
                select(OutboxTx)
                .where(OutboxTx.state.in_(IN_FLIGHT))
                .order_by(OutboxTx.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
                .execution_options(populate_existing=True)
            )
        )
        counts: dict[str, int] = {}
        if not rows:
            session.commit()
            return counts
        # Nonces are read BEFORE receipts, in a request of their own (a node may answer a batch
        # in any order): a nonce used by then whose hashes have no receipt afterwards, two
        # blocks after it was sent, was taken by another transaction.
        senders = sorted({t.sender_address for t in rows})
        first = self.ctx.rpc.batch(
            [("eth_blockNumber", [])]
            + [("eth_getTransactionCount", [s, "latest"]) for s in senders]
        )
        if isinstance(first[0], RpcError):
            raise RpcUnavailable(str(first[0]))
        head = int(first[0], 16)
        mined_nonce = {
            s: int(v, 16) if isinstance(v, str) else -1
            for s, v in zip(senders, first[1:], strict=True)
        }
        receipts = ask_attempts(self.ctx.rpc, rows, RECEIPT)
        found: dict[int, tuple[OutboxAttempt, dict[str, Any]]] = {}
        unanswered: set[int] = set()  # a receipt the node did not answer: nothing is known
        spends: dict[tuple[str, int], list[int]] = {}
        events: list[dict[str, Any]] = []
        for t, a, r in each_attempt(rows, receipts):
            if isinstance(r, dict):
                found[t.id] = (a, r)
            elif r is not None:
                unanswered.add(t.id)
        consumed = [
            t
            for t in rows
            if t.id not in found
            and t.id not in unanswered
            and t.nonce is not None
            and mined_nonce.get(t.sender_address, -1) > t.nonce
            and head >= (t.sent_block or 0) + 2
        ]
        really = self._really_consumed(consumed)
        for t in self._seen_consumed_twice(rows, really, every_row=len(rows) < limit):
            # Its nonce is used and none of its hashes is on chain: another tx took it.
            hashes = ", ".join(a.tx_hash for a in t.attempts)
            log.warning(
                "outbox tx %s: nonce %s of %s used at block %s, none of its attempts mined (%s)",
                t.id, t.nonce, t.sender_address, head, hashes,
            )  # fmt: skip
            transition_batched(t, S.FAILED, "nonce consumed by another transaction", events)
            t.error_kind = ErrorKind.NONCE_TOO_LOW.value
            t.error = (
                f"nonce {t.nonce} was used by another transaction of {t.sender_address}; "
                f"none of this row's transactions ({hashes}) was mined"
            )
            counts["failed"] = counts.get("failed", 0) + 1
        for t in rows:
            if t.id not in found:
                continue
            attempt, receipt = found[t.id]
            block = int(receipt["blockNumber"], 16)
            if block > head - self.ctx.settings.confirmations_for(self.ctx.chain_id):
                continue
            gas_used = int(receipt["gasUsed"], 16)
            fee = gas_used * int(receipt.get("effectiveGasPrice", "0x0"), 16)
            t.block_number, t.gas_used, t.fee_paid = block, gas_used, Decimal(fee)
            t.tx_hash = attempt.tx_hash
            for scope, scope_id in (("town", t.town_id), ("user", t.user_id)):
                if scope_id is not None:
                    acc = spends.setdefault((scope, scope_id), [0, 0])
                    acc[0] += fee
                    acc[1] += 1
            if attempt.kind == "cancel":
                new = S.CANCELLED
                reason = "cancel no-op mined"
            elif int(receipt["status"], 16) == 1:
                new, reason = S.CONFIRMED, f"mined in block {block}"
            else:
                new = S.REVERTED
                t.error_kind = ErrorKind.REVERTED.value
                t.error = self._revert_reason(t, block)
                reason = f"reverted in block {block}: {t.error}"
            transition_batched(t, new, reason, events)
            counts[new.value] = counts.get(new.value, 0) + 1
        write_events(session, events)
        record_spend(session, spends)
        session.commit()
        return counts

    def _seen_consumed_twice(
        self, rows: list[OutboxTx], consumed: list[OutboxTx], *, every_row: bool
    ) -> list[OutboxTx]:
        """The rows of `consumed` that were so in an earlier round too, at least
        `consumed_grace` seconds ago. The others are remembered, and forgotten once a round
        sees them otherwise (`every_row`: `rows` holds every row in flight, so a remembered
        row not among them has settled)."""
        now = time.monotonic()
        suspect = {t.id for t in consumed}
        seen = {t.id for t in rows}
        for tx_id in list(self._suspects):
            if tx_id not in suspect and (tx_id in seen or every_row):
                del self._suspects[tx_id]
        out = []
        for t in consumed:
            first = self._suspects.get(t.id)
            if first is None:
                self._suspects[t.id] = now
                log.info(
                    "outbox tx %s: nonce %s is used and none of its transactions is known yet; "
                    "asked again next round",
                    t.id,
                    t.nonce,
                )
            elif now - first >= self.consumed_grace:
                del self._suspects[t.id]
                out.append(t)
        return out

    def _really_consumed(self, rows: list[OutboxTx]) -> list[OutboxTx]:
        """The rows of `rows` none of whose attempts the node knows as mined.

        A row is failed for good on this answer, so it is asked again, transaction by
        transaction: a receipt missing for a mined transaction (a node still writing the block
        it has counted the nonce of, or a receipt batch answered short) must not fail a row
        whose transaction went through (CI, stop 24: a town's last set-up step)."""
        answers = ask_attempts(self.ctx.rpc, rows, BY_HASH)
        # Alive: mined (its receipt comes next round), or no answer (RpcError).
        return [
            t
            for t in rows
            if not any(isinstance(tx, RpcError) or in_block(tx) for tx in answers[t.id])
        ]

    def created_address(
        self, tx_hash: str, event: tuple[str, str, str] | None = None
    ) -> str | None:
        """The address a mined transaction created: its receipt's `contractAddress` (a
        contract creation), or with `event=(artifact, event name, argument)` that address
        argument of the first such event in its logs (a contract made by a factory). None
        while there is no receipt. Raises RegistryError for an unknown artifact or event."""
        receipt = self.ctx.rpc.call("eth_getTransactionReceipt", [tx_hash])
        if not isinstance(receipt, dict):
            return None
        if event is None:
            created = receipt.get("contractAddress")
            return str(to_checksum_address(created)) if created else None
        art_name, event_name, arg = event
        events = [e for e in artifact(art_name).abi if e.get("type") == "event"]
        abi = next((e for e in events if e["name"] == event_name), None)
        if abi is None:
            raise RegistryError(f"{art_name} has no event {event_name}")
        types = ",".join(_abi_type(i) for i in abi["inputs"])
        topic0 = "0x" + keccak(text=f"{event_name}({types})").hex().removeprefix("0x")
        for entry in receipt.get("logs", []):
            topics = entry.get("topics") or []
            if not topics or topics[0].lower() != topic0:
                continue
            indexed = [i for i in abi["inputs"] if i.get("indexed")]
            plain = [i for i in abi["inputs"] if not i.get("indexed")]
            for n, inp in enumerate(indexed, start=1):
                if inp["name"] == arg:
                    return str(to_checksum_address("0x" + topics[n][-40:]))
            values = abi_decode([_abi_type(i) for i in plain], bytes.fromhex(entry["data"][2:]))
            for inp, value in zip(plain, values, strict=True):
                if inp["name"] == arg:
                    return str(to_checksum_address(value))
        raise RegistryError(f"transaction {tx_hash} emitted no {event_name}")

    def _revert_reason(self, t: OutboxTx, block: int) -> str:
        """Replay the call at the block before to read the custom error (best effort).

        The forwarder wraps a failed inner call in FailedCall(); replaying the inner call as the
        forwarder (ERC-2771 appends the user's address) recovers the target's own error.
        """
        try:
            if t.forward_request:
                fr = ForwardRequest.from_json(t.forward_request)
                call = {
                    "from": self.ctx.forwarder_address,
                    "to": fr.to,
                    "data": fr.data + fr.from_address.lower().removeprefix("0x"),
                }
            else:
                call = self.ctx.call_params(t)
            self.ctx.rpc.call("eth_call", [call, to_hex(max(block - 1, 0))])
        except RpcError as exc:
            return decode_revert(exc.data)
        except RpcUnavailable:
            return "unknown revert (RPC unavailable)"
        return "reverted (replay succeeded: out of gas or state changed)"
