"""Migration 0027 on PostgreSQL and SQLite: memberships take the roles admin and data (and a
downgrade drops those memberships, keeping the others); audit rows written before get their
town from details' town_id, a town subject, a merchant/settlement/charge subject or details'
merchant_id (PostgreSQL's append-only trigger is off for that backfill only), and platform rows
stay without one."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command

from tests.conftest import alembic_upgrade
from tests.unit.test_migrations import _cfg

AT = {"at": "2026-12-01 00:00:00+00:00"}


def _seed(conn) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO users (id, email, display_name, locale, created_at, auth_epoch)"
            " VALUES (3, 'a@example.com', 'a', 'ja', :at, 0)"
        ),
        AT,
    )
    conn.execute(
        sa.text(
            "INSERT INTO towns (id, slug, name_ja, name_en, prefecture_ja, prefecture_en,"
            " chain_id, points_symbol, created_at)"
            " VALUES (5, 'sarabetsu', '更別村', 'Sarabetsu', '北海道', 'Hokkaido', 31337,"
            " 'SRB', :at)"
        ),
        AT,
    )
    conn.execute(
        sa.text(
            "INSERT INTO merchants (id, town_id, name_ja, name_en, address, ciphertext, nonce,"
            " wrapped_data_key, master_key_id, status, created_at)"
            " VALUES (9, 5, '店', 'Shop', :addr, :b, :b, :b, 'k', 'active', :at)"
        ),
        {**AT, "addr": "0x" + "44" * 20, "b": b"x"},
    )
    conn.execute(
        sa.text(
            "INSERT INTO memberships (user_id, town_id, role, created_at)"
            " VALUES (3, 5, 'staff', :at)"
        ),
        AT,
    )
    for i, (subject_type, subject_id, details) in enumerate(
        [
            ("user", "3", '{"town_id": 5}'),
            ("town", "5", "{}"),
            ("merchant", "9", "{}"),
            ("charge", "77", '{"merchant_id": 9}'),
            ("address", "0xabc", '{"master_key_id": "m"}'),
            ("town", "sarabetsu", "{}"),
        ]
    ):
        conn.execute(
            sa.text(
                "INSERT INTO audit_log (id, at, actor, action, subject_type, subject_id, reason,"
                " details) VALUES (:id, :at, 'system:test', 'x', :st, :sid, '', :d)"
            ),
            {**AT, "id": i + 1, "st": subject_type, "sid": subject_id, "d": details},
        )


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_roles_and_audit_town_backfill(dialect, pg_database, tmp_path):
    url = pg_database("m0027") if dialect == "postgresql" else f"sqlite:///{tmp_path}/m.db"
    alembic_upgrade(url, "0026")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        _seed(conn)
    alembic_upgrade(url, "0027")
    with engine.begin() as conn:
        towns = dict(conn.execute(sa.text("SELECT id, town_id FROM audit_log")).all())
        assert towns == {1: 5, 2: 5, 3: 5, 4: 5, 5: None, 6: None}
        for role in ("admin", "data"):
            conn.execute(
                sa.text(
                    "INSERT INTO memberships (user_id, town_id, role, created_at)"
                    " VALUES (3, 5, :role, :at)"
                ),
                {**AT, "role": role},
            )
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO memberships (user_id, town_id, role, created_at)"
                " VALUES (3, 5, 'mayor', :at)"
            ),
            AT,
        )
    if dialect == "postgresql":  # still append-only after the backfill
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text("UPDATE audit_log SET town_id = 1"))
    command.downgrade(_cfg(url), "0026")
    with engine.connect() as conn:
        roles = [r for (r,) in conn.execute(sa.text("SELECT role FROM memberships"))]
        assert roles == ["staff"]
        assert conn.execute(sa.text("SELECT count(*) FROM audit_log")).scalar_one() == 6
    engine.dispose()
