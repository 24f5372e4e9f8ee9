"""`OutboxService`: the outbox's one front door, a thin façade over its parts.

Web side: `enqueue` / `prepare_forward_request` (enqueue.py). Worker side:
`senders_with_work` / `send_pending` / `bump_stuck` (sending.py) and `check_receipts`
(receipts.py). The parts share one `OutboxContext` (settings, RPC client, keys, chain facts).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.orm import Session

from backend.chain.keyring import KeyRing
from backend.chain.outbox.context import OutboxContext
from backend.chain.outbox.enqueue import (
    DEFAULT_DEADLINE_SECONDS,
    AuditEntry,
    ContractCall,
    ContractCreation,
    Enqueuer,
    Sender,
    Subject,
)
from backend.chain.outbox.receipts import ReceiptChecker
from backend.chain.outbox.rpc import RpcClient
from backend.chain.outbox.sending import BatchSender, SendReport
from backend.chain.outbox_models import OutboxSender, OutboxTx
from backend.config import Settings


class OutboxService:
    """Enqueue on-chain actions (web side) and drive them to the chain (worker side)."""

    def __init__(self, settings: Settings, rpc: RpcClient | None = None) -> None:
        self.ctx = OutboxContext(settings, rpc)
        self.enqueuer = Enqueuer(self.ctx)
        self.sending = BatchSender(self.ctx)
        self.receipts = ReceiptChecker(self.ctx)

    # ---------------------------------------------------------------- shared state

    @property
    def settings(self) -> Settings:
        return self.ctx.settings

    @property
    def rpc(self) -> RpcClient:
        return self.ctx.rpc

    @rpc.setter
    def rpc(self, rpc: RpcClient) -> None:
        self.ctx.rpc = rpc

    @property
    def keys(self) -> KeyRing:
        return self.ctx.keys

    @property
    def chain_id(self) -> int:
        return self.ctx.chain_id

    def address_of(self, contract: str) -> str:
        return self.ctx.address_of(contract)

    @property
    def forwarder_address(self) -> str:
        return self.ctx.forwarder_address

    @property
    def auto_dispatch(self) -> bool:
        """False: no "chain.send_outbox" after commit (tests and tools drive the worker)."""
        return self.enqueuer.auto_dispatch

    @auto_dispatch.setter
    def auto_dispatch(self, on: bool) -> None:
        self.enqueuer.auto_dispatch = on

    @property
    def batch_size(self) -> int:
        return self.sending.batch_size

    @batch_size.setter
    def batch_size(self, n: int) -> None:
        self.sending.batch_size = n

    # ---------------------------------------------------------------- web side

    def enqueue(
        self,
        session: Session,
        call: ContractCall | ContractCreation,
        *,
        sender: Sender,
        key: str,
        subject: Subject | None = None,
        audit: AuditEntry | None = None,
        deadline_seconds: int | None = None,
    ) -> OutboxTx:
        """See `Enqueuer.enqueue`."""
        return self.enqueuer.enqueue(
            session,
            call,
            sender=sender,
            key=key,
            subject=subject,
            audit=audit,
            deadline_seconds=deadline_seconds,
        )

    def prepare_forward_request(
        self,
        session: Session,
        *,
        user_address: str,
        contract: str,
        function: str,
        args: Sequence[Any] = (),
        artifact_name: str | None = None,
        gas: int | None = None,
        deadline_seconds: int = DEFAULT_DEADLINE_SECONDS,
    ) -> dict[str, Any]:
        """See `Enqueuer.prepare_forward_request`."""
        return self.enqueuer.prepare_forward_request(
            session,
            user_address=user_address,
            contract=contract,
            function=function,
            args=args,
            artifact_name=artifact_name,
            gas=gas,
            deadline_seconds=deadline_seconds,
        )

    def dispatch(self, sender_addresses: Iterable[str] | None = None) -> None:
        self.enqueuer.dispatch(sender_addresses)

    # ---------------------------------------------------------------- worker side

    def reconcile(self, session: Session, sender: OutboxSender) -> None:
        self.sending.reconcile(session, sender)

    def senders_with_work(self, session: Session) -> list[str]:
        return self.sending.senders_with_work(session)

    def send_pending(self, session: Session, sender_address: str) -> SendReport:
        return self.sending.send_pending(session, sender_address)

    def bump_stuck(self, session: Session, stuck_blocks: int | None = None) -> int:
        return self.sending.bump_stuck(session, stuck_blocks)

    def check_receipts(self, session: Session, limit: int = 1000) -> dict[str, int]:
        return self.receipts.check_receipts(session, limit)

    def created_address(
        self, tx_hash: str, event: tuple[str, str, str] | None = None
    ) -> str | None:
        """See `ReceiptChecker.created_address`."""
        return self.receipts.created_address(tx_hash, event)

    def gas_spent(
        self, session: Session, scope: str, scope_id: int, day: dt.date | None = None
    ) -> int:
        return self.receipts.gas_spent(session, scope, scope_id, day)


def outbox_service() -> OutboxService:
    """The app's OutboxService (one per app, built from its settings on first use)."""
    from flask import current_app

    ext = current_app.extensions
    svc = ext.get("outbox")
    if svc is None:
        svc = ext["outbox"] = OutboxService(ext["settings"])
    return svc  # type: ignore[no-any-return]
