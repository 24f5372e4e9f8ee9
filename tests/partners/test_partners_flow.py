"""Issue 13 §3 on real anvil with two towns, each with its own contracts: Sarabetsu's staff
propose a partnership, Tōyako's approve, both setPartner calls are confirmed; a Sarabetsu shop
takes Tōyako points (the customer's Tōyako balance drops, the charge, the customer's history
and the shop's statement name the town); the clearing statement says Tōyako owes Sarabetsu;
two Tōyako staff approve it and one pays it with a bank reference; Sarabetsu's staff see it."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from backend.chain.outbox_models import OutboxTx
from backend.chain.registry import artifact
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.merchants.models import Charge
from backend.partners.models import ClearingSettlement, PartnerPayment, Partnership
from backend.partners.services import JST, month_end
from tests.merchants.conftest import run_chain, snapshot
from tests.partners.conftest import (
    CLERK,
    CUSTOMER,
    SARABETSU_STAFF,
    TOYAKO_STAFF,
    TOYAKO_STAFF2,
    page_post,
    partner_up,
    partnership_id,
)


def _charge(towns, amount: int, key: str) -> dict:
    r = towns.api(CLERK).post(
        f"/api/merchants/{towns.merchant_id}/charges", {"amount": amount, "idempotency_key": key}
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    return r.get_json()["charge"]


def _points(w3, towns, slug: str):
    with towns.app.app_context():
        address = towns.town(slug).points_address
        get_db().session.commit()
    return w3.eth.contract(address=address, abi=artifact("RegionPoints").abi)


def _customer_address(towns) -> str:
    with towns.app.app_context():
        a = towns.user(CUSTOMER).addresses[0].address
        get_db().session.commit()
    return a


def _next_month(w3) -> None:
    """Move the chain's clock into the next JST month and mine a block."""
    now = w3.eth.get_block("latest")["timestamp"]
    month = dt.datetime.fromtimestamp(now, dt.UTC).astimezone(JST).strftime("%Y-%m")
    end = int(month_end(month).timestamp())
    w3.provider.make_request("evm_setNextBlockTimestamp", [end + 3600])
    w3.provider.make_request("anvil_mine", ["0x1"])


def test_partnership_payment_and_clearing(app, towns, w3):
    sara_staff, toya_staff, toya_staff2 = (
        towns.api(SARABETSU_STAFF), towns.api(TOYAKO_STAFF), towns.api(TOYAKO_STAFF2)
    )  # fmt: skip
    # Proposed by Sarabetsu: Sarabetsu cannot approve it again; Tōyako sees it to approve.
    page_post(sara_staff, "/towns/sarabetsu/admin/partners", {"town": "toyako"})
    pid = partnership_id(towns)
    again = page_post(sara_staff, f"/towns/sarabetsu/admin/partners/{pid}/approve", {}, 409)
    assert "相手のまちの承認が必要です" in again.get_data(as_text=True)
    page = toya_staff.get("/towns/toyako/admin/partners").get_data(as_text=True)
    assert "提携を承認する" in page and "更別村" in page
    # Not partners yet: paying with Tōyako points is refused, nothing sent.
    charge = _charge(towns, 120, "partner-charge-0")
    customer = towns.api(CUSTOMER)
    before = snapshot(app)
    refused = customer.post(f"/api/pay/{charge['code']}", {"points_town": "toyako"})
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "not_partners"
    assert snapshot(app) == before
    # Tōyako approves: both setPartner calls are queued, then confirmed by the chain.
    page_post(toya_staff, f"/towns/toyako/admin/partners/{pid}/approve", {})
    with app.app_context():
        s = get_db().session
        p = s.get(Partnership, pid)
        assert p.status == "approved" and p.a_approved_by and p.b_approved_by
        calls = s.scalars(sa.select(OutboxTx).where(OutboxTx.function == "setPartner")).all()
        assert sorted(c.sender_kind for c in calls) == ["town_settings", "town_settings"]
        actions = sorted(
            a.action
            for a in s.scalars(sa.select(AuditLog).where(AuditLog.subject_type == "partnership"))
        )
        assert actions == [
            "partnership.approve",
            "partnership.propose",
            "partnership.set_partner",
            "partnership.set_partner",
        ]
        s.commit()
    queued = sara_staff.get("/towns/sarabetsu/admin/partners").get_data(as_text=True)
    assert "順番待ち" in queued  # queued until the chain confirms
    run_chain(app, w3)
    with app.app_context():
        assert get_db().session.get(Partnership, pid).status == "active"
        get_db().session.commit()
    shown = sara_staff.get("/towns/sarabetsu/admin/partners").get_data(as_text=True)
    assert "稼働中" in shown and "確認済み" in shown
    sara_points, toya_points = _points(w3, towns, "sarabetsu"), _points(w3, towns, "toyako")
    assert sara_points.functions.isPartner(toya_points.address).call()
    # The pay page offers Tōyako points; the customer pays with them.
    pay_page = customer.get(f"/pay/{charge['code']}").get_data(as_text=True)
    assert 'value="toyako"' in pay_page and "洞爺湖町" in pay_page
    address = _customer_address(towns)
    assert toya_points.functions.balanceOf(address).call() == 500
    page_post(customer, f"/pay/{charge['code']}", {"points_town": "toyako"}, 200)
    run_chain(app, w3)
    assert toya_points.functions.balanceOf(address).call() == 380
    with app.app_context():
        s = get_db().session
        c = s.get(Charge, charge["id"])
        assert c.status == "paid" and c.points_town_id == towns.toyako_id
        (pp,) = s.scalars(sa.select(PartnerPayment)).all()
        assert (pp.payer_town_id, pp.merchant_town_id, int(pp.amount)) == (
            towns.toyako_id,
            towns.sarabetsu_id,
            120,
        )
        s.commit()
    # Sarabetsu owes its shop the 120 in yen: a settlement in the town's queue, nothing to burn.
    queue = sara_staff.get("/api/towns/sarabetsu/settlements").get_json()["settlements"]
    assert [(q["merchant_id"], q["amount"], q["status"]) for q in queue] == [
        (towns.merchant_id, 120, "requested")
    ]
    # The customer's history and the pay page name the town whose points paid.
    history = customer.get("/points").get_data(as_text=True)
    assert "洞爺湖町のポイント" in history
    mine = {t["town"]: t for t in customer.get("/api/points").get_json()["towns"]}
    assert mine["toyako"]["confirmed"] == 380
    # In Tōyako's history the burn is a payment at a shop, not a redemption.
    assert [(h["kind"], h["amount"]) for h in mine["toyako"]["history"]][:1] == [("paid", 120)]
    # The shop's statement shows the sale and the town.
    csv_text = (
        towns.api(CLERK).get(f"/merchants/{towns.merchant_id}/statement.csv").get_data(as_text=True)
    )
    assert any(
        line.split(",")[1:3] == ["partner_sale", "120"] and line.rstrip().endswith("toyako")
        for line in csv_text.splitlines()
    ), csv_text
    # The shop's desk lists the sale with the town, and the charge's page names it too.
    clerk = towns.api(CLERK)
    desk = clerk.get(f"/merchants/{towns.merchant_id}").get_data(as_text=True)
    assert 'data-testid="partner-sales"' in desk and "洞爺湖町のポイント" in desk
    shown = clerk.get(f"/merchants/{towns.merchant_id}/charges/{charge['id']}")
    assert "洞爺湖町のポイント" in shown.get_data(as_text=True)
    # The clearing statement: Tōyako owes Sarabetsu 120 points = 120 yen (rate 1).
    sara_clearing = sara_staff.get("/towns/sarabetsu/admin/clearing").get_data(as_text=True)
    toya_clearing = toya_staff.get("/towns/toyako/admin/clearing").get_data(as_text=True)
    for text in (sara_clearing, toya_clearing):
        assert "洞爺湖町が更別村に120円を支払います。" in text
    assert "この月が終わると精算できます。" in toya_clearing  # not before the month is over
    _next_month(w3)
    month = pp.month
    base = f"/towns/toyako/admin/clearing/sarabetsu/{month}"
    # Sarabetsu (the creditor) may not approve; an outsider gets 403 too.
    page_post(sara_staff, f"/towns/sarabetsu/admin/clearing/toyako/{month}/approve", {}, 403)
    page_post(towns.api(CLERK), f"{base}/approve", {}, 403)
    page_post(toya_staff, f"{base}/approve", {})
    # Four eyes: the same person cannot approve twice nor pay before a second approval.
    page_post(toya_staff, f"{base}/approve", {}, 409)
    page_post(toya_staff, f"{base}/settle", {"bank_reference": "TX-1"}, 409)
    page_post(toya_staff2, f"{base}/approve", {})
    page_post(toya_staff, f"{base}/settle", {"bank_reference": "=HYPERLINK(1)"})
    with app.app_context():
        s = get_db().session
        (cs,) = s.scalars(sa.select(ClearingSettlement)).all()
        assert (cs.status, cs.yen, cs.debtor_town_id, cs.creditor_town_id) == (
            "settled",
            120,
            towns.toyako_id,
            towns.sarabetsu_id,
        )
        actions = [
            a.action
            for a in s.scalars(
                sa.select(AuditLog)
                .where(AuditLog.subject_type == "clearing_settlement")
                .order_by(AuditLog.id)
            )
        ]
        assert actions == ["clearing.approve", "clearing.approve", "clearing.pay"]
        s.commit()
    seen = sara_staff.get(f"/towns/sarabetsu/admin/clearing?month={month}").get_data(as_text=True)
    assert "支払済み" in seen and "=HYPERLINK(1)" in seen
    csv_clearing = sara_staff.get(f"/towns/sarabetsu/admin/clearing/toyako/{month}.csv")
    text = csv_clearing.get_data(as_text=True)
    assert "toyako,sarabetsu,120,1,120" in text and "'=HYPERLINK(1)" in text


def test_outsiders_are_refused(app, towns, w3):
    outsider = towns.api(CLERK)
    assert outsider.get("/towns/toyako/admin/partners").status_code == 403
    assert outsider.get("/towns/toyako/admin/clearing").status_code == 403
    page_post(outsider, "/towns/toyako/admin/partners", {"town": "sarabetsu"}, 403)
    page_post(outsider, "/towns/toyako/admin/partners/rate", {"rate": "3"}, 403)
    # Sarabetsu's staff cannot act for Tōyako.
    page_post(
        towns.api(SARABETSU_STAFF), "/towns/toyako/admin/partners", {"town": "sarabetsu"}, 403
    )
    with app.app_context():
        assert get_db().session.scalar(sa.select(sa.func.count()).select_from(Partnership)) == 0
        get_db().session.commit()


def test_ending_a_partnership(app, towns, w3):
    pid = partner_up(towns, w3)
    toya = towns.api(TOYAKO_STAFF)
    # Only a party's staff may end it.
    page_post(towns.api(CLERK), f"/towns/toyako/admin/partners/{pid}/end", {}, 403)
    page_post(toya, f"/towns/toyako/admin/partners/{pid}/end", {})
    page_post(toya, f"/towns/toyako/admin/partners/{pid}/end", {})  # again: nothing more
    with app.app_context():
        s = get_db().session
        assert s.get(Partnership, pid).status == "ended"
        offs = s.scalars(
            sa.select(OutboxTx).where(OutboxTx.function == "setPartner").order_by(OutboxTx.id)
        ).all()
        assert len(offs) == 3 and offs[-1].args[1] is False
        assert (
            s.scalar(
                sa.select(sa.func.count())
                .select_from(AuditLog)
                .where(AuditLog.action == "partnership.end")
            )
            == 1
        )
        s.commit()
    # No more partner payments: refused at once, with nothing sent.
    charge = _charge(towns, 10, "ended-charge-1")
    before = snapshot(app)
    refused = towns.api(CUSTOMER).post(f"/api/pay/{charge['code']}", {"points_town": "toyako"})
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "not_partners"
    assert snapshot(app) == before
    run_chain(app, w3)
    sara_points, toya_points = _points(w3, towns, "sarabetsu"), _points(w3, towns, "toyako")
    assert not toya_points.functions.isPartner(sara_points.address).call()
    with app.app_context():
        assert get_db().session.get(Partnership, pid).status == "ended"
        get_db().session.commit()
    # Either town may start it again (tests/partners/test_partnership_again.py).
    page = towns.api(SARABETSU_STAFF).get("/towns/sarabetsu/admin/partners")
    assert "もう一度提携を提案する" in page.get_data(as_text=True)
