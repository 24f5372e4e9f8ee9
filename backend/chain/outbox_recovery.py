"""Recovery of outbox rows whose transactions a reorg took off the chain (issue 10 §4).

A row the outbox settled (confirmed, reverted, cancelled) was settled against one branch of the
chain. A reorg deeper than the confirmations can drop that branch: the transaction is no longer
mined, its nonce is free again, and every later transaction of the same sender waits behind the
hole for ever (the node will not mine nonce n+1 before n). Re-pricing them, which is all
`bump_stuck` can do, never helps. `recover_reorged` (beat task "chain.recover_reorged_txs",
every 5 s) repairs that, one sender at a time under the sender's row lock:

- The sender's *latest* nonce is read from the chain (not "pending": after a reorg a node's
  pending count may still include transactions the new branch does not have).
- A settled row holding a nonce at or above it is gone: it goes back to `sent`, its receipt
  fields are cleared and its gas spend taken back, and its signed bytes are broadcast again
  (same hash, so the forwarder's and the user's nonces line up as before). The receipt check
  settles it again when it is mined; if it now reverts, the domains see `reverted` and fail or
  refund as they do for any other revert.
- A recently settled row below that nonce whose hashes have no receipt, and none of which the
  node has in a block when asked by hash, lost its nonce to another transaction on the new
  branch: `failed`, so the business row fails or is retried.
- Every in-flight row at or above the chain nonce is broadcast again too, and a nonce of the
  sender's range held by no live row (a row that failed meanwhile) gets a 0-value no-op, so no
  gap remains: chain nonce == outbox next nonce once the batch is mined.
- A chain that went back further than `OUTBOX_MAX_REORG_DEPTH` blocks, or that no longer has
  the forwarder's deployment transaction, was reset or replaced rather than reorganised:
  nothing is re-sent (raw transactions aimed at another chain's contracts must not go out
  blindly) and an `outbox_alerts` row of kind "chain_reset" is raised for an operator.

The settled states stay terminal for the ordinary state machine (`TRANSITIONS` in outbox/states.py);
the only way out of them is `reopen` below, which writes its own history row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from backend.chain.errors import ChainError
from backend.chain.outbox import (
    IN_FLIGHT,
    ErrorKind,
    OutboxService,
    RpcError,
    RpcUnavailable,
    TxState,
    raise_alert,
    record_spend,
    resolve_alerts,
)
from backend.chain.outbox.lookup import BY_HASH, RECEIPT, ask_attempts, each_attempt, in_block
from backend.chain.outbox_models import OutboxSender, OutboxTx, OutboxTxEvent
from backend.chain.registry import RegistryError, load_deployments

log = logging.getLogger(__name__)

S = TxState
SETTLED = (S.CONFIRMED.value, S.REVERTED.value, S.CANCELLED.value)
# The only transitions out of a settled state: back in flight (re-broadcast) or failed (another
# transaction took the nonce on the new branch).
REORG_TRANSITIONS: dict[TxState, frozenset[TxState]] = {
    S.CONFIRMED: frozenset({S.SENT, S.FAILED}),
    S.REVERTED: frozenset({S.SENT, S.FAILED}),
    S.CANCELLED: frozenset({S.SENT, S.FAILED}),
}
CHAIN_RESET = "chain_reset"


@dataclass
class RecoveryReport:
    reopened: int = 0  # settled rows whose transaction left the chain, sent again
    failed: int = 0  # settled rows whose nonce another transaction took
    rebroadcast: int = 0  # raw transactions sent again (reopened + in flight)
    fillers: int = 0  # no-ops added for nonces no live row holds
    moved: int = 0  # settled rows re-mined in another block of the new branch
    chain_reset: bool = False
    senders: dict[str, int] = field(default_factory=dict)  # sender -> chain nonce


class ReorgTransitionError(ChainError, RuntimeError):
    """A state change `reopen` does not allow."""


def reopen(tx: OutboxTx, new_state: TxState, reason: str, session: Session) -> None:
    """Move a settled row whose transaction left the chain to `sent` or `failed`, with a
    history row; the receipt fields of the vanished block are cleared."""
    old = TxState(tx.state)
    if new_state not in REORG_TRANSITIONS.get(old, frozenset()):
        raise ReorgTransitionError(f"outbox tx {tx.id}: {old} -> {new_state} ({reason})")
    tx.state = new_state.value
    tx.block_number = None
    tx.gas_used = None
    tx.fee_paid = None
    session.add(OutboxTxEvent(tx_id=tx.id, from_state=old.value, to_state=new_state.value,
                              reason=reason))  # fmt: skip


def lookback_blocks(svc: OutboxService) -> int:
    """How far below the head settled rows are re-checked by receipt (the nonce check covers
    any depth; receipts only matter for a nonce another transaction took)."""
    return max(64, 4 * svc.settings.confirmations_for(svc.chain_id))


class OutboxRecovery:
    """Finds and repairs outbox rows a reorg took off the chain (see the module docstring)."""

    def __init__(self, svc: OutboxService) -> None:
        self.svc = svc
        self.rpc = svc.rpc

    def run(self, session: Session) -> RecoveryReport:
        """One pass over every sender. Commits; raises RpcUnavailable when the node is down."""
        report = RecoveryReport()
        senders = list(session.scalars(select(OutboxSender.address).order_by(OutboxSender.address)))
        session.commit()
        if not senders:
            return report
        first = self.rpc.batch(
            [("eth_blockNumber", [])]
            + [("eth_getTransactionCount", [s, "latest"]) for s in senders]
        )
        if any(isinstance(r, RpcError) for r in first):
            raise RpcUnavailable(f"recovery could not read the chain: {first}")
        head = int(first[0], 16)
        nonces = {s: int(v, 16) for s, v in zip(senders, first[1:], strict=True)}
        report.senders = nonces
        reason = self._reset_reason(session, head, nonces)
        if reason is not None:
            report.chain_reset = True
            raise_alert(session, CHAIN_RESET, f"chain {self.svc.chain_id}", reason)
            session.commit()
            return report
        resolve_alerts(session, CHAIN_RESET, f"chain {self.svc.chain_id}")
        session.commit()
        for address in senders:
            self._recover_sender(session, address, report)
        return report

    # ---------------------------------------------------------------- the chain-reset guard

    def _reset_reason(self, session: Session, head: int, nonces: dict[str, int]) -> str | None:
        """Why the chain looks reset or replaced rather than reorganised (None: it does not)."""
        max_depth = self.svc.settings.outbox_max_reorg_depth
        top = session.scalar(
            select(OutboxTx.block_number)
            .where(OutboxTx.state.in_(SETTLED), OutboxTx.block_number.is_not(None))
            .order_by(OutboxTx.block_number.desc())
            .limit(1)
        )
        if top is not None and head < top - max_depth:
            return (
                f"the chain's head {head} is more than {max_depth} blocks below block {top}, "
                "where outbox transactions were confirmed: it was reset, nothing is re-sent"
            )
        for address, chain_nonce in nonces.items():
            deepest = session.scalar(
                select(OutboxTx.block_number)
                .where(
                    OutboxTx.sender_address == address,
                    OutboxTx.state.in_(SETTLED),
                    OutboxTx.nonce >= chain_nonce,
                    OutboxTx.block_number.is_not(None),
                )
                .order_by(OutboxTx.block_number)
                .limit(1)
            )
            if deepest is not None and top is not None and top - deepest >= max_depth:
                return (
                    f"{address}: transactions confirmed since block {deepest} are gone "
                    f"(nonce {chain_nonce} on chain), deeper than {max_depth} blocks"
                )
        try:
            deployed = load_deployments(self.svc.settings.deployments_dir, self.svc.chain_id)
            anchor = deployed.contracts["FurusatoForwarder"]
        except (RegistryError, KeyError):
            return None  # nothing deployed here: no anchor to compare
        if not anchor.tx_hash.startswith("0x") or len(anchor.tx_hash) != 66:
            return None
        receipt = self.rpc.call("eth_getTransactionReceipt", [anchor.tx_hash])
        if receipt is None or int(receipt["blockNumber"], 16) != anchor.block_number:
            return (
                f"the forwarder's deployment transaction {anchor.tx_hash} is not in block "
                f"{anchor.block_number} of this chain: it is not the chain it was deployed on"
            )
        return None

    # ---------------------------------------------------------------- one sender

    def _recover_sender(self, session: Session, address: str, report: RecoveryReport) -> None:
        sender = self.svc.sending.lock_sender(session, address)
        # Read again under the lock: a send or a receipt check may have run since the first read.
        now = self.rpc.batch(
            [("eth_blockNumber", []), ("eth_getTransactionCount", [address, "latest"])]
        )
        if any(isinstance(r, RpcError) for r in now):
            raise RpcUnavailable(f"recovery could not read the chain: {now}")
        head, chain_nonce = int(now[0], 16), int(now[1], 16)
        report.senders[address] = chain_nonce
        reopened = self._reopen_gone(session, address, head, chain_nonce, report)
        self._check_recent(session, address, head, chain_nonce, report)
        if not reopened and sender.next_nonce <= chain_nonce:
            # Nothing of ours is above the chain's nonce: nothing to re-send, no gap possible.
            if sender.next_nonce < chain_nonce:
                sender.next_nonce = chain_nonce  # the key was used elsewhere; skip its nonces
            session.commit()
            return
        live = list(
            session.scalars(
                select(OutboxTx)
                .where(
                    OutboxTx.sender_address == address,
                    OutboxTx.nonce >= chain_nonce,
                    OutboxTx.state.in_([S.QUEUED.value, *IN_FLIGHT]),
                )
                .order_by(OutboxTx.nonce)
            )
        )
        held = {t.nonce for t in live}
        fillers = 0
        for nonce in range(chain_nonce, sender.next_nonce):
            if nonce not in held:
                # A row that held it failed meanwhile: a no-op keeps the later ones minable.
                self.svc.sending.add_filler(session, address, nonce)
                fillers += 1
        report.fillers += fillers
        session.commit()
        if not reopened and not fillers:
            # No hole: the rows above the chain's nonce are ordinary work in flight, which
            # the receipt check and bump_stuck look after (re-sending them here every pass
            # would only be noise).
            return
        resend = [t for t in live if t.state in IN_FLIGHT and t.raw_tx]
        answers = self.rpc.batch([("eth_sendRawTransaction", [t.raw_tx]) for t in resend])
        for t, res in zip(resend, answers, strict=True):
            if isinstance(res, RpcError) and res.kind not in (
                ErrorKind.ALREADY_KNOWN,
                ErrorKind.NONCE_TOO_LOW,
            ):
                log.warning("re-broadcast of outbox tx %s after a reorg: %s", t.id, res.message)
        report.rebroadcast += len(resend)
        if fillers:
            self.svc.send_pending(session, address)

    def _reopen_gone(
        self, session: Session, address: str, head: int, chain_nonce: int, report: RecoveryReport
    ) -> int:
        """Settled rows whose nonce the chain has not used: their transaction left the chain."""
        gone = list(
            session.scalars(
                select(OutboxTx)
                .where(
                    OutboxTx.sender_address == address,
                    OutboxTx.state.in_(SETTLED),
                    OutboxTx.nonce >= chain_nonce,
                )
                .order_by(OutboxTx.nonce)
                .execution_options(populate_existing=True)
            )
        )
        # A row mined after the chain nonce was read is not gone: only rows none of whose
        # hashes has a receipt are.
        receipts = ask_attempts(self.rpc, gone, RECEIPT)
        if any(isinstance(r, RpcError) for _, _, r in each_attempt(gone, receipts)):
            raise RpcUnavailable("recovery could not read receipts")
        gone = [t for t in gone if not any(isinstance(r, dict) for r in receipts[t.id])]
        for t in gone:
            fee = int(t.fee_paid or 0)
            was = t.state
            reopen(t, S.SENT, f"reorg: {was} transaction (block {t.block_number}) left the "
                   f"chain; nonce {t.nonce} is free again, re-broadcast", session)  # fmt: skip
            t.sent_block = head  # bump_stuck re-prices it if it is still unmined N blocks on
            self._take_back_spend(session, t, fee)
            log.warning("outbox tx %s (%s, nonce %s) left the chain: re-sent", t.id, was, t.nonce)
        report.reopened += len(gone)
        return len(gone)

    def _check_recent(
        self, session: Session, address: str, head: int, chain_nonce: int, report: RecoveryReport
    ) -> None:
        """Recently settled rows below the chain nonce: still mined (maybe in another block of
        the new branch), or their nonce went to another transaction."""
        floor = head - lookback_blocks(self.svc)
        rows = list(
            session.scalars(
                select(OutboxTx)
                .where(
                    OutboxTx.sender_address == address,
                    OutboxTx.state.in_(SETTLED),
                    OutboxTx.nonce < chain_nonce,
                    or_(OutboxTx.block_number.is_(None), OutboxTx.block_number > floor),
                )
                .order_by(OutboxTx.nonce)
            )
        )
        receipts = ask_attempts(self.rpc, rows, RECEIPT)
        answers = list(each_attempt(rows, receipts))
        if not answers:
            return
        if any(isinstance(r, RpcError) for _, _, r in answers):
            return  # try again next pass
        mined: dict[int, tuple[str, dict[str, Any]]] = {
            t.id: (a.tx_hash, r) for t, a, r in answers if isinstance(r, dict)
        }
        on_chain = self._known_by_hash([t for t in rows if t.id not in mined])
        if on_chain is None:
            return  # the node did not answer for each: try again next pass
        for t in rows:
            if t.id in on_chain:
                continue  # mined, its receipt not readable yet: nothing to change
            if t.id in mined:
                tx_hash, receipt = mined[t.id]
                block = int(receipt["blockNumber"], 16)
                if block != t.block_number or tx_hash != t.tx_hash:
                    t.block_number, t.tx_hash = block, tx_hash
                    report.moved += 1
                continue
            fee = int(t.fee_paid or 0)
            t.error_kind = ErrorKind.NONCE_TOO_LOW.value
            t.error = "reorg: another transaction used this nonce on the new branch"
            reopen(t, S.FAILED, t.error, session)
            self._take_back_spend(session, t, fee)
            report.failed += 1

    def _known_by_hash(self, rows: list[OutboxTx]) -> set[int] | None:
        """Ids of `rows` one of whose transactions the node has in a block, asked by hash (None
        when it answered an error). Failing a settled row sends its business row's work again,
        so a receipt the node does not give yet must not count as "another transaction took
        the nonce"."""
        answers = ask_attempts(self.rpc, rows, BY_HASH)
        if any(isinstance(tx, RpcError) for txs in answers.values() for tx in txs):
            return None
        return {tx_id for tx_id, txs in answers.items() if any(in_block(tx) for tx in txs)}

    def _take_back_spend(self, session: Session, t: OutboxTx, fee: int) -> None:
        """The gas a vanished transaction was counted for is no longer paid (it is counted
        again, in today's row, when the re-sent one is mined)."""
        if not fee:
            return
        spends: dict[tuple[str, int], list[int]] = {}
        for scope, scope_id in (("town", t.town_id), ("user", t.user_id)):
            if scope_id is not None:
                spends[(scope, scope_id)] = [-fee, -1]
        record_spend(session, spends)


def recover_reorged(svc: OutboxService, session: Session) -> RecoveryReport:
    return OutboxRecovery(svc).run(session)
