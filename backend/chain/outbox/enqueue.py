"""The web side of the outbox: `enqueue` adds an on-chain action to the caller's session.

Rows are only ADDED to the caller's session; after its single commit the Celery task
"chain.send_outbox" is sent (after_commit hook). A user's action is an ERC-2771 forward request
(backend/chain/forwarder.py), signed now with the user's signer or in the browser
(`prepare_forward_request`), and its forwarder nonce is taken in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from celery import current_app as celery_app
from eth_utils import to_checksum_address
from sqlalchemy import event, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.chain.forwarder import (
    ForwardRequest,
    Signer,
    encode_call,
    execute_calldata,
    recover_signer,
    relay_gas_limit,
    sign_request,
    typed_data,
)
from backend.chain.outbox.context import (
    CREATE_PREFIX,
    ESTIMATE_MARGIN,
    OutboxContext,
    creation_data,
    today,
)
from backend.chain.outbox.errors import (
    GasBudgetExceeded,
    IdempotencyConflict,
    RpcError,
    RpcUnavailable,
    StaleForwardRequest,
)
from backend.chain.outbox.states import RELAYER, S
from backend.chain.outbox_models import ForwarderNonce, GasSpend, OutboxTx, OutboxTxEvent
from backend.core.broker import publish
from backend.core.db import utcnow
from backend.core.errors import AppError
from backend.core.models import AuditLog

log = logging.getLogger(__name__)

DEFAULT_FORWARD_GAS = 300_000
DEFAULT_DEADLINE_SECONDS = 3600
# A user's relayed rows that may still use their forwarder nonce.
_ON_ITS_WAY = (S.QUEUED.value, S.SENT.value, S.REPLACED.value)


@dataclass(frozen=True)
class AuditEntry:
    """An audit-log row written with the outbox row (every money-moving action carries one)."""

    actor: str
    action: str  # e.g. "points.issue", "points.burn", "settlement.pay", "refund"
    subject_type: str
    subject_id: str
    amount: int | None = None
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ContractCall:
    """One contract function call. `contract` is a deployments key ("towns.x.RegionPoints") or
    an address (then give `artifact_name`, whose ABI encodes the call; by default the key's last
    part). `value` is wei sent along; `gas` the inner call's limit (None: estimated)."""

    contract: str
    function: str
    args: Sequence[Any] = ()
    value: int = 0
    artifact_name: str | None = None
    gas: int | None = None


@dataclass(frozen=True)
class ContractCreation:
    """The creation of a contract from its compiled artifact (a transaction with no `to`): the
    constructor's `args` are ABI-encoded after the artifact's bytecode. The new contract's
    address is read from the receipt once the row is confirmed (`created_address`)."""

    artifact_name: str
    args: Sequence[Any] = ()
    value: int = 0
    gas: int | None = None

    @property
    def contract(self) -> str:
        return CREATE_PREFIX + self.artifact_name

    @property
    def function(self) -> str:
        return "constructor"


def is_creation(contract: str) -> bool:
    """True for the `contract` column of a contract-creation row."""
    return contract.startswith(CREATE_PREFIX)


@dataclass(frozen=True)
class Subject:
    """The business row an on-chain action belongs to, e.g. Subject("charge", 42); stored on the
    outbox row (subject_kind, subject_id)."""

    kind: str
    id: int


@dataclass(frozen=True)
class Sender:
    """Who sends, and whose gas it is.

    `kind` is the name of a role key that signs an admin action, or "relayer" for a user's
    action: an ERC-2771 request signed now with the user's `signer`, or one a browser signed
    (`forward_request`). `town_id` / `user_id` are charged for the gas (and the user's daily
    budget is checked)."""

    kind: str
    signer: Signer | None = None
    forward_request: ForwardRequest | dict[str, Any] | None = None
    town_id: int | None = None
    user_id: int | None = None

    @classmethod
    def role(cls, role: str, *, town_id: int | None = None, user_id: int | None = None) -> Sender:
        """An admin action signed by the role key `role` (e.g. "issuer", "clerk")."""
        return cls(role, town_id=town_id, user_id=user_id)

    @classmethod
    def user(
        cls, signer: Signer, *, town_id: int | None = None, user_id: int | None = None
    ) -> Sender:
        """A user's action, signed now by `signer` and relayed."""
        return cls(RELAYER, signer=signer, town_id=town_id, user_id=user_id)

    @classmethod
    def signed(
        cls,
        request: ForwardRequest | dict[str, Any],
        *,
        town_id: int | None = None,
        user_id: int | None = None,
    ) -> Sender:
        """A user's action the browser signed (from `prepare_forward_request`), relayed."""
        return cls(RELAYER, forward_request=request, town_id=town_id, user_id=user_id)


class Enqueuer:
    """Adds outbox rows (and their audit rows) to a caller's session; dispatches after commit."""

    def __init__(self, ctx: OutboxContext) -> None:
        self.ctx = ctx
        self.auto_dispatch = True

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
        """Add one on-chain action to `session` (the caller commits it with its business row).

        `call` is a contract call, or a `ContractCreation` (a role key only: a creation cannot
        be relayed).

        `key` is the idempotency key: the same key with the same payload returns the first row
        and changes nothing; with another payload it raises IdempotencyConflict. `audit` is
        written with the row; `deadline_seconds` (default: none for a role key, an hour for a
        user's request) cancels the action if it is not sent by then.

        Raises GasBudgetExceeded (user over today's cap), StaleForwardRequest, AppError for an
        unknown role/contract, and ChainUnavailable when a user request must be signed and the
        chain id or the user's forwarder nonce cannot be read.
        """
        idempotency_key, sender_kind = key, sender.kind
        contract, function, value, gas = call.contract, call.function, call.value, call.gas
        signer, forward_request = sender.signer, sender.forward_request
        town_id, user_id = sender.town_id, sender.user_id
        args = list(call.args)
        if forward_request is not None and not isinstance(forward_request, ForwardRequest):
            forward_request = ForwardRequest.from_json(forward_request)
        user_address = (
            forward_request.from_address
            if forward_request is not None
            else (signer.address if signer is not None else None)
        )
        if isinstance(call, ContractCreation) and sender_kind == RELAYER:
            raise AppError("a contract creation is sent by a role key, never relayed")
        if sender_kind == RELAYER and user_address is None:
            raise AppError("a relayed request needs a user signer or a signed forward request")
        payload_hash = self._payload_hash(
            sender_kind, contract, function, args, value, user_address, town_id, user_id,
            forward_request,
        )  # fmt: skip
        # One round trip for the idempotency check and the user's budget.
        existing_id, spent = session.execute(
            select(
                select(OutboxTx.id)
                .where(OutboxTx.idempotency_key == idempotency_key)
                .scalar_subquery(),
                self._spent_today(user_id),
            )
        ).one()
        if existing_id is not None:
            existing = session.get(OutboxTx, existing_id)
            assert existing is not None
            return self._same_or_conflict(existing, payload_hash)
        if user_id is not None:
            self._check_budget(user_id, spent)
        for attempt in range(3):
            try:
                with session.begin_nested():
                    tx = self._build_row(
                        session,
                        idempotency_key=idempotency_key,
                        payload_hash=payload_hash,
                        sender_kind=sender_kind,
                        contract=contract,
                        function=function,
                        args=args,
                        value=value,
                        signer=signer,
                        forward_request=forward_request,
                        artifact_name=call.artifact_name or contract.rsplit(".", 1)[-1],
                        town_id=town_id,
                        user_id=user_id,
                        gas=gas,
                        deadline_seconds=deadline_seconds,
                        subject=subject,
                    )
                    session.flush()
                    session.add(
                        OutboxTxEvent(tx_id=tx.id, from_state=None, to_state=S.QUEUED, reason="")
                    )
                    if audit is not None:
                        session.add(self._audit_row(audit, tx))
                    session.flush()
                break
            except IntegrityError:
                # Another request with this key (or a first forwarder-nonce row) won the race.
                existing = session.scalar(
                    select(OutboxTx).where(OutboxTx.idempotency_key == idempotency_key)
                )
                if existing is not None:
                    return self._same_or_conflict(existing, payload_hash)
                if attempt == 2:
                    raise
        self._schedule_dispatch(session, tx.sender_address)
        return tx

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
        """The EIP-712 typed data a browser wallet signs for a user's action (nonce not taken).

        Pass the signature back as `forward_request={**request, "signature": sig}` to
        `enqueue` (`Sender.signed`); the nonce is taken then.
        """
        user = to_checksum_address(user_address)
        data = encode_call(artifact_name or contract.rsplit(".", 1)[-1], function, list(args))
        target = self.ctx.address_of(contract)
        row = session.get(ForwarderNonce, user)
        nonce = (
            row.next_nonce
            if row is not None and not self._forwarder_nonce_may_be_off(session, user)
            else self._chain_forwarder_nonce(user)
        )  # what `_take_forwarder_nonce` will hand out when the signed request comes back
        req = ForwardRequest(
            from_address=user,
            to=target,
            value=0,
            gas=gas or self._estimate_inner(user, target, data),
            nonce=nonce,
            # The forwarder checks the deadline against block.timestamp: the chain's clock.
            deadline=self.ctx.rpc.chain_now() + deadline_seconds,
            data=data,
        )
        return {
            "request": req.to_json(),
            "typed_data": typed_data(req, self.ctx.chain_id, self.ctx.forwarder_address),
        }

    def dispatch(self, sender_addresses: Iterable[str] | None = None) -> None:
        """Send "chain.send_outbox" for these senders (None: every sender). Call after commit.

        Bounded (backend/core/broker.py): during a broker outage this returns within the publish
        timeout and the beat's "chain.send_outbox" sweep sends the committed rows later."""
        for address in sender_addresses or [None]:  # type: ignore[list-item]
            if not publish(celery_app, "chain.send_outbox", [address]):
                return  # the broker is away: one bounded wait per request, not one per sender

    # ---------------------------------------------------------------- enqueue helpers

    @staticmethod
    def _payload_hash(*parts: Any) -> str:
        *head, fr = parts
        blob = [*head, fr and [fr.from_address, fr.to, fr.value, fr.data]]
        text = json.dumps(blob, sort_keys=True, default=str, separators=(",", ":"))
        return "0x" + hashlib.sha256(text.encode()).hexdigest()

    @staticmethod
    def _same_or_conflict(existing: OutboxTx, payload_hash: str) -> OutboxTx:
        if existing.payload_hash != payload_hash:
            raise IdempotencyConflict(
                "this idempotency key was already used for a different request",
                idempotency_key=existing.idempotency_key,
            )
        return existing

    @staticmethod
    def _spent_today(user_id: int | None) -> Any:
        """A scalar subquery: the user's gas spend today (NULL for no row or no user)."""
        if user_id is None:
            return literal(None)
        return (
            select(GasSpend.wei)
            .where(GasSpend.scope == "user", GasSpend.scope_id == user_id, GasSpend.day == today())
            .scalar_subquery()
        )

    def _check_budget(self, user_id: int, spent: Any) -> None:
        if spent is not None and int(spent) >= self.ctx.settings.gas_cap_per_user_per_day:
            raise GasBudgetExceeded(
                "today's gas budget for this user is used up; try again tomorrow",
                user_id=user_id,
            )

    @staticmethod
    def _audit_row(audit: AuditEntry, tx: OutboxTx) -> AuditLog:
        return AuditLog(
            actor=audit.actor,
            action=audit.action,
            subject_type=audit.subject_type,
            subject_id=audit.subject_id,
            amount=None if audit.amount is None else Decimal(audit.amount),
            reason=audit.reason,
            details={
                **audit.details,
                "outbox_tx_id": tx.id,
                "idempotency_key": tx.idempotency_key,
            },
        )

    def _build_row(
        self,
        session: Session,
        *,
        idempotency_key: str,
        payload_hash: str,
        sender_kind: str,
        contract: str,
        function: str,
        args: list[Any],
        value: int,
        signer: Signer | None,
        forward_request: ForwardRequest | None,
        artifact_name: str,
        town_id: int | None,
        user_id: int | None,
        gas: int | None,
        deadline_seconds: int | None,
        subject: Subject | None,
    ) -> OutboxTx:
        now = utcnow()
        tx = OutboxTx(
            idempotency_key=idempotency_key,
            payload_hash=payload_hash,
            state=S.QUEUED.value,
            sender_kind=sender_kind,
            contract=contract,
            function=function,
            args=json.loads(json.dumps(args, default=str)),
            value=Decimal(value),
            town_id=town_id,
            user_id=user_id,
            subject_kind=subject.kind if subject is not None else None,
            subject_id=subject.id if subject is not None else None,
        )
        if sender_kind != RELAYER:
            tx.sender_address = self.ctx.keys.role(sender_kind)
            tx.call_data = (
                creation_data(contract.removeprefix(CREATE_PREFIX), args)
                if is_creation(contract)
                else encode_call(artifact_name, function, args)
            )
            tx.gas_limit = gas
            if deadline_seconds is not None:
                tx.deadline_at = now + dt.timedelta(seconds=deadline_seconds)
            session.add(tx)
            return tx
        if forward_request is None:
            assert signer is not None
            user = to_checksum_address(signer.address)
            target = self.ctx.address_of(contract)
            data = encode_call(artifact_name, function, args)
            nonce = self._take_forwarder_nonce(session, user)
            chain_now = self.ctx.rpc.chain_now()
            req = ForwardRequest(
                from_address=user,
                to=target,
                value=value,
                gas=gas or self._estimate_inner(user, target, data),
                nonce=nonce,
                # The forwarder checks it against block.timestamp: the chain's clock.
                deadline=chain_now + (deadline_seconds or DEFAULT_DEADLINE_SECONDS),
                data=data,
            )
            req = sign_request(signer, req, self.ctx.chain_id, self.ctx.forwarder_address)
        else:
            req = forward_request
            if (
                recover_signer(req, self.ctx.chain_id, self.ctx.forwarder_address)
                != req.from_address
            ):
                raise AppError("the forward request is not signed by its sender", code="bad_sig")
            nonce = self._take_forwarder_nonce(session, req.from_address)
            if req.nonce != nonce:  # raised inside the caller's savepoint: the take is undone
                raise StaleForwardRequest(
                    "the request's nonce is not the user's next one; prepare it again",
                    expected=nonce,
                )
            chain_now = self.ctx.rpc.chain_now()
        tx.user_address = req.from_address
        tx.forward_request = req.to_json()
        tx.sender_address = self.ctx.keys.relayer_for(req.from_address)
        tx.call_data = execute_calldata(req)
        tx.gas_limit = relay_gas_limit(req)
        # The request's deadline is on the chain's clock; the sender compares deadline_at with
        # this server's: the same time left, counted from now.
        tx.deadline_at = now + dt.timedelta(seconds=req.deadline - chain_now)
        session.add(tx)
        return tx

    def _take_forwarder_nonce(self, session: Session, user: str) -> int:
        """The user's next forwarder nonce, taken: one UPDATE ... RETURNING, which holds the
        row lock until commit (or until the enclosing savepoint rolls back)."""
        taken = session.execute(
            update(ForwarderNonce)
            .where(ForwarderNonce.user_address == user)
            .values(next_nonce=ForwarderNonce.next_nonce + 1, updated_at=utcnow())
            .returning(ForwarderNonce.next_nonce),
            execution_options={"synchronize_session": "fetch"},
        ).scalar()
        if taken is not None:
            nonce = int(taken) - 1
            if self._forwarder_nonce_may_be_off(session, user):
                on_chain = self._chain_forwarder_nonce(user)
                if on_chain != nonce:
                    log.info(
                        "forwarder nonce of %s: %d here, %d on chain; using the chain's",
                        user, nonce, on_chain,
                    )  # fmt: skip
                    session.execute(
                        update(ForwarderNonce)
                        .where(ForwarderNonce.user_address == user)
                        .values(next_nonce=on_chain + 1, updated_at=utcnow()),
                        execution_options={"synchronize_session": "fetch"},
                    )
                    nonce = on_chain
            return nonce
        nonce = self._chain_forwarder_nonce(user)
        session.add(ForwarderNonce(user_address=user, next_nonce=nonce + 1))
        session.flush()  # a concurrent first insert fails here, not at commit
        return nonce

    def _forwarder_nonce_may_be_off(self, session: Session, user: str) -> bool:
        """Whether the user's counter here may differ from the forwarder's: none of their
        requests is on its way and the last one did not succeed.

        A request that is not executed leaves the forwarder's nonce where it was: one that fails
        before it is sent, is cancelled, or reverts (`execute` reverts as a whole when the call
        fails, taking `_useNonce` back with it). The counter here had moved on, so every later
        request would carry a nonce one ahead and revert on the forwarder (invalid signer), for
        ever. With nothing of theirs on its way the chain's nonce is the truth; while requests
        are on their way the counter continues after them (the requests behind a failing one
        fail too, and the next request after them starts from the chain again). Called under
        the counter's row lock, after rows committed before it are visible."""
        on_its_way = session.scalar(
            select(OutboxTx.id)
            .where(OutboxTx.user_address == user, OutboxTx.state.in_(_ON_ITS_WAY))
            .limit(1)
        )
        if on_its_way is not None:
            return False
        last = session.scalar(
            select(OutboxTx.state)
            .where(OutboxTx.user_address == user)
            .order_by(OutboxTx.id.desc())
            .limit(1)
        )
        return last is not None and last != S.CONFIRMED.value

    def _chain_forwarder_nonce(self, user: str) -> int:
        data = "0x7ecebe00" + user.lower().removeprefix("0x").rjust(64, "0")  # nonces(address)
        result = self.ctx.rpc.call(
            "eth_call", [{"to": self.ctx.forwarder_address, "data": data}, "pending"]
        )
        return int(result, 16)

    def _estimate_inner(self, user: str, target: str, data: str) -> int:
        """The inner call's gas, estimated as the user against "pending", with a margin."""
        try:
            est = self.ctx.rpc.call(
                "eth_estimateGas", [{"from": user, "to": target, "data": data}, "pending"]
            )
        except (RpcError, RpcUnavailable) as exc:
            log.info("inner gas estimate failed (%s); using %d", exc, DEFAULT_FORWARD_GAS)
            return DEFAULT_FORWARD_GAS
        return int(int(est, 16) * ESTIMATE_MARGIN) + 5_000

    def _schedule_dispatch(self, session: Session, sender: str) -> None:
        if not self.auto_dispatch:
            return
        pending: set[str] = session.info.setdefault("outbox_dispatch", set())
        pending.add(sender)
        if session.info.get("outbox_hooked"):
            return
        session.info["outbox_hooked"] = True

        def _after_commit(sess: Session) -> None:
            senders = sess.info.pop("outbox_dispatch", set())
            if senders:
                try:
                    self.dispatch(sorted(senders))
                except Exception:  # the beat task sends what a lost dispatch missed
                    log.exception("could not dispatch chain.send_outbox")

        def _after_rollback(sess: Session) -> None:
            sess.info.pop("outbox_dispatch", None)

        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_soft_rollback", lambda s, _t: _after_rollback(s))
