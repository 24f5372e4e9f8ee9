"""Ten approvals (and ten payments) of one month's clearing statement at once, on PostgreSQL
and SQLite: four eyes hold (one first approval, one second, by two different people), there is
one audit row per effect, and every other caller gets a clear 409, never a 5xx."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import pytest
import sqlalchemy as sa
from flask import Flask

from backend.accounts.models import User
from backend.accounts.roles import STAFF, grant_town_role
from backend.chain.outbox import outbox_service
from backend.chain.registry import Deployments
from backend.core.db import get_db, utcnow
from backend.core.errors import Conflict
from backend.core.models import AuditLog
from backend.partners.models import ACTIVE, ClearingSettlement, PartnerPayment, Partnership
from backend.partners.services import partner_service
from backend.regions.models import Town
from tests.concurrency import n_at_once
from tests.merchants.conftest import _signup
from tests.partners.conftest import _town

N = 10
MONTH = "2026-01"  # over by the chain's clock: the statement can be approved and paid


@pytest.fixture
def app(make_app: Callable[..., Flask], deployed: Deployments, any_db_url: str) -> Flask:
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False
    return app


@dataclass
class Clearing:
    app: Flask
    toyako_id: int
    sarabetsu_id: int
    staff_ids: list[int]  # Tōyako's staff: Tōyako owes, so they approve and pay

    def approve(self, staff: int) -> int:
        s = get_db().session
        return (
            partner_service()
            .approve_clearing(
                s.get(User, self.staff_ids[staff]),
                s.get(Town, self.toyako_id),
                s.get(Town, self.sarabetsu_id),
                MONTH,
            )
            .id
        )

    def settle(self, staff: int, reference: str) -> int:
        s = get_db().session
        return (
            partner_service()
            .settle_clearing(
                s.get(User, self.staff_ids[staff]),
                s.get(Town, self.toyako_id),
                s.get(Town, self.sarabetsu_id),
                MONTH,
                reference,
            )
            .id
        )

    def rows(self) -> list[tuple[str, int, int | None]]:
        with self.app.app_context():
            rows = get_db().session.scalars(sa.select(ClearingSettlement)).all()
            return [(r.status, r.approved_by, r.second_approved_by) for r in rows]

    def audits(self) -> list[tuple[str, str]]:
        with self.app.app_context():
            return [
                (a.action, a.details.get("step", ""))
                for a in get_db().session.scalars(
                    sa.select(AuditLog)
                    .where(AuditLog.subject_type == "clearing_settlement")
                    .order_by(AuditLog.id)
                )
            ]


@pytest.fixture
def clearing(app: Flask, deployed: Deployments) -> Clearing:
    """Partner towns (active), N + 1 Tōyako staff, and a January in which Tōyako points paid
    120 at a Sarabetsu shop (as if indexed): Tōyako owes Sarabetsu 120 yen."""
    with app.app_context():
        s = get_db().session
        sara = _town("sarabetsu", "更別村", "Sarabetsu", deployed)
        toya = _town("toyako", "洞爺湖町", "Lake Toya", deployed)
        staff = [_signup(app, f"staff{i}@toyako.example") for i in range(N + 1)]
        for user in staff:
            grant_town_role(user, toya.id, STAFF)
        a, b = sorted((sara.id, toya.id))
        s.add(
            Partnership(town_a_id=a, town_b_id=b, status=ACTIVE, a_approved_by=1, b_approved_by=2)
        )
        s.add(
            PartnerPayment(
                chain_id=deployed.chain_id,
                tx_hash="0x" + "ab" * 32,
                log_index=0,
                block_number=1,
                block_time=utcnow(),
                month=MONTH,
                payer_town_id=toya.id,
                merchant_town_id=sara.id,
                merchant="0x" + "11" * 20,
                payer="0x" + "22" * 20,
                amount=Decimal(120),
                ref="0x" + "00" * 32,
            )
        )
        s.commit()
        return Clearing(app, toya.id, sara.id, [u.id for u in staff])


def _only_ids_and_conflicts(results: list[object]) -> list[int]:
    """The ids answered; every other answer must be a 409 (no 5xx, no database error)."""
    wrong = [r for r in results if not isinstance(r, int | Conflict)]
    assert not wrong, wrong
    return [r for r in results if isinstance(r, int)]


def test_ten_first_approvals_at_once_by_one_person_approve_once(clearing):
    ids = _only_ids_and_conflicts(n_at_once(clearing.app, N, lambda _i: clearing.approve(0)))
    assert len(ids) >= 1 and len(set(ids)) == 1
    assert clearing.rows() == [("approving", clearing.staff_ids[0], None)]
    assert clearing.audits() == [("clearing.approve", "first_approval")]


def test_ten_second_approvals_at_once_make_one_approval(clearing):
    with clearing.app.app_context():
        clearing.approve(0)
    ids = _only_ids_and_conflicts(n_at_once(clearing.app, N, lambda i: clearing.approve(i + 1)))
    assert len(ids) == 1
    ((status, first, second),) = clearing.rows()
    assert (status, first) == ("approved", clearing.staff_ids[0])
    assert second in clearing.staff_ids[1:]
    assert clearing.audits() == [
        ("clearing.approve", "first_approval"),
        ("clearing.approve", "second_approval"),
    ]


def test_ten_staff_approving_at_once_from_nothing_keep_four_eyes(clearing):
    _only_ids_and_conflicts(n_at_once(clearing.app, N, lambda i: clearing.approve(i)))
    ((status, first, second),) = clearing.rows()
    assert second != first
    steps = [step for _action, step in clearing.audits()]
    if status == "approving":
        assert second is None and steps == ["first_approval"]
    else:
        assert status == "approved" and steps == ["first_approval", "second_approval"]


def test_ten_payments_at_once_pay_once_with_one_bank_reference(clearing):
    with clearing.app.app_context():
        clearing.approve(0)
    with clearing.app.app_context():
        clearing.approve(1)
    ids = _only_ids_and_conflicts(
        n_at_once(clearing.app, N, lambda i: clearing.settle(i % 3, f"BANK-{i}"))
    )
    assert len(ids) == 1
    assert [status for status, *_ in clearing.rows()] == ["settled"]
    assert [a for a in clearing.audits() if a[0] == "clearing.pay"] == [("clearing.pay", "")]
