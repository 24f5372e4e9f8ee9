"""Proposals put to both chambers (issue 15 §3, ADR 0021): dao_proposals.joint_of names, on
the resident chamber's half, the card chamber's row that carries the payout.

Revision ID: 0039
Revises: 0038
Create Date: 2026-12-04 22:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0039"
down_revision: str | None = "0038"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dao_proposals") as batch_op:
        batch_op.add_column(sa.Column("joint_of", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_dao_proposals_joint_of"), ["joint_of"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_dao_proposals_joint_of_dao_proposals"),
            "dao_proposals",
            ["joint_of"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("dao_proposals") as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_dao_proposals_joint_of_dao_proposals"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_dao_proposals_joint_of"))
        batch_op.drop_column("joint_of")
