"""Failed chain calls of points grants and shop registrations are recorded and sent again.

points_grants: `status` may now be stored "failed" (backend/points/grant_failures.py);
`reason` (the on-chain reason string, so a retry sends the same issue), `attempts` (how many
issue calls were queued: the retry's outbox key) and `reserved_day` (the JST day whose daily
caps hold the grant, given back when its issue fails). Earlier grants get the reason of the
only two kinds the platform granted (an event's "prize", else "welcome"), one attempt, and the
pending ones the JST day they were made, so a failure of theirs gives that day back too.

merchants: status "failed" (the shop's addMerchant call failed; staff register it again).

Revision ID: 0050
Revises: 0049
Create Date: 2026-12-06 14:00:00
"""

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0050"
down_revision: str | None = "0049"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MERCHANTS_BEFORE = "status IN ('registering', 'active', 'suspended')"
MERCHANTS_AFTER = "status IN ('registering', 'active', 'suspended', 'failed')"
JST = dt.timezone(dt.timedelta(hours=9))


def _merchant_statuses(check: str) -> None:
    with op.batch_alter_table("merchants") as batch:
        batch.drop_constraint(op.f("ck_merchants_status"), type_="check")
        batch.create_check_constraint(op.f("ck_merchants_status"), sa.text(check))


def upgrade() -> None:
    with op.batch_alter_table("points_grants", schema=None) as batch:
        batch.add_column(sa.Column("reason", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("reserved_day", sa.Date(), nullable=True))
    op.execute(
        "UPDATE points_grants SET reason = CASE WHEN grant_key LIKE 'event:%' "
        "THEN 'prize' ELSE 'welcome' END"
    )
    grants = sa.table(
        "points_grants",
        sa.column("id", sa.Integer()),
        sa.column("created_at", sa.DateTime()),
        sa.column("status", sa.String()),
        sa.column("reserved_day", sa.Date()),
    )
    conn = op.get_bind()
    pending = conn.execute(
        sa.select(grants.c.id, grants.c.created_at).where(grants.c.status == "pending")
    ).all()
    for grant_id, created_at in pending:  # stored as UTC (naive on SQLite)
        if created_at is None:
            continue
        if isinstance(created_at, str):
            created_at = dt.datetime.fromisoformat(created_at)
        if created_at.tzinfo is None:
            created_at = created_at.replace(tzinfo=dt.UTC)
        conn.execute(
            grants.update()
            .where(grants.c.id == grant_id)
            .values(reserved_day=created_at.astimezone(JST).date())
        )
    _merchant_statuses(MERCHANTS_AFTER)


def downgrade() -> None:
    # A failed shop goes back to waiting for its registration, as it was shown before.
    op.execute("UPDATE merchants SET status = 'registering' WHERE status = 'failed'")
    _merchant_statuses(MERCHANTS_BEFORE)
    op.execute("UPDATE points_grants SET status = 'pending' WHERE status = 'failed'")
    with op.batch_alter_table("points_grants", schema=None) as batch:
        batch.drop_column("reserved_day")
        batch.drop_column("attempts")
        batch.drop_column("reason")
