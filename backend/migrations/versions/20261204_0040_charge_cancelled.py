"""A charge can be cancelled by the shop's staff while it is still pending (issue 15 §7):
merchant_charges.status also takes 'cancelled'.

Revision ID: 0040
Revises: 0039
Create Date: 2026-12-04 22:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0040"
down_revision: str | None = "0039"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "status IN ('pending', 'paying', 'paid', 'expired', 'failed')"
NEW = "status IN ('pending', 'paying', 'paid', 'expired', 'failed', 'cancelled')"


def upgrade() -> None:
    with op.batch_alter_table("merchant_charges", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_merchant_charges_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_merchant_charges_status"), NEW)


def downgrade() -> None:
    op.execute("UPDATE merchant_charges SET status = 'expired' WHERE status = 'cancelled'")
    with op.batch_alter_table("merchant_charges", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_merchant_charges_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_merchant_charges_status"), OLD)
