"""Migration 0048 on PostgreSQL and SQLite: each town's yen per point is carried over as in
force from the start, so every month (cleared or not) is valued as before; a town that set none
stays at 1 yen; a downgrade keeps the version in force this month (a change still waiting is
dropped, never applied at once to the months begun)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.orm import Session

from backend.partners.months import JST, next_month
from backend.partners.rates import RateService
from tests.conftest import alembic_upgrade
from tests.unit.test_migrations import _cfg

AT = {"at": "2026-12-01 00:00:00+00:00"}


def _seed(conn) -> None:
    for town_id, slug in ((5, "sarabetsu"), (6, "toyako")):
        conn.execute(
            sa.text(
                "INSERT INTO towns (id, slug, name_ja, name_en, prefecture_ja, prefecture_en,"
                " chain_id, points_symbol, created_at)"
                " VALUES (:id, :slug, '町', 'Town', '北海道', 'Hokkaido', 31337, 'SRB', :at)"
            ),
            {**AT, "id": town_id, "slug": slug},
        )
    conn.execute(
        sa.text(
            "INSERT INTO town_point_rates (town_id, yen_per_point, updated_by, updated_at)"
            " VALUES (5, 3, 42, :at)"
        ),
        AT,
    )


def _rate_in(engine: sa.Engine, town_id: int, month: str) -> int:
    with Session(engine) as s:
        return RateService(s, outbox=lambda: None, chain_now=lambda: 0).rate_in(town_id, month)


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_rates_carried_over_as_in_force_from_the_start(dialect, pg_database, tmp_path):
    url = pg_database("m0048") if dialect == "postgresql" else f"sqlite:///{tmp_path}/m.db"
    alembic_upgrade(url, "0047")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        _seed(conn)
    alembic_upgrade(url, "0048")
    with engine.begin() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT town_id, effective_from, yen_per_point, set_by FROM town_point_rate_history"
            )
        ).all()
        assert [tuple(r) for r in rows] == [(5, "0000-01", 3, 42)]
        assert "town_point_rates" not in sa.inspect(conn).get_table_names()
    # Past months, this one and the next are valued as before; a town without a rate at 1 yen.
    for month in ("2024-01", "2026-11", "2026-12", "2099-12"):
        assert _rate_in(engine, 5, month) == 3
        assert _rate_in(engine, 6, month) == 1
    # A change waiting for next month, then a downgrade: the rate in force stays.
    this_month = dt.datetime.now(JST).strftime("%Y-%m")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO town_point_rate_history"
                " (town_id, effective_from, yen_per_point, set_by, set_at)"
                " VALUES (5, :m, 9, 43, :at), (6, '0000-01', 1, NULL, :at), (6, :m, 4, 44, :at)"
            ),
            {**AT, "m": next_month(this_month)},
        )
    command.downgrade(_cfg(url), "0047")
    with engine.begin() as conn:
        rows = conn.execute(
            sa.text("SELECT town_id, yen_per_point, updated_by FROM town_point_rates")
        ).all()
        assert [tuple(r) for r in rows] == [(5, 3, 42)]
    alembic_upgrade(url)
    engine.dispose()
