"""A reorg drops the block of a partner payment (issue 13 §3): the clearing statement follows
the chain (the payment leaves it, an approval of the old figures is dropped with an audit row),
and once the relayer sends the payment again the statement shows it again."""

from __future__ import annotations

import sqlalchemy as sa

from backend.chain.indexer_tasks import index_blocks
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.merchants.models import Charge, Settlement
from backend.partners.models import ClearingSettlement, PartnerPayment
from tests.chain._reorg_helpers import drive, revert, snapshot
from tests.merchants.conftest import run_chain
from tests.partners.conftest import (
    CLERK,
    CUSTOMER,
    SARABETSU_STAFF,
    TOYAKO_STAFF,
    TOYAKO_STAFF2,
    page_post,
    partner_up,
)
from tests.partners.test_partners_flow import _next_month


def _index(app) -> None:
    with app.app_context():
        index_blocks()
        get_db().session.remove()


def _state(app, charge_id: int) -> tuple[str, list[int], list[str]]:
    """The charge's status, the partner payments, and the shop's settlements' statuses."""
    with app.app_context():
        s = get_db().session
        status = s.get(Charge, charge_id).status
        amounts = [int(p.amount) for p in s.scalars(sa.select(PartnerPayment))]
        settlements = [x.status for x in s.scalars(sa.select(Settlement))]
        s.commit()
    return status, amounts, settlements


def test_the_statement_follows_the_chain_through_a_reorg(app, towns, w3):
    partner_up(towns, w3)
    r = towns.api(CLERK).post(
        f"/api/merchants/{towns.merchant_id}/charges", {"amount": 70, "idempotency_key": "reorg-p1"}
    )
    charge = r.get_json()["charge"]
    snap = snapshot(w3)
    paid = towns.api(CUSTOMER).post(f"/api/pay/{charge['code']}", {"points_town": "toyako"})
    assert paid.status_code == 200, paid.get_data(as_text=True)
    run_chain(app, w3)
    assert _state(app, charge["id"]) == ("paid", [70], ["requested"])
    with app.app_context():
        month = get_db().session.scalar(sa.select(PartnerPayment.month))
        get_db().session.commit()
    sara = towns.api(SARABETSU_STAFF)
    url = f"/towns/sarabetsu/admin/clearing?month={month}"
    assert "洞爺湖町が更別村に70円を支払います。" in sara.get(url).get_data(as_text=True)
    _next_month(w3)
    base = f"/towns/toyako/admin/clearing/sarabetsu/{month}"
    page_post(towns.api(TOYAKO_STAFF), f"{base}/approve", {})
    # The chain is rewound under the payment (and the month's end): the statement follows.
    revert(w3, snap)
    _index(app)
    assert _state(app, charge["id"]) == ("paying", [], ["failed"])  # nothing owed to the shop
    assert "支払うものはありません。" in sara.get(url).get_data(as_text=True)
    # The approval of the old figures is dropped when the next member of staff acts.
    changed = page_post(towns.api(TOYAKO_STAFF2), f"{base}/approve", {}, 409)
    assert "承認は取り消されました" in changed.get_data(as_text=True)
    with app.app_context():
        s = get_db().session
        assert s.scalar(sa.select(sa.func.count()).select_from(ClearingSettlement)) == 0
        assert (
            s.scalar(
                sa.select(sa.func.count())
                .select_from(AuditLog)
                .where(AuditLog.action == "clearing.restate")
            )
            == 1
        )
        s.commit()
    # The relayer sends the payment again on the new branch: the statement shows it again.
    assert drive(
        app,
        w3,
        lambda: _state(app, charge["id"]) == ("paid", [70], ["requested"]),
        also=lambda: _index(app),
    )
    assert "洞爺湖町が更別村に70円を支払います。" in sara.get(url).get_data(as_text=True)
