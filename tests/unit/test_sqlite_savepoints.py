"""On SQLite a savepoint opened before a transaction's first write is rolled back with the
transaction, as on PostgreSQL. Python's sqlite3 begins a transaction only at the first INSERT,
UPDATE or DELETE, so such a SAVEPOINT was SQLite's outermost transaction and releasing it
committed: the services' `begin_nested()` guards (a key or a row written first, the work after
it) left their rows behind when the work then failed and rolled back."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from backend.core.db import make_engine


def _engine(tmp_path: Path) -> sa.Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'savepoints.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
    return engine


def _rows(engine: sa.Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT id FROM t ORDER BY id")).scalars())


def test_a_savepoint_before_the_first_write_is_rolled_back_with_its_transaction(tmp_path):
    engine = _engine(tmp_path)
    with Session(engine) as session:
        session.execute(sa.text("SELECT 1"))  # reads first, as services do
        with session.begin_nested():
            session.execute(sa.text("INSERT INTO t VALUES (1)"))
        session.execute(sa.text("INSERT INTO t VALUES (2)"))
        session.rollback()
    assert _rows(engine) == []


def test_a_savepoint_still_keeps_what_its_transaction_commits_and_undoes_its_own_rollback(
    tmp_path,
):
    engine = _engine(tmp_path)
    with Session(engine) as session:
        with session.begin_nested():
            session.execute(sa.text("INSERT INTO t VALUES (1)"))
        nested = session.begin_nested()
        session.execute(sa.text("INSERT INTO t VALUES (2)"))
        nested.rollback()
        session.commit()
    assert _rows(engine) == [1]
