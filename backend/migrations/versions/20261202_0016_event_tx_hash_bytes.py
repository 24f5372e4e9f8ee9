"""Events' tx_hash as 32 bytes (bytea / BLOB) instead of 66-character text

chain_events and chain_pending_events. The UNIQUE (chain_id, tx_hash, log_index) index takes a
random place for every stored log; with 32-byte keys it is half the size and compares bytes,
not collated text (docs/benchmarks-indexer.md). Python still sees 0x-hex strings
(backend.chain.indexer_models.Hash32). Existing rows are converted, both ways.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 11:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("chain_events", "chain_pending_events")


def _sqlite_convert(table: str, to_bytes: bool) -> None:
    """SQLite keeps a value's own type whatever the column says: convert row by row."""
    bind = op.get_bind()
    rows = bind.execute(sa.text(f"SELECT rowid, tx_hash FROM {table}")).all()  # noqa: S608
    if to_bytes:
        new = [{"r": r, "h": bytes.fromhex(h.removeprefix("0x"))} for r, h in rows]
    else:
        new = [{"r": r, "h": "0x" + bytes(h).hex()} for r, h in rows]
    if new:
        bind.execute(sa.text(f"UPDATE {table} SET tx_hash = :h WHERE rowid = :r"), new)  # noqa: S608


def _retype(to_bytes: bool) -> None:
    text, raw = sa.String(66), sa.LargeBinary()
    for table in TABLES:
        if op.get_bind().dialect.name == "postgresql":
            op.execute(
                f"ALTER TABLE {table} ALTER COLUMN tx_hash TYPE "
                + (
                    "bytea USING decode(substr(tx_hash, 3), 'hex')"
                    if to_bytes
                    else "varchar(66) USING '0x' || encode(tx_hash, 'hex')"
                )
            )
        else:
            _sqlite_convert(table, to_bytes)
            with op.batch_alter_table(table, recreate="always") as batch:
                batch.alter_column(
                    "tx_hash",
                    existing_type=text if to_bytes else raw,
                    type_=raw if to_bytes else text,
                )


def upgrade() -> None:
    _retype(to_bytes=True)


def downgrade() -> None:
    _retype(to_bytes=False)
