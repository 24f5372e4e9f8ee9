"""Helpers of the failed-grant tests: a welcome grant, the outbox failing its call as it does
when an estimate reverts, town staff, and what the rows hold."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask

from backend.accounts.models import User
from backend.accounts.roles import STAFF, grant_town_role
from backend.accounts.services import AccountService
from backend.chain.custody import get_vault
from backend.chain.outbox.states import S, transition
from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.points.models import PointsDailyTotal, PointsGrant
from backend.points.programmes import WELCOME
from backend.points.services import points_service
from backend.points.town_settings import TownSettingsService, town_programme
from backend.regions.models import Town
from tests.points.conftest import PASSWORD

ERROR = "ProgrammeInactive(1)"


def grant(app: Flask, user_id: int, town_id: int, key: str = "") -> tuple[int, int]:
    """A welcome grant of 500 points: (grant id, its outbox call's id)."""
    with app.app_context():
        s = get_db().session
        g = points_service().grant(s.get(User, user_id), s.get(Town, town_id), WELCOME, key=key)
        return g.id, int(g.outbox_tx_id)


def fail_call(app: Flask, tx_id: int, error: str = ERROR) -> None:
    """What the outbox does when the call's estimate reverts: queued -> failed, never sent."""
    with app.app_context():
        s = get_db().session
        tx = s.get(OutboxTx, tx_id)
        tx.error = error
        transition(tx, S.FAILED, f"estimate reverted: {error}")
        s.commit()


def staff(app: Flask, town_id: int, email: str = "staff@example.com") -> int:
    with app.app_context():
        s = get_db().session
        user = AccountService(s, lambda: get_vault(app)).signup(email, PASSWORD, verified=True)
        grant_town_role(user, town_id, STAFF)
        s.commit()
        return user.id


def caps(app: Flask, town_id: int, *, person: int | None, town: int | None = None) -> None:
    with app.app_context():
        s = get_db().session
        TownSettingsService(s).ensure_seeded(s.get(Town, town_id))
        row = town_programme(s, town_id, WELCOME.programme_id)
        row.cap_per_person_day, row.cap_per_town_day = person, town
        s.commit()


def totals(app: Flask) -> dict[int, int]:
    """The daily counters of the welcome programme, by user (0: the town)."""
    with app.app_context():
        rows = (
            get_db()
            .session.execute(sa.select(PointsDailyTotal.user_id, PointsDailyTotal.total))
            .all()
        )
        return {int(u): int(t) for u, t in rows}


def grant_row(app: Flask, grant_id: int) -> dict[str, Any]:
    with app.app_context():
        g = get_db().session.get(PointsGrant, grant_id)
        return {c.name: getattr(g, c.name) for c in PointsGrant.__table__.columns}


def audits(app: Flask, action: str) -> list[AuditLog]:
    with app.app_context():
        rows = (
            get_db()
            .session.scalars(
                sa.select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)
            )
            .all()
        )
        get_db().session.expunge_all()
        return list(rows)


def issue_calls(app: Flask) -> list[tuple[int, str, str]]:
    """(id, outbox key, state) of every issue call of a grant, oldest first."""
    with app.app_context():
        return [
            tuple(r)  # type: ignore[misc]
            for r in get_db().session.execute(
                sa.select(OutboxTx.id, OutboxTx.idempotency_key, OutboxTx.state)
                .where(OutboxTx.function == "issue", OutboxTx.subject_kind == "points_grant")
                .order_by(OutboxTx.id)
            )
        ]


def counts(app: Flask) -> tuple[int, int, int]:
    """(grants, outbox rows, audit rows): what a refused request leaves unchanged."""
    with app.app_context():
        s = get_db().session
        return tuple(  # type: ignore[return-value]
            s.scalar(sa.select(sa.func.count()).select_from(m))
            for m in (PointsGrant, OutboxTx, AuditLog)
        )
