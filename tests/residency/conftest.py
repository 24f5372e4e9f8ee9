"""Residency fixtures: Sarabetsu (tests/dao's town and chain helpers), its staff, people with
built-in accounts, form posts as the browser sends them, what a refused request leaves, and
the outbox failing a pass's call."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from backend.chain.outbox.states import S, transition
from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.residency.models import Resident
from tests.accounts.conftest import PASSWORD, Api
from tests.dao.conftest import (  # noqa: F401  (fixtures)
    SLUG,
    DaoChain,
    dao_chain,
    make_staff,
    manual_outbox,
    settle,
    signup,
    town,
)

BASE = f"/towns/{SLUG}/admin/residents"
ID = {"name": "更別 花子", "birth_date": "1950-04-01", "address": "北海道河西郡更別村字更別123"}


def login(app: Flask, email: str) -> Api:
    api = Api(app.test_client())
    resp = api.post("/api/auth/login", {"email": email, "password": PASSWORD})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return api


def form(api: Api, url: str, data: dict[str, str], lang: str = "en") -> Any:
    """POST a console form as the browser does (csrf_token in the form)."""
    if api.token is None:
        api.refresh_token()
    return api.client.post(
        url, data={"csrf_token": api.token, **data}, headers={"Accept-Language": lang}
    )


@pytest.fixture
def staff(manual_outbox: Flask, town: Any) -> tuple[Api, int]:  # noqa: F811
    email = "registry@example.com"
    _, uid, _ = signup(manual_outbox, email)
    make_staff(manual_outbox, town, uid)
    return login(manual_outbox, email), uid


def counts(app: Flask) -> tuple[int, int, int]:
    """(residents, outbox rows, audit rows): what a refused request leaves unchanged."""
    with app.app_context():
        s = get_db().session
        return tuple(  # type: ignore[return-value]
            s.scalar(sa.select(sa.func.count()).select_from(m))
            for m in (Resident, OutboxTx, AuditLog)
        )


def resident(app: Flask, user_id: int) -> dict[str, Any] | None:
    with app.app_context():
        row = get_db().session.scalar(sa.select(Resident).where(Resident.user_id == user_id))
        if row is None:
            return None
        return {
            c.name: getattr(row, c.name)
            for c in Resident.__table__.columns  # type: ignore[attr-defined]
        }


def pass_contract(chain: DaoChain) -> Any:
    return chain.contract(f"towns.{SLUG}.ResidentPass", "ResidentPass")


ERROR = "ResidentPassAlreadyHolder(0x0000000000000000000000000000000000000001)"


def fail_call(app: Flask, tx_id: int, error: str = ERROR) -> None:
    """What the outbox does when the call's estimate reverts: queued -> failed, never sent."""
    with app.app_context():
        s = get_db().session
        tx = s.get(OutboxTx, tx_id)
        tx.error = error
        transition(tx, S.FAILED, f"estimate reverted: {error}")
        s.commit()


def audits(app: Flask, action: str) -> int:
    with app.app_context():
        return get_db().session.scalar(
            sa.select(sa.func.count()).select_from(AuditLog).where(AuditLog.action == action)
        )


def issue_calls(app: Flask) -> list[tuple[int, str, str]]:
    with app.app_context():
        return list(
            get_db().session.execute(
                sa.select(OutboxTx.id, OutboxTx.idempotency_key, OutboxTx.state)
                .where(OutboxTx.function == "issue", OutboxTx.subject_kind == "resident")
                .order_by(OutboxTx.id)
            )
        )
