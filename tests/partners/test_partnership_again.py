"""A partnership ended, then started again, on real anvil: the end's setPartner(false) must be
on chain first; then either town proposes again, the other approves, both setPartner(true)
calls of the new term are queued (under keys of their own) and confirmed, the partnership is
active again and a shop takes the partner town's points; ending it again queues a new
setPartner(false). Ten re-proposals at once by both towns make one new term."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from flask import Flask

from backend.accounts.models import User
from backend.accounts.roles import STAFF, grant_town_role
from backend.chain.outbox import outbox_service
from backend.chain.outbox_models import OutboxTx
from backend.chain.registry import Deployments
from backend.core.db import get_db
from backend.core.errors import Conflict
from backend.core.models import AuditLog
from backend.merchants.models import Charge
from backend.partners.models import ENDED, Partnership
from backend.partners.services import partner_service
from backend.regions.models import Town
from tests.concurrency import n_at_once
from tests.merchants.conftest import _signup, run_chain, snapshot
from tests.partners.conftest import (
    CUSTOMER,
    SARABETSU_STAFF,
    TOYAKO_STAFF,
    _town,
    page_post,
    partner_up,
)
from tests.partners.test_partners_flow import _charge, _points


def _partnership(app: Flask, pid: int) -> Partnership:
    with app.app_context():
        s = get_db().session
        p = s.get(Partnership, pid)
        s.expunge(p)
        return p


def _set_partner_calls(app: Flask) -> list[tuple[str, bool, str]]:
    with app.app_context():
        rows = get_db().session.scalars(
            sa.select(OutboxTx).where(OutboxTx.function == "setPartner").order_by(OutboxTx.id)
        )
        return [(r.idempotency_key, bool(r.args[1]), r.state) for r in rows]


def _audits(app: Flask, pid: int) -> list[tuple[str, int | None]]:
    with app.app_context():
        rows = get_db().session.scalars(
            sa.select(AuditLog)
            .where(AuditLog.subject_type == "partnership", AuditLog.subject_id == str(pid))
            .order_by(AuditLog.id)
        )
        return [(a.action, a.details.get("term")) for a in rows]


def test_a_partnership_ended_then_proposed_again_runs_again(app, towns, w3):
    pid = partner_up(towns, w3)
    sara, toya = towns.api(SARABETSU_STAFF), towns.api(TOYAKO_STAFF)
    page_post(toya, f"/towns/toyako/admin/partners/{pid}/end", {})
    # The end is not on chain yet: proposing again is refused clearly, nothing changes.
    before = snapshot(app)
    early = page_post(sara, "/towns/sarabetsu/admin/partners", {"town": "toyako"}, 409)
    assert "提携の終了をチェーンに記録しています" in early.get_data(as_text=True)
    assert snapshot(app) == before and _partnership(app, pid).status == ENDED
    run_chain(app, w3)
    sara_points, toya_points = _points(w3, towns, "sarabetsu"), _points(w3, towns, "toyako")
    assert not toya_points.functions.isPartner(sara_points.address).call()

    # Sarabetsu proposes again from the ended partnership's panel: the same row, term 2.
    page = sara.get("/towns/sarabetsu/admin/partners").get_data(as_text=True)
    assert "もう一度提携を提案する" in page
    page_post(sara, "/towns/sarabetsu/admin/partners", {"town": "toyako"})
    p = _partnership(app, pid)
    mine, theirs = ("a", "b") if p.town_a_id == towns.sarabetsu_id else ("b", "a")
    assert (p.status, p.term, p.ended_at) == ("proposed", 2, None)
    assert getattr(p, f"{mine}_approved_by") is not None
    assert getattr(p, f"{theirs}_approved_by") is None
    # Tōyako sees it to approve, approves: both setPartner(true) of term 2 are queued.
    page = toya.get("/towns/toyako/admin/partners").get_data(as_text=True)
    assert "提携を承認する" in page
    page_post(toya, f"/towns/toyako/admin/partners/{pid}/approve", {})
    assert _partnership(app, pid).status == "approved"
    calls = _set_partner_calls(app)
    assert [(k, on) for k, on, _state in calls[-2:]] == [
        (f"partners.set:{pid}.2:a:on", True),
        (f"partners.set:{pid}.2:b:on", True),
    ]
    assert all(state == "queued" for *_, state in calls[-2:])
    assert "順番待ち" in sara.get("/towns/sarabetsu/admin/partners").get_data(as_text=True)
    run_chain(app, w3)
    assert _partnership(app, pid).status == "active"
    assert all(state == "confirmed" for *_, state in _set_partner_calls(app))
    assert toya_points.functions.isPartner(sara_points.address).call()
    assert sara_points.functions.isPartner(toya_points.address).call()
    # A Sarabetsu shop takes Tōyako points again.
    charge = _charge(towns, 50, "again-charge-1")
    page_post(towns.api(CUSTOMER), f"/pay/{charge['code']}", {"points_town": "toyako"}, 200)
    run_chain(app, w3)
    with app.app_context():
        assert get_db().session.get(Charge, charge["id"]).status == "paid"
        get_db().session.commit()
    # Ended again: a new setPartner(false), not the first term's.
    page_post(sara, f"/towns/sarabetsu/admin/partners/{pid}/end", {})
    key, on, _state = _set_partner_calls(app)[-1]
    assert (key, on) == (f"partners.set:{pid}.2:{mine}:off", False)
    run_chain(app, w3)
    assert not sara_points.functions.isPartner(toya_points.address).call()
    assert [a for a in _audits(app, pid) if a[0] != "partnership.set_partner"] == [
        ("partnership.propose", None),
        ("partnership.approve", None),
        ("partnership.end", None),
        ("partnership.propose", 2),
        ("partnership.approve", None),
        ("partnership.end", None),
    ]


N = 10


@pytest.fixture
def race_app(make_app: Callable[..., Flask], deployed: Deployments, any_db_url: str) -> Flask:
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False
    return app


def test_ten_proposals_again_at_once_by_both_towns_start_one_term(race_app, deployed):
    app = race_app
    with app.app_context():
        s = get_db().session
        sara = _town("sarabetsu", "更別村", "Sarabetsu", deployed)
        toya = _town("toyako", "洞爺湖町", "Lake Toya", deployed)
        staff = []
        for i in range(N):
            town = sara if i % 2 else toya
            user = _signup(app, f"staff{i}@{town.slug}.example")
            grant_town_role(user, town.id, STAFF)
            staff.append((user.id, town.id))
        a, b = sorted((sara.id, toya.id))
        p = Partnership(
            town_a_id=a, town_b_id=b, status=ENDED, a_approved_by=1, b_approved_by=2, ended_by=1
        )
        s.add(p)
        s.commit()
        pid, sara_slug, toya_slug = p.id, sara.slug, toya.slug

    def propose(i: int) -> int:
        s = get_db().session
        user_id, town_id = staff[i]
        other = sara_slug if town_id != sara.id else toya_slug
        return partner_service().propose(s.get(User, user_id), s.get(Town, town_id), other).id

    results = n_at_once(app, N, propose)
    wrong = [r for r in results if not isinstance(r, int | Conflict)]
    assert not wrong, wrong
    assert pid in results
    p = _partnership(app, pid)
    # One new term: proposed by one town and, if the other town's click came after, approved.
    assert p.term == 2 and p.status in ("proposed", "approved")
    proposals = [t for action, t in _audits(app, pid) if action == "partnership.propose"]
    assert proposals == [2]
    approvals = [a for a in _audits(app, pid) if a[0] == "partnership.approve"]
    ons = [k for k, on, _s in _set_partner_calls(app) if on]
    if p.status == "approved":
        assert len(approvals) == 1 and sorted(ons) == [
            f"partners.set:{pid}.2:a:on",
            f"partners.set:{pid}.2:b:on",
        ]
    else:
        assert approvals == [] and ons == []
