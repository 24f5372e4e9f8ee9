"""Pages read the projection, never the node (issue 16 §1): tokens a listing sold on chain
(nft_listings.sold), perk uses per token (nft_perk_uses), ERC-5805 delegates' votes per block
(chain_vote_checkpoints), and a proposal's voting token and its quorum once its snapshot is
past (dao_proposals.voting_token, .quorum). The first three are filled from the events the
indexer already stored; the last two are recorded by the worker's dao.record_proposal_facts.
And the data generation cached pages are checked against (data_generations,
backend/core/page_cache.py).

Revision ID: 0045
Revises: 0044
Create Date: 2026-12-05 09:00:00
"""

import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0045"
down_revision: str | None = "0044"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AMOUNT = sa.Numeric(precision=78, scale=0)


def _events(conn: sa.Connection, names: tuple[str, ...]) -> list[Any]:
    rows = conn.execute(
        sa.text(
            "SELECT chain_id, contract_key, contract_address, event_name, args, block_number"
            " FROM chain_events WHERE event_name IN :names ORDER BY block_number, log_index"
        ).bindparams(sa.bindparam("names", expanding=True)),
        {"names": list(names)},
    ).all()
    out = []
    for chain_id, key, address, name, args, block in rows:
        out.append(
            (
                chain_id,
                key,
                address,
                name,
                json.loads(args) if isinstance(args, str) else args,
                block,
            )
        )
    return out


def _backfill(conn: sa.Connection) -> None:
    sold: dict[tuple[int, str, int], int] = defaultdict(int)
    uses: dict[tuple[int, str, int, int], int] = defaultdict(int)
    votes: dict[tuple[int, str, str, int], int] = {}
    names = ("Purchased", "PaidOffChainMinted", "PerkUsed", "DelegateVotesChanged")
    for chain_id, key, address, name, args, block in _events(conn, names):
        if name in ("Purchased", "PaidOffChainMinted"):
            parts = str(key).split(".")
            if len(parts) == 3 and parts[0] == "towns":
                sold[(chain_id, parts[1], int(args["listingId"]))] += int(args["quantity"])
        elif name == "PerkUsed":
            uses[(chain_id, address, int(args["tokenId"]), int(args["perkId"]))] += 1
        else:
            votes[(chain_id, address, str(args["delegate"]), block)] = int(args["newVotes"])
    for (chain_id, slug, listing_id), quantity in sold.items():
        conn.execute(
            sa.text(
                "UPDATE nft_listings SET sold = :n WHERE chain_listing_id = :listing AND town_id"
                " IN (SELECT id FROM towns WHERE slug = :slug AND chain_id = :chain)"
            ),
            {"n": quantity, "listing": listing_id, "slug": slug, "chain": chain_id},
        )
    if uses:
        conn.execute(
            sa.text(
                "INSERT INTO nft_perk_uses (chain_id, contract_address, token_id, perk_id, used)"
                " VALUES (:c, :a, :t, :p, :n)"
            ),
            [{"c": c, "a": a, "t": t, "p": p, "n": n} for (c, a, t, p), n in uses.items()],
        )
    if votes:
        conn.execute(
            sa.text(
                "INSERT INTO chain_vote_checkpoints"
                " (chain_id, contract_address, account, block_number, votes)"
                " VALUES (:c, :a, :d, :b, :v)"
            ),
            [{"c": c, "a": a, "d": d, "b": b, "v": v} for (c, a, d, b), v in votes.items()],
        )


def upgrade() -> None:
    with op.batch_alter_table("nft_listings") as batch_op:
        batch_op.add_column(sa.Column("sold", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("dao_proposals") as batch_op:
        batch_op.add_column(sa.Column("voting_token", sa.String(length=42), nullable=True))
        batch_op.add_column(sa.Column("quorum", AMOUNT, nullable=True))
    op.create_table(
        "nft_perk_uses",
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("contract_address", sa.String(length=42), nullable=False),
        sa.Column("token_id", AMOUNT, nullable=False),
        sa.Column("perk_id", AMOUNT, nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "chain_id", "contract_address", "token_id", "perk_id", name=op.f("pk_nft_perk_uses")
        ),
    )
    op.create_table(
        "chain_vote_checkpoints",
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("contract_address", sa.String(length=42), nullable=False),
        sa.Column("account", sa.String(length=42), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("votes", AMOUNT, nullable=False),
        sa.PrimaryKeyConstraint(
            "chain_id",
            "contract_address",
            "account",
            "block_number",
            name=op.f("pk_chain_vote_checkpoints"),
        ),
    )
    op.create_table(
        "data_generations",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_generations")),
    )
    _backfill(op.get_bind())


def downgrade() -> None:
    op.drop_table("data_generations")
    op.drop_table("chain_vote_checkpoints")
    op.drop_table("nft_perk_uses")
    with op.batch_alter_table("dao_proposals") as batch_op:
        batch_op.drop_column("quorum")
        batch_op.drop_column("voting_token")
    with op.batch_alter_table("nft_listings") as batch_op:
        batch_op.drop_column("sold")
