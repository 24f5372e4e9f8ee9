"""Town people and the audit log per town (issue 13, the console's People and Audit log)

memberships.role also takes 'admin' (the town's admin, who appoints and removes the others) and
'data' (data staff, the only people who may export personal or anonymised data).

audit_log.town_id: the town whose console shows the row (no foreign key: the audit log is
core's and knows no domain's table). Backfilled from what the rows already say: details'
"town_id", a "town" subject, and the town of a merchant, settlement or charge subject (or of
details' "merchant_id"). Rows that name no town (platform-wide) stay NULL. The audit log is
append-only on PostgreSQL: the backfill alone runs with its trigger off.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-04 18:00:00
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_ROLES = "role IN ('staff', 'verifier')"
NEW_ROLES = "role IN ('admin', 'staff', 'verifier', 'data')"


def upgrade() -> None:
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_memberships_role"), type_="check")
        batch_op.create_check_constraint(op.f("ck_memberships_role"), NEW_ROLES)
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("town_id", sa.Integer(), nullable=True))
        batch_op.create_index("ix_audit_log_town_id_at", ["town_id", "at"], unique=False)
    _backfill()


def _backfill() -> None:
    conn = op.get_bind()
    towns = {
        kind: dict(conn.execute(sa.text(f"SELECT id, town_id FROM {table}")).all())  # noqa: S608
        for kind, table in (
            ("merchant", "merchants"),
            ("settlement", "merchant_settlements"),
            ("charge", "merchant_charges"),
        )
    }
    rows = conn.execute(
        sa.text("SELECT id, subject_type, subject_id, details FROM audit_log WHERE town_id IS NULL")
    ).all()
    updates = []
    for row_id, subject_type, subject_id, details in rows:
        if isinstance(details, str):
            try:
                details = json.loads(details)
            except ValueError:
                details = {}
        details = details if isinstance(details, dict) else {}
        town = details.get("town_id")
        if not (isinstance(town, int) and not isinstance(town, bool)):
            town = None
            sid = int(subject_id) if str(subject_id).isdigit() else None
            if subject_type == "town" and sid is not None:
                town = sid
            elif subject_type in towns and sid is not None:
                town = towns[subject_type].get(sid)
            if town is None and isinstance(details.get("merchant_id"), int):
                town = towns["merchant"].get(details["merchant_id"])
        if town is not None:
            updates.append({"id": row_id, "town_id": town})
    if not updates:
        return
    # audit_log is append-only on PostgreSQL (a trigger since 0001): this one backfill of the new
    # column, and nothing else, runs with the trigger off, inside the migration's transaction.
    pg = conn.dialect.name == "postgresql"
    if pg:
        op.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
    conn.execute(sa.text("UPDATE audit_log SET town_id = :town_id WHERE id = :id"), updates)
    if pg:
        op.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_town_id_at")
        batch_op.drop_column("town_id")
    # The two new roles cannot be kept under the old constraint: their memberships go.
    op.execute(sa.text("DELETE FROM memberships WHERE role IN ('admin', 'data')"))
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_memberships_role"), type_="check")
        batch_op.create_check_constraint(op.f("ck_memberships_role"), OLD_ROLES)
