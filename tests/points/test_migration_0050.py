"""Migration 0050 on PostgreSQL and SQLite: earlier grants get the reason of their kind (an
event's prize, else welcome), one attempt, and the pending ones the JST day they were made (so
a failure of theirs gives that day's cap back); a shop may be stored "failed". Going down, a
failed grant is pending again and a failed shop registering, as they were shown before."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from alembic import command

from tests.conftest import alembic_upgrade
from tests.unit.test_migrations import _cfg

AT = "2026-12-01 00:00:00+00:00"
LATE = "2026-12-01 16:30:00+00:00"  # 01:30 on 2 December in Japan


def _seed(conn) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO towns (id, slug, name_ja, name_en, prefecture_ja, prefecture_en,"
            " chain_id, points_symbol, created_at)"
            " VALUES (5, 'sarabetsu', '町', 'Town', '北海道', 'Hokkaido', 31337, 'SRB', :at)"
        ),
        {"at": AT},
    )
    conn.execute(
        sa.text(
            "INSERT INTO users (id, email, display_name, locale, created_at, auth_epoch)"
            " VALUES (7, 'fan@example.com', '', 'ja', :at, 0)"
        ),
        {"at": AT},
    )
    grants = [
        (1, "", "pending", LATE),
        (2, "event:3", "pending", AT),
        (3, "event:4", "confirmed", AT),
    ]
    for gid, key, status, at in grants:
        conn.execute(
            sa.text(
                "INSERT INTO points_grants (id, user_id, town_id, programme_id, grant_key,"
                " amount, address, status, created_at)"
                " VALUES (:id, 7, 5, :pid, :key, 500, :addr, :status, :at)"
            ),
            {"id": gid, "pid": 4 if key else 1, "key": key, "addr": "0x" + "1" * 40,
             "status": status, "at": at},
        )  # fmt: skip


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_earlier_grants_get_their_reason_and_day_and_shops_may_fail(dialect, pg_database, tmp_path):
    url = pg_database("m0050") if dialect == "postgresql" else f"sqlite:///{tmp_path}/m.db"
    alembic_upgrade(url, "0049")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        _seed(conn)
    alembic_upgrade(url, "0050")
    with engine.begin() as conn:
        rows = conn.execute(
            sa.text("SELECT id, reason, attempts, reserved_day FROM points_grants ORDER BY id")
        ).all()
        days = [r[3] if r[3] is None or isinstance(r[3], dt.date) else dt.date.fromisoformat(r[3])
                for r in rows]  # fmt: skip
        assert [(r[0], r[1], r[2]) for r in rows] == [
            (1, "welcome", 1),
            (2, "prize", 1),
            (3, "prize", 1),
        ]
        assert days == [dt.date(2026, 12, 2), dt.date(2026, 12, 1), None]
        conn.execute(sa.text("UPDATE points_grants SET status = 'failed' WHERE id = 1"))
        conn.execute(
            sa.text(
                "INSERT INTO merchants (id, town_id, name_ja, name_en, address, ciphertext,"
                " nonce, wrapped_data_key, master_key_id, status, created_at)"
                " VALUES (9, 5, '店', 'Shop', :addr, :b, :b, :b, 'k', 'failed', :at)"
            ),
            {"addr": "0x" + "2" * 40, "b": b"x", "at": AT},
        )
    command.downgrade(_cfg(url), "0049")
    with engine.begin() as conn:
        assert conn.execute(sa.text("SELECT status FROM merchants")).scalar() == "registering"
        statuses = conn.execute(sa.text("SELECT status FROM points_grants ORDER BY id")).all()
        assert [s for (s,) in statuses] == ["pending", "pending", "confirmed"]
        with pytest.raises(sa.exc.IntegrityError):
            conn.execute(sa.text("UPDATE merchants SET status = 'failed'"))
    engine.dispose()
