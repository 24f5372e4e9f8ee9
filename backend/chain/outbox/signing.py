"""Signing of the outbox's transactions: EIP-1559 encoding (RLP) and signature, and the
attempt row every signed call or cancel no-op leaves on its OutboxTx."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import coincurve
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from backend.chain.forwarder import sign_digest
from backend.chain.outbox.context import OutboxContext
from backend.chain.outbox.states import FILLER
from backend.chain.outbox_models import OutboxAttempt, OutboxTx


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


def sign_call(
    ctx: OutboxContext, t: OutboxTx, account: LocalAccount, max_fee: int, tip: int
) -> None:
    """Sign the row's own call (a filler: a 0-value no-op to itself) at these fees."""
    assert t.nonce is not None and t.gas_limit is not None
    to = account.address if t.sender_kind == FILLER else ctx.to_address(t)
    tip = min(tip, max_fee)
    signed = sign_dynamic_fee_tx(
        ctx.keys.signing_key(account.address),
        chain_id=ctx.chain_id,
        nonce=t.nonce,
        to=to,
        value=int(t.value),
        data=t.call_data,
        gas=t.gas_limit,
        max_fee=max_fee,
        tip=tip,
    )
    record_attempt(t, signed, "call", max_fee, tip)


def sign_cancel(
    ctx: OutboxContext, t: OutboxTx, account: LocalAccount, max_fee: int, tip: int
) -> None:
    """Sign a 0-value no-op on the row's nonce, outbidding its last attempt's tip."""
    assert t.nonce is not None
    tip = max(tip, int(t.max_priority_fee_per_gas or 0) * 9 // 8 + 1)
    max_fee = max(max_fee, tip)
    signed = sign_dynamic_fee_tx(
        ctx.keys.signing_key(account.address),
        chain_id=ctx.chain_id,
        nonce=t.nonce,
        to=account.address,
        value=0,
        data="0x",
        gas=21_000,
        max_fee=max_fee,
        tip=tip,
    )
    record_attempt(t, signed, "cancel", max_fee, tip)


def record_attempt(
    t: OutboxTx, signed: tuple[bytes, bytes], kind: str, max_fee: int, tip: int
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
