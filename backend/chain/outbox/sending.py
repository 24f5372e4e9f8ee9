"""The worker side of the outbox: nonces, batches, gas and fees, re-pricing of stuck rows.

1. A nonce is assigned under a row lock on the sender (`OutboxSender`, SELECT ... FOR UPDATE)
   and the signed transaction is COMMITTED before it is broadcast. A worker killed at any point
   re-broadcasts the same bytes ("already known" / "nonce too low" + receipt = sent), so no
   action runs twice and no nonce is skipped.
2. Once a row holds a nonce it keeps it until that nonce is consumed on chain: by the call, a
   re-priced copy, or a 0-value cancel no-op (past the deadline). Nonces are reconciled with the
   chain when a process first uses a sender and after every nonce error; holes are filled with
   no-ops.
3. A relayer that cannot pay leaves its work queued (nonce kept) and raises an alert; the next
   run after a top-up sends it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.chain.outbox.context import ESTIMATE_MARGIN, GWEI, OutboxContext
from backend.chain.outbox.errors import ErrorKind, RpcError, decode_revert
from backend.chain.outbox.lookup import BY_HASH, RECEIPT, ask_attempts
from backend.chain.outbox.signing import sign_call, sign_cancel
from backend.chain.outbox.states import (
    FILLER,
    IN_FLIGHT,
    S,
    transition,
    transition_batched,
    write_events,
)
from backend.chain.outbox_models import OutboxAlert, OutboxSender, OutboxTx, OutboxTxEvent
from backend.core.db import utcnow

log = logging.getLogger(__name__)

BUMP_NUMERATOR, BUMP_DENOMINATOR = 9, 8  # re-price by at least +12.5%


@dataclass
class SendReport:
    sent: int = 0
    waiting_for_funds: int = 0
    failed: int = 0
    cancelled: int = 0
    errors: dict[str, int] = field(default_factory=dict)


def raise_alert(session: Session, kind: str, subject: str, message: str) -> None:
    open_alert = session.scalar(
        select(OutboxAlert).where(
            OutboxAlert.kind == kind,
            OutboxAlert.subject == subject,
            OutboxAlert.resolved_at.is_(None),
        )
    )
    if open_alert is None:
        log.error("ALERT %s %s: %s", kind, subject, message)
        session.add(OutboxAlert(kind=kind, subject=subject, message=message))


def resolve_alerts(session: Session, kind: str, subject: str) -> None:
    for alert in session.scalars(
        select(OutboxAlert).where(
            OutboxAlert.kind == kind,
            OutboxAlert.subject == subject,
            OutboxAlert.resolved_at.is_(None),
        )
    ):
        alert.resolved_at = utcnow()
        log.warning("resolved %s %s", kind, subject)


class BatchSender:
    """Signs and broadcasts queued rows per sender key, and re-prices the stuck ones."""

    def __init__(self, ctx: OutboxContext) -> None:
        self.ctx = ctx
        self.batch_size = 200
        self._reconciled: set[str] = set()

    # ---------------------------------------------------------------- nonces

    def lock_sender(self, session: Session, address: str) -> OutboxSender:
        sender = session.scalar(
            select(OutboxSender)
            .where(OutboxSender.address == address)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if sender is None:
            nonce = int(self.ctx.rpc.call("eth_getTransactionCount", [address, "pending"]), 16)
            try:
                with session.begin_nested():
                    session.add(
                        OutboxSender(address=address, next_nonce=nonce, reconciled_at=utcnow())
                    )
            except IntegrityError:
                pass
            sender = session.scalar(
                select(OutboxSender).where(OutboxSender.address == address).with_for_update()
            )
            assert sender is not None
            self._reconciled.add(address)
        return sender

    def reconcile(self, session: Session, sender: OutboxSender) -> None:
        """Line the sender's next nonce up with the chain (caller holds the sender lock).

        The chain ahead of us (the key was used elsewhere): jump forward. The chain behind us
        (assigned nonces not in the node's pool): rows still holding them are re-broadcast by
        the next send; a nonce no live row holds is filled with a no-op so later ones can land.
        """
        address = sender.address
        chain_next = int(self.ctx.rpc.call("eth_getTransactionCount", [address, "pending"]), 16)
        if chain_next > sender.next_nonce:
            log.warning(
                "%s: chain nonce %d ahead of ours %d", address, chain_next, sender.next_nonce
            )
            sender.next_nonce = chain_next
        elif chain_next < sender.next_nonce:
            held = set(
                session.scalars(
                    select(OutboxTx.nonce).where(
                        OutboxTx.sender_address == address,
                        OutboxTx.nonce >= chain_next,
                        OutboxTx.state.in_([S.QUEUED.value, *IN_FLIGHT]),
                    )
                )
            )
            for nonce in range(chain_next, sender.next_nonce):
                if nonce not in held:
                    self.add_filler(session, address, nonce)
            # Rows sent earlier whose transactions the node forgot go out again now.
            for tx in session.scalars(
                select(OutboxTx).where(
                    OutboxTx.sender_address == address,
                    OutboxTx.nonce >= chain_next,
                    OutboxTx.state.in_(IN_FLIGHT),
                    OutboxTx.raw_tx.is_not(None),
                )
            ):
                try:
                    self.ctx.rpc.call("eth_sendRawTransaction", [tx.raw_tx])
                except RpcError as exc:
                    log.info("re-broadcast of outbox tx %s: %s", tx.id, exc.message)
        sender.reconciled_at = utcnow()
        self._reconciled.add(address)

    def add_filler(self, session: Session, address: str, nonce: int) -> OutboxTx:
        log.warning("%s: filling nonce hole %d with a no-op", address, nonce)
        tx = OutboxTx(
            idempotency_key=f"filler:{self.ctx.chain_id}:{address}:{nonce}:{utcnow().timestamp()}",
            payload_hash="0x",
            state=S.QUEUED.value,
            sender_kind=FILLER,
            sender_address=address,
            nonce=nonce,
            contract=address,
            function="noop",
            args=[],
            call_data="0x",
            value=Decimal(0),
            gas_limit=21_000,
        )
        session.add(tx)
        session.flush()
        session.add(OutboxTxEvent(tx_id=tx.id, from_state=None, to_state=S.QUEUED, reason="filler"))
        return tx

    # ---------------------------------------------------------------- send (worker side)

    def senders_with_work(self, session: Session) -> list[str]:
        return list(
            session.scalars(
                select(OutboxTx.sender_address)
                .where(OutboxTx.state == S.QUEUED.value)
                .group_by(OutboxTx.sender_address)
            )
        )

    def _fees(self) -> tuple[int, int]:
        block, tip = self.ctx.rpc.batch(
            [("eth_getBlockByNumber", ["pending", False]), ("eth_maxPriorityFeePerGas", [])]
        )
        base = int(block["baseFeePerGas"], 16) if isinstance(block, dict) else GWEI
        tip_wei = int(tip, 16) if isinstance(tip, str) else GWEI
        tip_wei = max(tip_wei, GWEI // 1000)
        return base * 2 + tip_wei, tip_wei

    def send_pending(self, session: Session, sender_address: str) -> SendReport:
        """Sign and broadcast the sender's queued rows, in nonce order, batch by batch.

        Commits. Raises RpcUnavailable when the node does not answer (the task retries).
        """
        report = SendReport()
        address = str(to_checksum_address(sender_address))
        while self._send_batch(session, address, report):
            pass
        return report

    def _send_batch(self, session: Session, address: str, report: SendReport) -> bool:
        """One batch; True when another batch may have work."""
        account = self.ctx.keys.account(address)
        sender = self.lock_sender(session, address)
        if address not in self._reconciled:
            self.reconcile(session, sender)
        # Rows holding a nonce first (they block the ones after them), then new rows by id.
        rows = list(
            session.scalars(
                select(OutboxTx)
                .where(OutboxTx.sender_address == address, OutboxTx.state == S.QUEUED.value)
                .order_by(OutboxTx.nonce.is_(None), OutboxTx.nonce, OutboxTx.id)
                .limit(self.batch_size)
                .execution_options(populate_existing=True)
            )
        )
        if not rows:
            session.commit()
            return False
        now = utcnow()
        balance = int(self.ctx.rpc.call("eth_getBalance", [address, "pending"]), 16)
        max_fee, tip = self._fees()
        # Rows not yet holding a nonce: drop the expired, estimate the admin calls.
        for t in rows:
            if t.nonce is None and t.deadline_at is not None and t.deadline_at <= now:
                transition(t, S.CANCELLED, "deadline passed before it was sent")
                report.cancelled += 1
        self._estimate(
            address, [t for t in rows if t.state == S.QUEUED.value and t.gas_limit is None], report
        )
        # Pay in nonce order while the balance lasts; the rest waits for a top-up.
        ready: list[OutboxTx] = []
        budget = balance
        waiting = 0
        for t in rows:
            if t.state != S.QUEUED.value or t.gas_limit is None:
                continue  # settled above, or no estimate yet (it holds no nonce)
            expired = t.deadline_at is not None and t.deadline_at <= now
            if t.nonce is not None and expired and t.attempts and t.attempts[-1].kind != "cancel":
                bumped = int(t.max_fee_per_gas or 0) * 9 // 8 + 1
                sign_cancel(self.ctx, t, account, max(max_fee, bumped), tip)
            fee = int(t.max_fee_per_gas) if t.raw_tx and t.max_fee_per_gas else max_fee
            cost = (21_000 if t.attempts and t.attempts[-1].kind == "cancel" else t.gas_limit) * fee
            cost += int(t.value)
            if waiting or cost > budget:
                waiting += 1
                continue
            budget -= cost
            ready.append(t)
        report.waiting_for_funds += waiting
        self._funds_alert(session, address, balance, waiting)
        for t in ready:
            if t.nonce is None:
                t.nonce = sender.next_nonce
                sender.next_nonce += 1
            if t.raw_tx is None:
                sign_call(self.ctx, t, account, max_fee, tip)
        session.commit()  # signed and saved before any broadcast: a crash re-sends the same bytes
        if not ready:
            return False
        answers = self.ctx.rpc.batch(
            [("eth_sendRawTransaction", [t.raw_tx]) for t in ready] + [("eth_blockNumber", [])]
        )
        head_answer = answers.pop()
        head = int(head_answer, 16) if isinstance(head_answer, str) else 0
        self.lock_sender(session, address)  # serialise the bookkeeping with other workers
        ids = [t.id for t in ready]
        fresh = {
            t.id: t
            for t in session.scalars(
                select(OutboxTx)
                .where(OutboxTx.id.in_(ids))
                .execution_options(populate_existing=True)
            )
        }
        again = len(ready) == len(rows)
        events: list[dict[str, Any]] = []
        for tx_id, res in zip(ids, answers, strict=True):
            t = fresh[tx_id]
            if t.state != S.QUEUED.value:
                continue  # another worker recorded it meanwhile
            kind = res.kind if isinstance(res, RpcError) else None
            if kind is None or kind is ErrorKind.ALREADY_KNOWN:
                reason = "broadcast" if kind is None else "already known"
                self._mark_sent(t, head, now, reason, events)
                report.sent += 1
                continue
            assert isinstance(res, RpcError)
            report.errors[kind.value] = report.errors.get(kind.value, 0) + 1
            t.error_kind, t.error = kind.value, res.message
            again = False
            if kind is ErrorKind.NONCE_TOO_LOW:
                known = self._node_knows_an_attempt(t)
                if known:
                    self._mark_sent(
                        t, head, now, "nonce too low: the node has our transaction", events
                    )
                    report.sent += 1
                elif known is False:  # another transaction took the nonce: a new one next
                    self._release_nonce(t)
                    self._reconciled.discard(address)
                    again = True
                # None: the node did not answer for every attempt. The row keeps its nonce and
                # bytes and is asked about again next run: a fresh nonce for a transaction that
                # was mined after all would run the call twice.
            elif kind is ErrorKind.REPLACEMENT_UNDERPRICED:
                # Another transaction of ours holds this nonce in the pool: outbid it next run.
                fee = int(t.max_fee_per_gas or max_fee) * 9 // 8 + 1
                sign_call(
                    self.ctx, t, account, fee, int(t.max_priority_fee_per_gas or tip) * 9 // 8 + 1
                )
            elif kind is ErrorKind.INSUFFICIENT_FUNDS:
                report.waiting_for_funds += 1
                raise_alert(
                    session,
                    "relayer_low_funds",
                    address,
                    f"{address} cannot pay for its queued transactions; they wait for a top-up",
                )
        write_events(session, events)
        session.commit()
        return again

    def _estimate(self, address: str, rows: list[OutboxTx], report: SendReport) -> None:
        """Gas limits of admin calls: estimated against "pending", with a margin."""
        if not rows:
            return
        calls: list[tuple[str, list[Any]]] = []
        for t in rows:
            calls.append(("eth_estimateGas", [self.ctx.call_params(t), "pending"]))
        for t, est in zip(rows, self.ctx.rpc.batch(calls), strict=True):
            if not isinstance(est, RpcError):
                t.gas_limit = int(int(est, 16) * ESTIMATE_MARGIN)
            elif est.kind is ErrorKind.REVERTED or est.data:
                t.error_kind = ErrorKind.REVERTED.value
                t.error = decode_revert(est.data)
                transition(t, S.FAILED, f"estimate reverted: {t.error}")
                report.failed += 1
            else:
                t.error_kind, t.error = est.kind.value, est.message

    @staticmethod
    def _mark_sent(
        t: OutboxTx, head: int, now: dt.datetime, reason: str, events: list[dict[str, Any]]
    ) -> None:
        t.sent_block = head
        t.broadcast_at = now
        t.error_kind = t.error = None
        transition_batched(t, S.SENT, reason, events)

    def _node_knows_an_attempt(self, t: OutboxTx) -> bool | None:
        """Whether the node has one of the row's transactions, mined or in its pool (True),
        none of them (False), or did not say for each (None: an error answered, no verdict).

        Receipts first; a transaction without one is then asked for by hash, as the receipt
        check does before it fails a row (receipts.py `_really_consumed`): a node may count a
        nonce before the receipt of the block that used it can be read."""
        receipts = ask_attempts(self.ctx.rpc, [t], RECEIPT)[t.id]
        if any(isinstance(r, dict) for r in receipts):
            return True
        found = ask_attempts(self.ctx.rpc, [t], BY_HASH)[t.id]
        if any(isinstance(tx, dict) for tx in found):
            return True
        if any(isinstance(r, RpcError) for r in [*receipts, *found]):
            return None
        return False

    @staticmethod
    def _release_nonce(t: OutboxTx) -> None:
        """Give a row whose nonce someone else consumed a fresh one (it never reached chain)."""
        t.nonce = None
        t.raw_tx = None
        t.tx_hash = None

    # ---------------------------------------------------------------- alerts

    def _funds_alert(self, session: Session, address: str, balance: int, waiting: int) -> None:
        low = self.ctx.settings.relayer_low_balance_wei
        if waiting:
            raise_alert(
                session,
                "relayer_low_funds",
                address,
                f"{address} holds {balance} wei and cannot pay for {waiting} queued "
                "transactions; they wait in the queue until it is topped up",
            )
        elif balance >= low:
            resolve_alerts(session, "relayer_low_funds", address)
        if balance < low:
            raise_alert(
                session,
                "relayer_low_balance",
                address,
                f"{address} holds {balance} wei, under {low}",
            )
        else:
            resolve_alerts(session, "relayer_low_balance", address)

    # ---------------------------------------------------------------- stuck

    def bump_stuck(self, session: Session, stuck_blocks: int | None = None) -> int:
        """Re-price in-flight rows unmined after N blocks (+12.5% at least); past its deadline a
        row's nonce gets a 0-value no-op instead. Commits; returns how many were re-sent."""
        n_blocks = self.ctx.settings.outbox_stuck_blocks if stuck_blocks is None else stuck_blocks
        head = int(self.ctx.rpc.call("eth_blockNumber", []), 16)
        rows = list(
            session.scalars(
                select(OutboxTx)
                .where(
                    OutboxTx.state.in_(IN_FLIGHT),
                    or_(OutboxTx.sent_block.is_(None), OutboxTx.sent_block <= head - n_blocks),
                )
                .order_by(OutboxTx.sender_address, OutboxTx.nonce)
                .with_for_update(skip_locked=True)
            )
        )
        if not rows:
            session.commit()
            return 0
        # Mined meanwhile: the receipt check settles those; re-price only the rest.
        # A receipt answered with an error says nothing: that row waits for the next round
        # rather than being re-signed (a re-price of a mined transaction only costs an attempt,
        # but it is noise in the row's history).
        receipts = ask_attempts(self.ctx.rpc, rows, RECEIPT)
        rows = [t for t in rows if not any(isinstance(r, dict | RpcError) for r in receipts[t.id])]
        market_fee, market_tip = self._fees()
        now = utcnow()
        for t in rows:
            account = self.ctx.keys.account(t.sender_address)
            old_fee = int(t.max_fee_per_gas or 0)
            old_tip = int(t.max_priority_fee_per_gas or 0)
            fee = max(market_fee, -(-old_fee * BUMP_NUMERATOR // BUMP_DENOMINATOR))
            tip = max(market_tip, -(-old_tip * BUMP_NUMERATOR // BUMP_DENOMINATOR))
            cancelling = any(a.kind == "cancel" for a in t.attempts)
            if cancelling or (t.deadline_at is not None and t.deadline_at <= now):
                sign_cancel(self.ctx, t, account, fee, tip)
                reason = "deadline passed: cancel no-op sent"
            else:
                sign_call(self.ctx, t, account, fee, tip)
                reason = f"unmined after {n_blocks} blocks: re-priced to {fee} wei/gas"
            t.sent_block = head
            transition(t, S.REPLACED, reason)
        session.commit()
        results = self.ctx.rpc.batch([("eth_sendRawTransaction", [t.raw_tx]) for t in rows])
        for t, res in zip(rows, results, strict=True):
            if isinstance(res, RpcError) and res.kind is not ErrorKind.ALREADY_KNOWN:
                log.warning("bump of outbox tx %s: %s (%s)", t.id, res.message, res.kind)
        return len(rows)
