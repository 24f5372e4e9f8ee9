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
