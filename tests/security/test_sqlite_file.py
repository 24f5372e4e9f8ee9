"""Issue 11 §6: the embedded SQLite database (wrapped keys, e-mail addresses, payments) is
readable by its owner only, whether new or left from before, with its WAL files."""

from __future__ import annotations

import os
import stat

import sqlalchemy as sa

from backend.core.db import make_engine


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_sqlite_database_is_private(tmp_path):
    old = os.umask(0o022)
    try:
        db = tmp_path / "instance" / "furusato.db"
        engine = make_engine(f"sqlite:///{db}")
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
            conn.execute(sa.text("INSERT INTO t VALUES (1)"))
            for f in (db, db.with_name("furusato.db-wal"), db.with_name("furusato.db-shm")):
                assert _mode(f) == 0o600, f
        engine.dispose()
    finally:
        os.umask(old)


def test_an_existing_world_readable_database_is_narrowed(tmp_path):
    db = tmp_path / "furusato.db"
    db.touch(mode=0o644)
    db.chmod(0o644)
    make_engine(f"sqlite:///{db}").dispose()
    assert _mode(db) == 0o600
