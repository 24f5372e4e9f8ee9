"""The reorg-safe event indexer: logs of every watched contract up to head - confirmations.

How it works (see docs/adr/0004-indexer-reorgs.md):

- Watched contracts are every entry of deployments/<chain_id>.json plus rows that domains add
  at runtime with `watch_contract` (e.g. a collection created by a factory). Each has its own
  `synced_to` block, so a contract added later backfills from its own from_block while the
  others wait; a fresh database backfills from each deployment block.
- One DB transaction per step: lock the chain's cursor row (SELECT ... FOR UPDATE SKIP LOCKED
  on PostgreSQL; a lease on SQLite), check the stored block hashes against the chain, then for
  each chunk (one raw eth_getLogs of `chunk_size` blocks) until the transaction holds
  `batch_events` events: decode the logs from a precomputed topic0 map (single-word types are
  sliced directly, others go through eth_abi), COPY them into `chain_events`, check the chunk
  against headers read after its logs; then record the blocks (hash and parent hash), run the
  domain handlers, advance the cursors, commit. A worker killed mid-transaction leaves nothing
  behind; the primary key (chain_id, block_number, log_index) and UNIQUE(chain_id, tx_hash,
  log_index) make a second insert of the same log fail the transaction rather than duplicate
  it.
- Throughput: up to two chunks' eth_getLogs are requested ahead, so the node computes them
  while this process decodes and PostgreSQL works through the COPY (_Prefetcher; each is
  re-checked against the chain inside the transaction that uses it). Logs are turned straight
  into COPY lines; a ChainEvent is only built for handlers that want one, and the token
  projection folds a transaction's chunks into one upsert per (token, holder).
- Reorgs: before every transaction the highest stored block's hash is compared with the chain. On a
  mismatch the indexer walks down the stored blocks to the highest one the chain still has
  (the common ancestor), and in ONE transaction tells every handler to `revert` the events
  above it (newest first), deletes those events and blocks, and moves the cursors back; the
  next chunks re-index the new branch.
- Handlers are registered per event name (optionally per contract key, artifact name or
  address) with an `apply` and a `revert` function. Both receive the DB session of the
  indexing transaction and the events in chain order (reverse chain order for `revert`), so a
  handler's effects commit or roll back with the events. We chose revert hooks over rebuilding
  projections from scratch because a rebuild costs O(history) on every reorg, while a revert
  costs O(depth) and the common case (a 1-2 block reorg) touches a handful of rows.
- Pending: logs above head - confirmations are kept in `chain_pending_events`, replaced on every
  pass, so pages can show "pending" until the event is confirmed and handled.

Modules: events (ChainEvent, the handler registry, watch_contract, pending_events), decoding
(topic0 decoders), storage (COPY lines and upserts, the chunk decoder), prefetch (eth_getLogs
ahead), core (the Indexer and reorgs), projection (token balances and owners), votes
(ERC-5805 delegates' votes per block), reconcile (the
projection against chain reads). The JSON-RPC client is backend.chain.rpc, the errors
backend.chain.errors.

Only this package talks to the chain: domains see `ChainEvent` and plain functions.
"""

from backend.chain.errors import IndexerError
from backend.chain.indexer.core import Indexer, IndexResult
from backend.chain.indexer.events import (
    ZERO_ADDRESS,
    ChainEvent,
    EventSubject,
    Handler,
    pending_events,
    register_handler,
    unregister_handler,
    watch_contract,
)
from backend.chain.indexer.projection import TOKEN_PROJECTION
from backend.chain.indexer.reconcile import (
    Difference,
    projection_snapshot,
    reconcile,
    store_report,
)
from backend.chain.indexer.votes import VOTES_PROJECTION
from backend.chain.rpc import JsonRpc, PendingLogs, RpcError

__all__ = [
    "TOKEN_PROJECTION",
    "VOTES_PROJECTION",
    "ZERO_ADDRESS",
    "ChainEvent",
    "Difference",
    "EventSubject",
    "Handler",
    "IndexResult",
    "Indexer",
    "IndexerError",
    "JsonRpc",
    "PendingLogs",
    "RpcError",
    "pending_events",
    "projection_snapshot",
    "reconcile",
    "register_handler",
    "store_report",
    "unregister_handler",
    "watch_contract",
]
