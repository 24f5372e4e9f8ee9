"""Claims (ADR 0017): a held claim can lapse (nobody claimed it and its wallet holds nothing
more in that town: the points expired on chain, or the issuance failed).

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-04 22:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0036"
down_revision: str | None = "0035"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("points_claims") as b:
        b.drop_constraint(op.f("ck_points_claims_state"), type_="check")
        b.create_check_constraint(
            op.f("ck_points_claims_state"), "state IN ('held', 'taken', 'moved', 'lapsed')"
        )


def downgrade() -> None:
    op.execute("UPDATE points_claims SET state = 'held' WHERE state = 'lapsed'")
    with op.batch_alter_table("points_claims") as b:
        b.drop_constraint(op.f("ck_points_claims_state"), type_="check")
        b.create_check_constraint(
            op.f("ck_points_claims_state"), "state IN ('held', 'taken', 'moved')"
        )
