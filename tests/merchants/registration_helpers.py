"""Helpers of the failed-registration tests: a new shop of Sarabetsu, the outbox failing its
call as it does when an estimate reverts, and what the rows hold."""

from __future__ import annotations

import sqlalchemy as sa

from backend.chain.outbox.states import S, transition
from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.merchants.models import Merchant
from backend.merchants.services import merchant_service
from tests.merchants.conftest import World

ERROR = "AccessControlUnauthorizedAccount(0x0000000000000000000000000000000000000001)"


def register(world: World, name: str = "Bakery") -> tuple[int, int]:
    """A new shop of Sarabetsu: (its id, its addMerchant call's id)."""
    with world.app.app_context():
        m = merchant_service().register_merchant(
            world.user(world.staff), world.town(), "パン屋", name
        )
        return m.id, int(m.outbox_tx_id)


def fail_call(app, tx_id: int) -> None:
    with app.app_context():
        s = get_db().session
        tx = s.get(OutboxTx, tx_id)
        tx.error = ERROR
        transition(tx, S.FAILED, f"estimate reverted: {ERROR}")
        s.commit()


def status(app, merchant_id: int) -> tuple[str, int | None]:
    with app.app_context():
        m = get_db().session.get(Merchant, merchant_id)
        return m.status, m.outbox_tx_id


def audits(app, action: str, merchant_id: int) -> list[AuditLog]:
    with app.app_context():
        rows = (
            get_db()
            .session.scalars(
                sa.select(AuditLog)
                .where(AuditLog.action == action, AuditLog.subject_id == str(merchant_id))
                .order_by(AuditLog.id)
            )
            .all()
        )
        get_db().session.expunge_all()
        return list(rows)


def add_calls(app, merchant_id: int) -> list[tuple[int, str, str]]:
    with app.app_context():
        return [
            tuple(r)
            for r in get_db().session.execute(
                sa.select(OutboxTx.id, OutboxTx.idempotency_key, OutboxTx.state)
                .where(
                    OutboxTx.function == "addMerchant",
                    OutboxTx.subject_kind == "merchant",
                    OutboxTx.subject_id == merchant_id,
                )
                .order_by(OutboxTx.id)
            )
        ]


def counts(app) -> tuple[int, int, int]:
    with app.app_context():
        s = get_db().session
        return tuple(
            s.scalar(sa.select(sa.func.count()).select_from(m))
            for m in (Merchant, OutboxTx, AuditLog)
        )
