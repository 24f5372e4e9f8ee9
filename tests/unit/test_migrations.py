"""Migrations build the same schema as the models, on PostgreSQL and SQLite, and go back down."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from backend.models import Base
from tests.conftest import ROOT, alembic_upgrade


def _cfg(url):
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = url
    cfg.attributes["configure_logger"] = False
    return cfg


def _diff(url):
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    engine.dispose()
    return diff


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_upgrade_from_empty_matches_models_then_downgrade_and_again(dialect, pg_database, tmp_path):
    url = pg_database("migrations") if dialect == "postgresql" else f"sqlite:///{tmp_path}/m.db"
    alembic_upgrade(url)
    assert _diff(url) == []
    command.downgrade(_cfg(url), "base")
    engine = sa.create_engine(url)
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    alembic_upgrade(url)
    assert _diff(url) == []


def test_audit_log_is_append_only_on_postgresql(pg_url):
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO audit_log"
                " (at, actor, action, subject_type, subject_id, reason, details)"
                " VALUES (now(), 'staff:1', 'points.issue', 'town', '1', 'test', '{}')"
            )
        )
    for stmt in ("UPDATE audit_log SET reason = 'changed'", "DELETE FROM audit_log"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text(stmt))
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE audit_log"))
    engine.dispose()


_TX = "0x" + "ab" * 31 + "cd"
_BLOCK = "0x" + "11" * 32
_ROW = {
    "chain_id": 31337,
    "contract_key": "points.Token",
    "contract_address": "0x" + "22" * 20,
    "event_name": "Transfer",
    "args": '{"value": 1}',
    "block_number": 7,
    "block_hash": _BLOCK,
    "tx_hash": _TX,
    "log_index": 3,
}


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_events_tx_hash_becomes_bytes_and_back_keeping_rows(dialect, pg_database, tmp_path):
    """0016 converts stored events' tx_hash to 32 bytes (and back on downgrade); the models still
    read 0x-hex, and the UNIQUE (chain_id, tx_hash, log_index) still holds."""
    from backend.chain.indexer_models import ChainEventRecord, PendingEventRecord

    url = pg_database("txbytes") if dialect == "postgresql" else f"sqlite:///{tmp_path}/t.db"
    alembic_upgrade(url, "0015")
    engine = sa.create_engine(url)
    insert = f"({', '.join(_ROW)}) VALUES ({', '.join(':' + c for c in _ROW)})"
    with engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO chain_events {insert}"), _ROW)
        conn.execute(
            sa.text(f"INSERT INTO chain_pending_events {insert}"), {**_ROW, "block_number": 9}
        )
    alembic_upgrade(url)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT tx_hash FROM chain_events")).scalar_one()
        assert bytes(stored) == bytes.fromhex(_TX[2:])
    with sa.orm.Session(engine) as s:
        assert s.scalars(sa.select(ChainEventRecord.tx_hash)).one() == _TX
        assert s.scalars(sa.select(PendingEventRecord.tx_hash)).one() == _TX
        found = s.scalars(
            sa.select(ChainEventRecord).where(ChainEventRecord.tx_hash == "0x" + _TX[2:].upper())
        ).one()
        assert (found.block_number, found.log_index) == (7, 3)
        # The same log in another block (a different primary key) is still refused.
        s.add(ChainEventRecord(**{**_ROW, "args": {"value": 1}, "block_number": 8}))
        with pytest.raises(sa.exc.IntegrityError):
            s.flush()
        s.rollback()
        # A value that is not a 32-byte hash never reaches the database.
        with pytest.raises(sa.exc.StatementError, match="not a 32-byte hash"):
            s.scalars(sa.select(ChainEventRecord).where(ChainEventRecord.tx_hash == "0x1234")).all()
    command.downgrade(_cfg(url), "0015")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT tx_hash FROM chain_events")).scalar_one() == _TX
        assert conn.execute(sa.text("SELECT tx_hash FROM chain_pending_events")).scalar_one() == _TX
    engine.dispose()


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_welcome_grants_move_to_points_grants_keeping_ids_and_once_per_user(
    dialect, pg_database, tmp_path
):
    """0020 moves `points_welcome_grants` rows to `points_grants` with their ids and the grant
    key "": a second welcome grant of the same user, town and programme is still refused, a new
    grant gets an id after the copied ones, and a downgrade moves the rows back."""
    from backend.points.models import PointsGrant

    url = pg_database("grants") if dialect == "postgresql" else f"sqlite:///{tmp_path}/g.db"
    alembic_upgrade(url, "0019")
    engine = sa.create_engine(url)
    now = {"at": "2026-12-01 00:00:00+00:00"}
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO users (id, display_name, locale, created_at, auth_epoch)"
                " VALUES (3, 'fan', 'ja', :at, 0)"
            ),
            now,
        )
        conn.execute(
            sa.text(
                "INSERT INTO towns (id, slug, name_ja, name_en, prefecture_ja, prefecture_en,"
                " chain_id, points_symbol, created_at)"
                " VALUES (5, 'sarabetsu', '更別村', 'Sarabetsu', '北海道', 'Hokkaido', 31337,"
                " 'SRB', :at)"
            ),
            now,
        )
        conn.execute(
            sa.text(
                "INSERT INTO points_welcome_grants (id, user_id, town_id, programme_id, amount,"
                " address, outbox_tx_id, status, created_at)"
                " VALUES (7, 3, 5, 1, 500, :addr, 11, 'confirmed', :at)"
            ),
            {**now, "addr": "0x" + "33" * 20},
        )
    alembic_upgrade(url)
    with sa.orm.Session(engine) as s:
        (grant,) = s.scalars(sa.select(PointsGrant)).all()
        assert (grant.id, grant.user_id, grant.town_id, grant.programme_id) == (7, 3, 5, 1)
        assert (grant.grant_key, int(grant.amount), grant.status) == ("", 500, "confirmed")
        assert grant.outbox_tx_id == 11
        fields = {"user_id": 3, "town_id": 5, "amount": 500, "address": "0x" + "33" * 20}
        s.add(PointsGrant(programme_id=1, **fields))
        with pytest.raises(sa.exc.IntegrityError):
            s.flush()
        s.rollback()
        s.add(PointsGrant(programme_id=3, **fields))
        s.flush()
        # After the copied ids (PostgreSQL's refused insert above used up id 8 of the sequence).
        assert s.scalars(sa.select(PointsGrant.id).where(PointsGrant.programme_id == 3)).one() > 7
        s.rollback()
    command.downgrade(_cfg(url), "0019")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, user_id, status FROM points_welcome_grants"))
        assert rows.all() == [(7, 3, "confirmed")]
    engine.dispose()


def test_audit_log_is_append_only_on_sqlite(tmp_path):
    """SQLite too (migration 0051): `make run` and small towns keep their audit log there."""
    url = f"sqlite:///{tmp_path / 'append_only.db'}"
    alembic_upgrade(url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO audit_log"
                " (at, actor, action, subject_type, subject_id, reason, details)"
                " VALUES (CURRENT_TIMESTAMP, 'staff:1', 'points.issue', 'town', '1', 'test', '{}')"
            )
        )
    for stmt in ("UPDATE audit_log SET reason = 'changed'", "DELETE FROM audit_log"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text(stmt))
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT reason FROM audit_log")).scalars().all() == ["test"]
    engine.dispose()
