"""The transaction outbox: every on-chain action is a row, queued in the caller's DB transaction.

    queued --> sent --> confirmed | reverted
       |         \\--> replaced (re-priced or cancel no-op sent) --> confirmed | reverted | ...
       \\--> cancelled | failed                                   cancelled | failed

Domains call `OutboxService.enqueue_call(session, ...)`, which only ADDS rows to their session;
after their single commit the Celery task "chain.send_outbox" is sent (after_commit hook). The
worker side (`send_pending`, `check_receipts`, `bump_stuck`) follows three rules:

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

User actions are ERC-2771 forward requests (backend/chain/forwarder.py) signed by the user and
executed by relayer keys; a user's requests always go through the same relayer, in order.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any, cast

import coincurve
import requests
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from sqlalchemy import Table, event, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session

from backend.chain.forwarder import (
    ForwardRequest,
    Signer,
    encode_call,
    execute_calldata,
    recover_signer,
    relay_gas_limit,
    sign_digest,
    sign_request,
)
from backend.chain.gateway import ChainUnavailable
from backend.chain.keyring import KeyRing
from backend.chain.outbox_models import (
    ForwarderNonce,
    GasSpend,
    OutboxAlert,
    OutboxAttempt,
    OutboxSender,
    OutboxTx,
    OutboxTxEvent,
)
from backend.chain.registry import ABI_DIR, RegistryError, load_deployments
from backend.config import Settings
from backend.core.db import utcnow
from backend.core.errors import AppError, Conflict
from backend.core.models import AuditLog

log = logging.getLogger(__name__)

GWEI = 10**9
ESTIMATE_MARGIN = 1.25  # estimates run against "pending"; the margin covers state drift
BUMP_NUMERATOR, BUMP_DENOMINATOR = 9, 8  # re-price by at least +12.5%
DEFAULT_FORWARD_GAS = 300_000
DEFAULT_DEADLINE_SECONDS = 3600
RELAYER = "relayer"
FILLER = "filler"


# ---------------------------------------------------------------------------- state machine


class TxState(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    REPLACED = "replaced"
    CONFIRMED = "confirmed"
    REVERTED = "reverted"
    CANCELLED = "cancelled"
    FAILED = "failed"


S = TxState
TRANSITIONS: dict[TxState, frozenset[TxState]] = {
    # failed: never broadcast (estimate reverted, bad request); cancelled: deadline passed
    # before a nonce was used, or (from sent/replaced) the cancel no-op was mined.
    S.QUEUED: frozenset({S.SENT, S.CANCELLED, S.FAILED}),
    S.SENT: frozenset({S.REPLACED, S.CONFIRMED, S.REVERTED, S.CANCELLED, S.FAILED}),
    S.REPLACED: frozenset({S.REPLACED, S.CONFIRMED, S.REVERTED, S.CANCELLED, S.FAILED}),
    S.CONFIRMED: frozenset(),
    S.REVERTED: frozenset(),
    S.CANCELLED: frozenset(),
    S.FAILED: frozenset(),
}
IN_FLIGHT = (S.SENT.value, S.REPLACED.value)
TERMINAL = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)


class IllegalTransition(RuntimeError):
    """A state change the outbox state machine does not allow."""


def transition(tx: OutboxTx, new_state: TxState | str, reason: str = "") -> None:
    """Move `tx` to `new_state` and record the change; raises IllegalTransition otherwise."""
    old = TxState(tx.state)
    new = TxState(new_state)
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(f"outbox tx {tx.id}: {old} -> {new} is not allowed ({reason})")
    tx.state = new.value
    session = object_session(tx)
    if session is None:
        raise IllegalTransition(f"outbox tx {tx.id} is not in a session")
    if tx.id is None:
        session.flush()
    session.add(OutboxTxEvent(tx_id=tx.id, from_state=old.value, to_state=new.value, reason=reason))


def transition_batched(
    tx: OutboxTx, new_state: TxState | str, reason: str, events: list[dict[str, Any]]
) -> None:
    """`transition` for a worker settling many rows: the history row is appended to `events`,
    which the caller writes with `write_events` (one executemany) before it commits."""
    old = TxState(tx.state)
    new = TxState(new_state)
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(f"outbox tx {tx.id}: {old} -> {new} is not allowed ({reason})")
    if tx.id is None:
        raise IllegalTransition("transition_batched needs a row with an id")
    tx.state = new.value
    events.append(
        {"tx_id": tx.id, "from_state": old.value, "to_state": new.value, "reason": reason,
         "at": utcnow()}
    )  # fmt: skip


def write_events(session: Session, events: list[dict[str, Any]]) -> None:
    """Insert the history rows collected by `transition_batched` (no RETURNING: executemany)."""
    if events:
        session.execute(insert(cast(Table, OutboxTxEvent.__table__)), events)
        events.clear()


# ---------------------------------------------------------------------------- errors


class IdempotencyConflict(Conflict):
    """The idempotency key was already used for a different request."""

    code = "idempotency_conflict"


class StaleForwardRequest(Conflict):
    """A browser-signed request does not carry the user's next forwarder nonce."""

    code = "stale_forward_request"


class GasBudgetExceeded(AppError):
    """The user has used up today's gas budget."""

    status = 429
    code = "gas_budget_exceeded"


class RpcUnavailable(ChainUnavailable):
    """The RPC endpoint did not answer (connection refused, timeout, 5xx)."""


class ErrorKind(StrEnum):
    ALREADY_KNOWN = "already_known"
    NONCE_TOO_LOW = "nonce_too_low"
    REPLACEMENT_UNDERPRICED = "replacement_underpriced"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    REVERTED = "reverted"
    OTHER = "other"


class RpcError(Exception):
    """A JSON-RPC error response; `kind` classifies it."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.data = data

    @property
    def kind(self) -> ErrorKind:
        return classify_error(self.message)


def classify_error(message: str) -> ErrorKind:
    """Map a node's error text (geth, anvil, erigon, nethermind wordings) to an ErrorKind."""
    m = message.lower()
    if "already known" in m or "already imported" in m or "known transaction" in m:
        return ErrorKind.ALREADY_KNOWN
    if "nonce too low" in m or "nonce is too low" in m or "oldnonce" in m:
        return ErrorKind.NONCE_TOO_LOW
    if "underpriced" in m or "fee too low" in m:
        return ErrorKind.REPLACEMENT_UNDERPRICED
    if "insufficient funds" in m or "insufficient balance" in m:
        return ErrorKind.INSUFFICIENT_FUNDS
    if "revert" in m:
        return ErrorKind.REVERTED
    return ErrorKind.OTHER


@cache
def _error_selectors() -> dict[str, tuple[str, list[str]]]:
    out: dict[str, tuple[str, list[str]]] = {
        "0x08c379a0": ("Error", ["string"]),
        "0x4e487b71": ("Panic", ["uint256"]),
    }
    for path in sorted(Path(ABI_DIR).glob("*.json")):
        for item in json.loads(path.read_text())["abi"]:
            if item["type"] == "error":
                types = [_abi_type(i) for i in item["inputs"]]
                sig = f"{item['name']}({','.join(types)})"
                out["0x" + keccak(text=sig)[:4].hex()] = (item["name"], types)
    return out


def _abi_type(inp: dict[str, Any]) -> str:
    if inp["type"].startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in inp["components"]) + ")" + inp["type"][5:]
    return str(inp["type"])


def decode_revert(data: Any) -> str:
    """A custom error's name and arguments from revert data, e.g. 'RegionPointsZeroAmount()'."""
    from eth_abi import decode as abi_decode

    if isinstance(data, dict):
        data = data.get("data")
    if not isinstance(data, str) or not data.startswith("0x") or len(data) < 10:
        return "unknown revert"
    sel = data[:10].lower()
    known = _error_selectors().get(sel)
    if known is None:
        return f"unknown error {sel}"
    name, types = known
    try:
        values = abi_decode(types, bytes.fromhex(data[10:]))
    except Exception:  # malformed payload: the name is still useful
        return f"{name}(?)"
    return f"{name}({', '.join(str(v) for v in values)})"


# ---------------------------------------------------------------------------- JSON-RPC


class RpcClient:
    """Plain JSON-RPC over HTTP with batching (one POST for many calls)."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout
        self._local = threading.local()
        self._ids = 0

    def _http(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
        return s

    def _post(self, payload: Any) -> Any:
        try:
            try:
                resp = self._http().post(self.url, json=payload, timeout=self.timeout)
            except requests.ConnectionError:
                # A pooled keep-alive connection the server dropped: one retry on a fresh one
                # (every call here is safe to repeat; a re-sent transaction is "already known").
                self._local.session = None
                resp = self._http().post(self.url, json=payload, timeout=self.timeout)
        except requests.RequestException as exc:
            raise RpcUnavailable(f"{type(exc).__name__} talking to the RPC endpoint") from exc
        if resp.status_code >= 500 or resp.status_code == 429:
            raise RpcUnavailable(f"RPC endpoint answered HTTP {resp.status_code}")
        try:
            return resp.json()
        except ValueError as exc:
            raise RpcUnavailable("RPC endpoint answered with something other than JSON") from exc

    @staticmethod
    def _result(item: dict[str, Any]) -> Any:
        if "error" in item and item["error"] is not None:
            err = item["error"]
            return RpcError(int(err.get("code", 0)), str(err.get("message", "")), err.get("data"))
        return item.get("result")

    def call(self, method: str, params: list[Any]) -> Any:
        """One call; raises RpcUnavailable or RpcError."""
        result = self._result(
            self._post({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        )
        if isinstance(result, RpcError):
            raise result
        return result

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Many calls in one request; each result is a value or an RpcError (not raised)."""
        if not calls:
            return []
        payload = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)
        ]
        answer = self._post(payload)
        if not isinstance(answer, list):
            err = self._result(answer)
            return [err if isinstance(err, RpcError) else RpcError(0, "bad batch")] * len(calls)
        by_id = {item.get("id"): item for item in answer}
        return [
            self._result(by_id[i]) if i in by_id else RpcError(0, "missing batch answer")
            for i in range(len(calls))
        ]


# ---------------------------------------------------------------------------- signing


def _rlp(item: int | bytes | list[Any]) -> bytes:
    """RLP of an int (minimal big-endian), bytes or a list of those."""
    if isinstance(item, list):
        payload = b"".join(_rlp(i) for i in item)
        return _rlp_length(len(payload), 0xC0) + payload
    if isinstance(item, int):
        item = item.to_bytes((item.bit_length() + 7) // 8, "big")
    if len(item) == 1 and item[0] < 0x80:
        return item
    return _rlp_length(len(item), 0x80) + item


def _rlp_length(length: int, offset: int) -> bytes:
    if length <= 55:
        return bytes([offset + length])
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([offset + 55 + len(encoded)]) + encoded


def sign_dynamic_fee_tx(
    key: coincurve.PrivateKey,
    *,
    chain_id: int,
    nonce: int,
    to: str,
    value: int,
    data: str,
    gas: int,
    max_fee: int,
    tip: int,
) -> tuple[bytes, bytes]:
    """(raw transaction, hash) of an EIP-1559 transaction signed with `key`.

    The same bytes eth_account's `sign_transaction` gives for a type-2 dict (RFC 6979, low s),
    without its dict validation and formatter passes, which cost ~10x the signature itself.
    """
    fields: list[Any] = [
        chain_id,
        nonce,
        tip,
        max_fee,
        gas,
        bytes.fromhex(to.removeprefix("0x")),
        value,
        bytes.fromhex(data.removeprefix("0x")),
        [],  # access list
    ]
    sig = sign_digest(key, keccak(b"\x02" + _rlp(fields)))
    raw = b"\x02" + _rlp(
        [*fields, sig[64] - 27, int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big")]
    )
    return raw, keccak(raw)


# ---------------------------------------------------------------------------- service


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


@dataclass
class SendReport:
    sent: int = 0
    waiting_for_funds: int = 0
    failed: int = 0
    cancelled: int = 0
    errors: dict[str, int] = field(default_factory=dict)


def _hex(n: int) -> str:
    return hex(int(n))


def _today() -> dt.date:
    return utcnow().date()


class OutboxService:
    """Enqueue on-chain actions (web side) and drive them to the chain (worker side)."""

    def __init__(self, settings: Settings, rpc: RpcClient | None = None) -> None:
        self.settings = settings
        self.rpc = rpc or RpcClient(settings.rpc_url, timeout=settings.rpc_timeout)
        self.keys = KeyRing.from_settings(settings)
        self.auto_dispatch = True
        self.batch_size = 200
        self._chain_id: int | None = None
        self._reconciled: set[str] = set()
        self._addresses: dict[str, str] = {}

    # ---------------------------------------------------------------- chain facts

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self.rpc.call("eth_chainId", []), 16)
        return self._chain_id

    def address_of(self, contract: str) -> str:
        """A deployments key ("towns.x.RegionPoints") or an address, as a checksummed address."""
        if contract.startswith("0x"):
            return str(to_checksum_address(contract))
        cached = self._addresses.get(contract)
        if cached is not None:
            return cached
        try:
            deployments = load_deployments(self.settings.deployments_dir, self.chain_id)
            address = str(to_checksum_address(deployments.address(contract)))
        except RegistryError as exc:
            raise AppError(str(exc), code="not_deployed") from None
        self._addresses[contract] = address
        return address

    @property
    def forwarder_address(self) -> str:
        return self.address_of("FurusatoForwarder")

    # ---------------------------------------------------------------- enqueue (web side)

    def enqueue_call(
        self,
        session: Session,
        *,
        idempotency_key: str,
        sender_kind: str,
        contract: str,
        function: str,
        args: Sequence[Any] = (),
        value: int = 0,
        signer: Signer | None = None,
        forward_request: ForwardRequest | dict[str, Any] | None = None,
        artifact_name: str | None = None,
        town_id: int | None = None,
        user_id: int | None = None,
        gas: int | None = None,
        deadline_seconds: int | None = None,
        audit: AuditEntry | None = None,
    ) -> OutboxTx:
        """Add one on-chain action to `session` (the caller commits it with its business row).

        `sender_kind` is "relayer" for a user's action (give the user's `signer`, which signs an
        ERC-2771 request now, or a browser-signed `forward_request`), else the name of a role key
        that signs an admin action. `contract` is a deployments key or an address (then give
        `artifact_name`). The same `idempotency_key` with the same payload returns the first
        row and changes nothing; with another payload it raises IdempotencyConflict.

        Raises GasBudgetExceeded (user over today's cap), StaleForwardRequest, AppError for an
        unknown role/contract, and ChainUnavailable when a user request must be signed and the
        chain id or the user's forwarder nonce cannot be read.
        """
        args = list(args)
        if forward_request is not None and not isinstance(forward_request, ForwardRequest):
            forward_request = ForwardRequest.from_json(forward_request)
        user_address = (
            forward_request.from_address
            if forward_request is not None
            else (signer.address if signer is not None else None)
        )
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
                        artifact_name=artifact_name or contract.rsplit(".", 1)[-1],
                        town_id=town_id,
                        user_id=user_id,
                        gas=gas,
                        deadline_seconds=deadline_seconds,
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
        `enqueue_call`; the nonce is taken then.
        """
        from backend.chain.forwarder import typed_data

        user = to_checksum_address(user_address)
        data = encode_call(artifact_name or contract.rsplit(".", 1)[-1], function, list(args))
        target = self.address_of(contract)
        row = session.get(ForwarderNonce, user)
        nonce = row.next_nonce if row is not None else self._chain_forwarder_nonce(user)
        req = ForwardRequest(
            from_address=user,
            to=target,
            value=0,
            gas=gas or self._estimate_inner(user, target, data),
            nonce=nonce,
            deadline=int(utcnow().timestamp()) + deadline_seconds,
            data=data,
        )
        return {
            "request": req.to_json(),
            "typed_data": typed_data(req, self.chain_id, self.forwarder_address),
        }

    def dispatch(self, sender_addresses: Iterable[str] | None = None) -> None:
        """Send "chain.send_outbox" for these senders (None: every sender). Call after commit.

        Bounded (backend/core/broker.py): during a broker outage this returns within the publish
        timeout and the beat's "chain.send_outbox" sweep sends the committed rows later."""
        from celery import current_app as celery_app

        from backend.core.broker import publish

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
            .where(GasSpend.scope == "user", GasSpend.scope_id == user_id, GasSpend.day == _today())
            .scalar_subquery()
        )

    def _check_budget(self, user_id: int, spent: Any) -> None:
        if spent is not None and int(spent) >= self.settings.gas_cap_per_user_per_day:
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
        )
        if sender_kind != RELAYER:
            tx.sender_address = self.keys.role(sender_kind)
            tx.call_data = encode_call(artifact_name, function, args)
            tx.gas_limit = gas
            if deadline_seconds is not None:
                tx.deadline_at = now + dt.timedelta(seconds=deadline_seconds)
            session.add(tx)
            return tx
        if forward_request is None:
            assert signer is not None
            user = to_checksum_address(signer.address)
            target = self.address_of(contract)
            data = encode_call(artifact_name, function, args)
            nonce = self._take_forwarder_nonce(session, user)
            req = ForwardRequest(
                from_address=user,
                to=target,
                value=value,
                gas=gas or self._estimate_inner(user, target, data),
                nonce=nonce,
                deadline=int(now.timestamp()) + (deadline_seconds or DEFAULT_DEADLINE_SECONDS),
                data=data,
            )
            req = sign_request(signer, req, self.chain_id, self.forwarder_address)
        else:
            req = forward_request
            if recover_signer(req, self.chain_id, self.forwarder_address) != req.from_address:
                raise AppError("the forward request is not signed by its sender", code="bad_sig")
            nonce = self._take_forwarder_nonce(session, req.from_address)
            if req.nonce != nonce:  # raised inside the caller's savepoint: the take is undone
                raise StaleForwardRequest(
                    "the request's nonce is not the user's next one; prepare it again",
                    expected=nonce,
                )
        tx.user_address = req.from_address
        tx.forward_request = req.to_json()
        tx.sender_address = self.keys.relayer_for(req.from_address)
        tx.call_data = execute_calldata(req)
        tx.gas_limit = relay_gas_limit(req)
        tx.deadline_at = dt.datetime.fromtimestamp(req.deadline, dt.UTC)
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
            return int(taken) - 1
        nonce = self._chain_forwarder_nonce(user)
        session.add(ForwarderNonce(user_address=user, next_nonce=nonce + 1))
        session.flush()  # a concurrent first insert fails here, not at commit
        return nonce

    def _chain_forwarder_nonce(self, user: str) -> int:
        data = "0x7ecebe00" + user.lower().removeprefix("0x").rjust(64, "0")  # nonces(address)
        result = self.rpc.call(
            "eth_call", [{"to": self.forwarder_address, "data": data}, "pending"]
        )
        return int(result, 16)

    def _estimate_inner(self, user: str, target: str, data: str) -> int:
        """The inner call's gas, estimated as the user against "pending", with a margin."""
        try:
            est = self.rpc.call(
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

    # ---------------------------------------------------------------- nonces

    def _lock_sender(self, session: Session, address: str) -> OutboxSender:
        sender = session.scalar(
            select(OutboxSender)
            .where(OutboxSender.address == address)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if sender is None:
            nonce = int(self.rpc.call("eth_getTransactionCount", [address, "pending"]), 16)
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
        chain_next = int(self.rpc.call("eth_getTransactionCount", [address, "pending"]), 16)
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
                    self._add_filler(session, address, nonce)
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
                    self.rpc.call("eth_sendRawTransaction", [tx.raw_tx])
                except RpcError as exc:
                    log.info("re-broadcast of outbox tx %s: %s", tx.id, exc.message)
        sender.reconciled_at = utcnow()
        self._reconciled.add(address)

    def _add_filler(self, session: Session, address: str, nonce: int) -> OutboxTx:
        log.warning("%s: filling nonce hole %d with a no-op", address, nonce)
        tx = OutboxTx(
            idempotency_key=f"filler:{self.chain_id}:{address}:{nonce}:{utcnow().timestamp()}",
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
        block, tip = self.rpc.batch(
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
        account = self.keys.account(address)
        sender = self._lock_sender(session, address)
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
        balance = int(self.rpc.call("eth_getBalance", [address, "pending"]), 16)
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
                self._sign_cancel(t, account, max(max_fee, bumped), tip)
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
                self._sign_call(t, account, max_fee, tip)
        session.commit()  # signed and saved before any broadcast: a crash re-sends the same bytes
        if not ready:
            return False
        answers = self.rpc.batch(
            [("eth_sendRawTransaction", [t.raw_tx]) for t in ready] + [("eth_blockNumber", [])]
        )
        head_answer = answers.pop()
        head = int(head_answer, 16) if isinstance(head_answer, str) else 0
        self._lock_sender(session, address)  # serialise the bookkeeping with other workers
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
                if self._any_attempt_mined(t):
                    self._mark_sent(
                        t, head, now, "nonce too low: our transaction was mined", events
                    )
                    report.sent += 1
                else:  # the nonce went to another transaction: take a new one after reconcile
                    self._release_nonce(t)
                    self._reconciled.discard(address)
                    again = True
            elif kind is ErrorKind.REPLACEMENT_UNDERPRICED:
                # Another transaction of ours holds this nonce in the pool: outbid it next run.
                fee = int(t.max_fee_per_gas or max_fee) * 9 // 8 + 1
                self._sign_call(
                    t, account, fee, int(t.max_priority_fee_per_gas or tip) * 9 // 8 + 1
                )
            elif kind is ErrorKind.INSUFFICIENT_FUNDS:
                report.waiting_for_funds += 1
                self._raise_alert(
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
            call = {"from": address, "to": self.address_of(t.contract), "data": t.call_data}
            if int(t.value):
                call["value"] = _hex(int(t.value))
            calls.append(("eth_estimateGas", [call, "pending"]))
        for t, est in zip(rows, self.rpc.batch(calls), strict=True):
            if not isinstance(est, RpcError):
                t.gas_limit = int(int(est, 16) * ESTIMATE_MARGIN)
            elif est.kind is ErrorKind.REVERTED or est.data:
                t.error_kind = ErrorKind.REVERTED.value
                t.error = decode_revert(est.data)
                transition(t, S.FAILED, f"estimate reverted: {t.error}")
                report.failed += 1
            else:
                t.error_kind, t.error = est.kind.value, est.message

    def _sign_call(self, t: OutboxTx, account: LocalAccount, max_fee: int, tip: int) -> None:
        assert t.nonce is not None and t.gas_limit is not None
        to = account.address if t.sender_kind == FILLER else self._to_address(t)
        tip = min(tip, max_fee)
        signed = sign_dynamic_fee_tx(
            self.keys.signing_key(account.address),
            chain_id=self.chain_id,
            nonce=t.nonce,
            to=to,
            value=int(t.value),
            data=t.call_data,
            gas=t.gas_limit,
            max_fee=max_fee,
            tip=tip,
        )
        self._record_attempt(t, signed, "call", max_fee, tip)

    def _sign_cancel(self, t: OutboxTx, account: LocalAccount, max_fee: int, tip: int) -> None:
        assert t.nonce is not None
        tip = max(tip, int(t.max_priority_fee_per_gas or 0) * 9 // 8 + 1)
        max_fee = max(max_fee, tip)
        signed = sign_dynamic_fee_tx(
            self.keys.signing_key(account.address),
            chain_id=self.chain_id,
            nonce=t.nonce,
            to=account.address,
            value=0,
            data="0x",
            gas=21_000,
            max_fee=max_fee,
            tip=tip,
        )
        self._record_attempt(t, signed, "cancel", max_fee, tip)

    def _record_attempt(
        self, t: OutboxTx, signed: tuple[bytes, bytes], kind: str, max_fee: int, tip: int
    ) -> None:
        raw, tx_hash_bytes = signed
        tx_hash = "0x" + tx_hash_bytes.hex()
        t.raw_tx = "0x" + raw.hex()
        t.tx_hash = tx_hash
        t.max_fee_per_gas = Decimal(max_fee)
        t.max_priority_fee_per_gas = Decimal(tip)
        attempt = OutboxAttempt(
            kind=kind,
            tx_hash=tx_hash,
            nonce=t.nonce,
            max_fee_per_gas=Decimal(max_fee),
            max_priority_fee_per_gas=Decimal(tip),
        )
        t.attempts.append(attempt)

    def _to_address(self, t: OutboxTx) -> str:
        if t.sender_kind == RELAYER:
            return self.forwarder_address
        return self.address_of(t.contract)

    @staticmethod
    def _mark_sent(
        t: OutboxTx, head: int, now: dt.datetime, reason: str, events: list[dict[str, Any]]
    ) -> None:
        t.sent_block = head
        t.broadcast_at = now
        t.error_kind = t.error = None
        transition_batched(t, S.SENT, reason, events)

    def _any_attempt_mined(self, t: OutboxTx) -> bool:
        receipts = self.rpc.batch([("eth_getTransactionReceipt", [a.tx_hash]) for a in t.attempts])
        return any(isinstance(r, dict) for r in receipts)

    @staticmethod
    def _release_nonce(t: OutboxTx) -> None:
        """Give a row whose nonce someone else consumed a fresh one (it never reached chain)."""
        t.nonce = None
        t.raw_tx = None
        t.tx_hash = None

    # ---------------------------------------------------------------- alerts and budget

    def _raise_alert(self, session: Session, kind: str, subject: str, message: str) -> None:
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

    def _resolve_alerts(self, session: Session, kind: str, subject: str) -> None:
        for alert in session.scalars(
            select(OutboxAlert).where(
                OutboxAlert.kind == kind,
                OutboxAlert.subject == subject,
                OutboxAlert.resolved_at.is_(None),
            )
        ):
            alert.resolved_at = utcnow()
            log.warning("resolved %s %s", kind, subject)

    def _funds_alert(self, session: Session, address: str, balance: int, waiting: int) -> None:
        if waiting:
            self._raise_alert(
                session,
                "relayer_low_funds",
                address,
                f"{address} holds {balance} wei and cannot pay for {waiting} queued "
                "transactions; they wait in the queue until it is topped up",
            )
        elif balance >= self.settings.relayer_low_balance_wei:
            self._resolve_alerts(session, "relayer_low_funds", address)
        if balance < self.settings.relayer_low_balance_wei:
            self._raise_alert(
                session,
                "relayer_low_balance",
                address,
                f"{address} holds {balance} wei, under {self.settings.relayer_low_balance_wei}",
            )
        else:
            self._resolve_alerts(session, "relayer_low_balance", address)

    @staticmethod
    def _record_spend(session: Session, spends: dict[tuple[str, int], list[int]]) -> None:
        """Add {(scope, id): [wei, count]} to today's gas spend rows (one row lock each)."""
        day = _today()
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

    def gas_spent(
        self, session: Session, scope: str, scope_id: int, day: dt.date | None = None
    ) -> int:
        """Wei of gas paid for a town or a user on `day` (today by default)."""
        value = session.scalar(
            select(func.coalesce(func.sum(GasSpend.wei), 0)).where(
                GasSpend.scope == scope,
                GasSpend.scope_id == scope_id,
                GasSpend.day == (day or _today()),
            )
        )
        return int(value or 0)

    # ---------------------------------------------------------------- receipts

    def check_receipts(self, session: Session, limit: int = 1000) -> dict[str, int]:
        """Settle in-flight rows whose transaction (any attempt) is mined with enough
        confirmations: confirmed, reverted (decoded error) or cancelled. Commits."""
        rows = list(
            session.scalars(
                select(OutboxTx)
                .where(OutboxTx.state.in_(IN_FLIGHT))
                .order_by(OutboxTx.id)
                .limit(limit)
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
        first = self.rpc.batch(
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
        index: list[tuple[OutboxTx, OutboxAttempt]] = [(t, a) for t in rows for a in t.attempts]
        receipts = self.rpc.batch([("eth_getTransactionReceipt", [a.tx_hash]) for _, a in index])
        found: dict[int, tuple[OutboxAttempt, dict[str, Any]]] = {}
        spends: dict[tuple[str, int], list[int]] = {}
        events: list[dict[str, Any]] = []
        for (t, a), r in zip(index, receipts, strict=True):
            if isinstance(r, dict):
                found[t.id] = (a, r)
        for t in rows:
            if t.id not in found:
                if (
                    t.nonce is not None
                    and mined_nonce.get(t.sender_address, -1) > t.nonce
                    and head >= (t.sent_block or 0) + 2
                ):
                    # Its nonce is used and none of its hashes is mined: another tx took it.
                    transition_batched(t, S.FAILED, "nonce consumed by another transaction", events)
                    t.error_kind = ErrorKind.NONCE_TOO_LOW.value
                    counts["failed"] = counts.get("failed", 0) + 1
                continue
            attempt, receipt = found[t.id]
            block = int(receipt["blockNumber"], 16)
            if block > head - self.settings.confirmations_for(self.chain_id):
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
        self._record_spend(session, spends)
        session.commit()
        return counts

    def _revert_reason(self, t: OutboxTx, block: int) -> str:
        """Replay the call at the block before to read the custom error (best effort).

        The forwarder wraps a failed inner call in FailedCall(); replaying the inner call as the
        forwarder (ERC-2771 appends the user's address) recovers the target's own error.
        """
        try:
            if t.forward_request:
                fr = ForwardRequest.from_json(t.forward_request)
                call = {
                    "from": self.forwarder_address,
                    "to": fr.to,
                    "data": fr.data + fr.from_address.lower().removeprefix("0x"),
                }
            else:
                call = {"from": t.sender_address, "to": self.address_of(t.contract),
                        "data": t.call_data}  # fmt: skip
            self.rpc.call("eth_call", [call, _hex(max(block - 1, 0))])
        except RpcError as exc:
            return decode_revert(exc.data)
        except RpcUnavailable:
            return "unknown revert (RPC unavailable)"
        return "reverted (replay succeeded: out of gas or state changed)"

    # ---------------------------------------------------------------- stuck

    def bump_stuck(self, session: Session, stuck_blocks: int | None = None) -> int:
        """Re-price in-flight rows unmined after N blocks (+12.5% at least); past its deadline a
        row's nonce gets a 0-value no-op instead. Commits; returns how many were re-sent."""
        n_blocks = self.settings.outbox_stuck_blocks if stuck_blocks is None else stuck_blocks
        head = int(self.rpc.call("eth_blockNumber", []), 16)
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
        pairs = [(t, a) for t in rows for a in t.attempts]
        receipts = self.rpc.batch([("eth_getTransactionReceipt", [a.tx_hash]) for _, a in pairs])
        mined = {t.id for (t, _), r in zip(pairs, receipts, strict=True) if isinstance(r, dict)}
        rows = [t for t in rows if t.id not in mined]
        market_fee, market_tip = self._fees()
        now = utcnow()
        for t in rows:
            account = self.keys.account(t.sender_address)
            old_fee = int(t.max_fee_per_gas or 0)
            old_tip = int(t.max_priority_fee_per_gas or 0)
            fee = max(market_fee, -(-old_fee * BUMP_NUMERATOR // BUMP_DENOMINATOR))
            tip = max(market_tip, -(-old_tip * BUMP_NUMERATOR // BUMP_DENOMINATOR))
            cancelling = any(a.kind == "cancel" for a in t.attempts)
            if cancelling or (t.deadline_at is not None and t.deadline_at <= now):
                self._sign_cancel(t, account, fee, tip)
                reason = "deadline passed: cancel no-op sent"
            else:
                self._sign_call(t, account, fee, tip)
                reason = f"unmined after {n_blocks} blocks: re-priced to {fee} wei/gas"
            t.sent_block = head
            transition(t, S.REPLACED, reason)
        session.commit()
        results = self.rpc.batch([("eth_sendRawTransaction", [t.raw_tx]) for t in rows])
        for t, res in zip(rows, results, strict=True):
            if isinstance(res, RpcError) and res.kind is not ErrorKind.ALREADY_KNOWN:
                log.warning("bump of outbox tx %s: %s (%s)", t.id, res.message, res.kind)
        return len(rows)


def outbox_service() -> OutboxService:
    """The app's OutboxService (one per app, built from its settings on first use)."""
    from flask import current_app

    ext = current_app.extensions
    svc = ext.get("outbox")
    if svc is None:
        svc = ext["outbox"] = OutboxService(ext["settings"])
    return svc  # type: ignore[no-any-return]
