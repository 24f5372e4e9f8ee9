"""The chain's front door: the only backend.chain module that domains and pages import.

Everything else in backend/chain (the indexer, the outbox and its tables, JSON-RPC, custody
internals, deployment) is the chain package's own business and may change shape without
notice; an import-linter contract in pyproject.toml keeps domains on this module. What a domain
may do, by group:

- **React to events** (`ChainEvent`, `EventHandler`, `handler`, `register_handlers`): a domain
  declares its handlers as data (a `HANDLERS` tuple of `handler(...)` in its handlers module);
  the composition root (backend/composition.py) registers them, in a fixed order, in every
  process. Handlers run inside the indexing transaction and must only touch the database
  through the session they are given. `watch_contract` adds a contract to index (e.g. one made
  by a factory).
- **Send transactions** (`outbox_service`, `OutboxService`, `ContractCall`, `Sender`,
  `Subject`, `AuditEntry`): `outbox_service().enqueue(session, ContractCall(...), sender=...,
  key=..., subject=Subject(...))` queues a contract call in the caller's transaction; the
  relayer sends it. `OutboxTx` is the returned row's type:
  read its `id`, `state` and `tx_hash`, never query the table.
- **Read what the chain confirmed or what the platform sent** (read models): balances, owners,
  delegates' votes, indexed events, pending events, the state of sent calls, operator alerts;
  the block a contract is indexed to, stored block times and the chain's clock as pages read
  it (`chain_clock`): pages read these, never the node (issue 16 §1).
- **Keys and custody** (`get_vault`, `KeyVault`, `SealedKey`, `SealedSigner`,
  `ModelKeyStore`, `register_key_store`, ...): the custodial vault, and the column type and
  store protocol of tables that hold sealed keys.
- **Signatures and calldata** (`siwe_auth`, typed-data and forwarder helpers, governance
  helpers): pure functions over messages, signatures and ABI-encoded data.
- **Set a town up** (`TownSpec`, `CollectionSpec`, `ProgrammeSpec`, `DaoSpec`, `GuardianSpec`,
  `SetupStep`, `setup_plan`, `platform_addresses`, `record_deployment`, `role_addresses_for`,
  `ContractCreation`): a town's contracts as outbox steps sent by the `founder` role key
  (backend/chain/town_setup.py, ADR 0013); `OutboxService.created_address` reads what a
  confirmed step created.
- **The yen stablecoin** (`YenToken`, from `Web3Gateway.yen_token()`): the chain's configured
  yen token (backend/chain/yen.py), its contract, symbol and decimals.
- **Errors** (`ChainError`, the root of every chain error; `ChainUnavailable`, `KeyVaultError`,
  `CustodyNotConfigured`, `RegistryError`, `YenTokenUnavailable`): what a domain may catch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from eth_utils import is_checksum_address, is_hex_address, to_checksum_address

from backend.chain import siwe_auth
from backend.chain.custody import CustodyNotConfigured, ModelKeyStore, get_vault, register_key_store
from backend.chain.dao_settings import LOCAL_CHAIN_IDS, GuardianSpec
from backend.chain.errors import ChainError
from backend.chain.failed_calls import FAILED_CALL_STATES, follow_failed_calls
from backend.chain.forwarder import Signer, encode_call
from backend.chain.gateway import (
    ChainGateway,
    ChainStatus,
    ChainUnavailable,
    Eip712Domain,
    Web3Gateway,
)
from backend.chain.governance import (
    POLL_STATES,
    PROPOSAL_STATES,
    ballot_typed_data,
    decode_transfer,
    description_hash,
    for_browser,
    hash_proposal,
    poll_ballot_typed_data,
    recover_typed_data_signer,
    relay_signer,
    signature_hex,
    timelock_operation_id,
    timelock_salt,
)
from backend.chain.head import (
    IndexedHead,
    chain_clock,
    indexed_head,
    newest_block_time,
    synced_block,
)
from backend.chain.indexer import (
    ZERO_ADDRESS,
    ChainEvent,
    pending_events,
    register_handler,
    watch_contract,
)
from backend.chain.indexer.events import _HANDLERS as _INDEXER_HANDLERS
from backend.chain.indexer.events import Handler, HandlerFn
from backend.chain.keys import KeyVault, KeyVaultError, SealedKey, SealedSigner
from backend.chain.outbox import (
    AuditEntry,
    ContractCall,
    ContractCreation,
    OutboxService,
    Sender,
    Subject,
    outbox_service,
)
from backend.chain.outbox_models import OutboxTx
from backend.chain.read_models import (
    IndexedEvent,
    OutboxState,
    OwnedToken,
    SentCall,
    SubjectCall,
    alert_open,
    balance_of,
    calls_of_subject,
    events_of_tx,
    indexed_events,
    nft_holders_at,
    outbox_ids,
    outbox_state,
    outbox_state_in,
    outbox_states,
    outbox_tx,
    outbox_tx_for,
    owner_by_key,
    owner_of,
    raise_alert,
    resolve_alert,
    sent_calls,
    tokens_owned_by,
    votes_of,
    watched_address,
)
from backend.chain.registry import RegistryError
from backend.chain.role_keys import role_id
from backend.chain.roles_check import configured_role_addresses as role_addresses_for
from backend.chain.town_setup import (
    CollectionSpec,
    DaoSpec,
    ProgrammeSpec,
    SetupStep,
    TownSpec,
    platform_addresses,
    record_deployment,
    setup_plan,
)
from backend.chain.typed_signatures import (
    check_forward_request,
    recover_typed_data,
    sign_typed_data_with,
    split_signature,
    voucher_typed_data,
)
from backend.chain.yen import YenToken, YenTokenUnavailable

__all__ = [
    # events and handlers
    "ZERO_ADDRESS",
    "ChainEvent",
    "EventHandler",
    "HandlerFn",
    "handler",
    "register_handlers",
    "registered_handlers",
    "watch_contract",
    # sending
    "AuditEntry",
    "ContractCall",
    "OutboxService",
    "Sender",
    "Subject",
    "OutboxTx",
    "outbox_service",
    # read models
    "IndexedEvent",
    "FAILED_CALL_STATES",
    "OutboxState",
    "OwnedToken",
    "SentCall",
    "alert_open",
    "balance_of",
    "indexed_events",
    "outbox_ids",
    "outbox_state",
    "follow_failed_calls",
    "outbox_state_in",
    "outbox_states",
    "outbox_tx",
    "outbox_tx_for",
    "owner_by_key",
    "owner_of",
    "nft_holders_at",
    "pending_events",
    "raise_alert",
    "resolve_alert",
    "sent_calls",
    "tokens_owned_by",
    "events_of_tx",
    "SubjectCall",
    "calls_of_subject",
    "watched_address",
    "votes_of",
    # what the indexer knows of the head and the clock (pages never ask the node)
    "IndexedHead",
    "chain_clock",
    "indexed_head",
    "newest_block_time",
    "synced_block",
    # the node, as services receive it
    "ChainGateway",
    "Web3Gateway",
    "ChainStatus",
    "Eip712Domain",
    "YenToken",
    # keys and custody
    "KeyVault",
    "ModelKeyStore",
    "SealedKey",
    "SealedSigner",
    "Signer",
    "get_vault",
    "register_key_store",
    # signatures, calldata, governance
    "POLL_STATES",
    "PROPOSAL_STATES",
    "ballot_typed_data",
    "check_forward_request",
    "decode_transfer",
    "description_hash",
    "encode_call",
    "for_browser",
    "hash_proposal",
    "poll_ballot_typed_data",
    "recover_typed_data",
    "recover_typed_data_signer",
    "relay_signer",
    "signature_hex",
    "siwe_auth",
    "split_signature",
    "voucher_typed_data",
    "sign_as_role",
    "role_hash",
    "checksum_address",
    "timelock_operation_id",
    "timelock_salt",
    # setting a town up
    "LOCAL_CHAIN_IDS",
    "CollectionSpec",
    "ContractCreation",
    "DaoSpec",
    "GuardianSpec",
    "ProgrammeSpec",
    "SetupStep",
    "TownSpec",
    "platform_addresses",
    "record_deployment",
    "role_addresses_for",
    "setup_plan",
    # errors
    "ChainError",
    "ChainUnavailable",
    "CustodyNotConfigured",
    "KeyVaultError",
    "RegistryError",
    "YenTokenUnavailable",
]

# ---------------------------------------------------------------- handler registration

EventHandler = Handler
"""One event handler, as a domain declares it (see `handler`)."""


def handler(
    event_name: str, apply: HandlerFn, revert: HandlerFn, *, contract: str | None = None
) -> EventHandler:
    """Declare (not register) that `apply(session, events)` handles every confirmed
    `event_name` of `contract` (a contract key, artifact name or address; None: any) and
    `revert(session, events)` undoes them, newest first, when a reorg removes them."""
    return Handler(event_name, apply, revert, contract)


_registered: list[EventHandler] = []


def register_handlers(handlers: Iterable[EventHandler]) -> None:
    """Register `handlers` with the indexer, in order. Registering a handler that is already
    registered is a no-op, so every app the process builds may call this."""
    for h in handlers:
        if h in _registered:
            continue
        register_handler(h.event_name, h.apply, h.revert, contract=h.contract)
        _registered.append(h)


def registered_handlers() -> tuple[EventHandler, ...]:
    """Every handler the indexer runs, in order (the chain's own token projection first)."""
    return tuple(_INDEXER_HANDLERS)


# ---------------------------------------------------------------- addresses


def checksum_address(text: str) -> str | None:
    """`text` as an EIP-55 checksummed address, or None when it is not an address (including
    a mixed-case address whose checksum is wrong: a typo, not another address)."""
    if not isinstance(text, str) or not is_hex_address(text):
        return None
    body = text[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(text):
        return None
    return str(to_checksum_address(text))


# ---------------------------------------------------------------- role keys


def role_hash(name: str) -> str:
    """An AccessControl role's id as 0x-hex (keccak256 of its name; 0 for DEFAULT_ADMIN_ROLE),
    as a ContractCall argument (grantRole, renounceRole)."""
    return "0x" + role_id(name).hex()


def sign_as_role(outbox: OutboxService, role: str, full_message: dict[str, Any]) -> str:
    """An EIP-712 signature of `full_message` by the role key `role` (e.g. "voucher_signer").
    Only a process given ROLE_PRIVATE_KEYS (the worker) holds the key: elsewhere AppError
    (code "no_key")."""
    account = outbox.keys.account(outbox.keys.role(role))
    return sign_typed_data_with(account.key, full_message)
