"""A town's yen per point for partner clearing becomes a history of versions by month
(backend/partners/rates.py, ADR 0026): a change is in force from the next JST month and a
month's clearing uses the rate in force in it. Before, one row per town was changed in place
and every month was valued at today's rate, so the town that owed could lower its rate just
before approving its clearing.

The rate each town set is carried over as in force from the start ("0000-01"), so every month
already cleared or not is valued as it was. A downgrade keeps, per town, the version in force
in this JST month (a change still waiting is dropped: applied at once by the old code it would
reach the months already begun; the audit log keeps it).

Revision ID: 0048
Revises: 0047
Create Date: 2026-12-06 12:00:00
"""

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import backend.core.db

revision: str = "0048"
down_revision: str | None = "0047"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FROM_THE_START = "0000-01"  # backend/partners/models.py
JST = dt.timezone(dt.timedelta(hours=9))


def upgrade() -> None:
    op.create_table(
        "town_point_rate_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("town_id", sa.Integer(), nullable=False),
        sa.Column("effective_from", sa.String(length=7), nullable=False),
        sa.Column("yen_per_point", sa.Integer(), nullable=False),
        sa.Column("set_by", sa.Integer(), nullable=True),
        sa.Column("set_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "yen_per_point > 0", name=op.f("ck_town_point_rate_history_rate_positive")
        ),
        sa.ForeignKeyConstraint(
            ["town_id"], ["towns.id"], name=op.f("fk_town_point_rate_history_town_id_towns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_town_point_rate_history")),
        sa.UniqueConstraint(
            "town_id",
            "effective_from",
            name=op.f("uq_town_point_rate_history_town_id_effective_from"),
        ),
    )
    op.execute(
        sa.text(
            "INSERT INTO town_point_rate_history"
            " (town_id, effective_from, yen_per_point, set_by, set_at)"
            " SELECT town_id, :start, yen_per_point, updated_by, updated_at"
            " FROM town_point_rates"
        ).bindparams(start=FROM_THE_START)
    )
    op.drop_table("town_point_rates")


def downgrade() -> None:
    op.create_table(
        "town_point_rates",
        sa.Column("town_id", sa.Integer(), nullable=False),
        sa.Column("yen_per_point", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=False),
        sa.Column("updated_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("yen_per_point > 0", name=op.f("ck_town_point_rates_rate_positive")),
        sa.ForeignKeyConstraint(
            ["town_id"], ["towns.id"], name=op.f("fk_town_point_rates_town_id_towns")
        ),
        sa.PrimaryKeyConstraint("town_id", name=op.f("pk_town_point_rates")),
    )
    # The version in force this month; a town whose rate in force is the platform's default
    # (no one set it: set_by empty) gets no row, which the old code reads as 1 yen too.
    op.execute(
        sa.text(
            "INSERT INTO town_point_rates (town_id, yen_per_point, updated_by, updated_at)"
            " SELECT h.town_id, h.yen_per_point, h.set_by, h.set_at"
            " FROM town_point_rate_history h"
            " WHERE h.set_by IS NOT NULL AND h.effective_from = ("
            "  SELECT MAX(h2.effective_from) FROM town_point_rate_history h2"
            "  WHERE h2.town_id = h.town_id AND h2.effective_from <= :month)"
        ).bindparams(month=dt.datetime.now(JST).strftime("%Y-%m"))
    )
    op.drop_table("town_point_rate_history")
