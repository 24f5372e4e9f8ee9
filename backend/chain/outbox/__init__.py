"""The transaction outbox: every on-chain action is a row, queued in the caller's DB transaction.

    queued --> sent --> confirmed | reverted
       |         \\--> replaced (re-priced or cancel no-op sent) --> confirmed | reverted | ...
       \\--> cancelled | failed                                   cancelled | failed

Domains call `OutboxService.enqueue(session, ContractCall(...), sender=Sender...(...),
key=..., subject=Subject(...))`, which only ADDS rows to their session; after their single
commit the Celery task "chain.send_outbox" is sent (after_commit hook). The worker side
(`send_pending`, `check_receipts`, `bump_stuck`) follows the rules in sending.py: nonces under a
sender row lock, signed bytes committed before broadcast, a nonce kept until consumed on chain,
unpaid work left queued with an alert.

User actions are ERC-2771 forward requests (backend/chain/forwarder.py) signed by the user and
executed by relayer keys; a user's requests always go through the same relayer, in order.

Modules: states (state machine), errors (errors, revert decoding), rpc (JSON-RPC client),
context (settings, keys, chain facts shared by the parts), enqueue (web side), sending (worker:
batches, nonces, fees, re-pricing, alerts), receipts (settling, gas accounting), signing
(EIP-1559 transactions), service (the `OutboxService` façade). Tables: outbox_models.py; reorg
recovery: outbox_recovery.py; Celery tasks: outbox_tasks.py.
"""

from backend.chain.outbox.context import ESTIMATE_MARGIN, GWEI, OutboxContext
from backend.chain.outbox.enqueue import (
    DEFAULT_DEADLINE_SECONDS,
    DEFAULT_FORWARD_GAS,
    AuditEntry,
    ContractCall,
    ContractCreation,
    Enqueuer,
    Sender,
    Subject,
)
from backend.chain.outbox.errors import (
    ErrorKind,
    GasBudgetExceeded,
    IdempotencyConflict,
    RpcError,
    RpcUnavailable,
    StaleForwardRequest,
    classify_error,
    decode_revert,
)
from backend.chain.outbox.receipts import ReceiptChecker, record_spend
from backend.chain.outbox.rpc import RpcClient
from backend.chain.outbox.sending import (
    BUMP_DENOMINATOR,
    BUMP_NUMERATOR,
    BatchSender,
    SendReport,
    raise_alert,
    resolve_alerts,
)
from backend.chain.outbox.service import OutboxService, outbox_service
from backend.chain.outbox.signing import sign_dynamic_fee_tx
from backend.chain.outbox.states import (
    FILLER,
    IN_FLIGHT,
    RELAYER,
    TERMINAL,
    TRANSITIONS,
    IllegalTransition,
    S,
    TxState,
    transition,
    transition_batched,
    write_events,
)

__all__ = [
    "BUMP_DENOMINATOR",
    "BUMP_NUMERATOR",
    "DEFAULT_DEADLINE_SECONDS",
    "DEFAULT_FORWARD_GAS",
    "ESTIMATE_MARGIN",
    "FILLER",
    "GWEI",
    "IN_FLIGHT",
    "RELAYER",
    "TERMINAL",
    "TRANSITIONS",
    "AuditEntry",
    "BatchSender",
    "ContractCall",
    "ContractCreation",
    "Enqueuer",
    "ErrorKind",
    "GasBudgetExceeded",
    "IdempotencyConflict",
    "IllegalTransition",
    "OutboxContext",
    "OutboxService",
    "ReceiptChecker",
    "RpcClient",
    "RpcError",
    "RpcUnavailable",
    "S",
    "SendReport",
    "Sender",
    "StaleForwardRequest",
    "Subject",
    "TxState",
    "classify_error",
    "decode_revert",
    "outbox_service",
    "raise_alert",
    "record_spend",
    "resolve_alerts",
    "sign_dynamic_fee_tx",
    "transition",
    "transition_batched",
    "write_events",
]
