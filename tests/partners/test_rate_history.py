"""A town's yen per point is versioned by month (ADR 0026): a change is in force from the first
day of the next JST month, and a month's clearing uses the rate in force in that month. Before,
every month was valued at today's rate, so the town that owed could lower its rate (or the town
owed raise its own) just before the clearing was approved.

The clock is the service's `chain_now` (the chain's clock in the app), set by each test; the
last test takes it from anvil through the console."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
import sqlalchemy as sa
from flask import Flask

from backend.accounts.models import User
from backend.accounts.roles import STAFF, grant_town_role
from backend.chain.outbox import outbox_service
from backend.chain.registry import Deployments
from backend.core.db import get_db
from backend.core.errors import InvalidInput
from backend.core.models import AuditLog
from backend.partners import models
from backend.partners.models import ACTIVE, PartnerPayment, Partnership
from backend.partners.services import JST, PartnerService, month_end
from backend.regions.models import Town
from tests.merchants.conftest import Api, _signup
from tests.partners.conftest import TOYAKO_STAFF, _town, page_post


def jst(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    """Unix seconds of a moment of Japan time."""
    return int(dt.datetime(year, month, day, hour, minute, second, tzinfo=JST).timestamp())


@dataclass
class Pair:
    """Sarabetsu and Tōyako, active partners (as if both PartnerSet were indexed), with staff
    (two in Tōyako, for four eyes) and a clock the test sets."""

    app: Flask
    chain_id: int
    sara_id: int
    toya_id: int
    sara_staff: int
    toya_staff: list[int]
    now: int = field(default_factory=lambda: jst(2026, 10, 20, 12))

    def service(self) -> PartnerService:
        return PartnerService(get_db().session(), outbox=outbox_service, chain_now=lambda: self.now)

    def user(self, user_id: int) -> User:
        return get_db().session.get(User, user_id)

    def town(self, town_id: int) -> Town:
        return get_db().session.get(Town, town_id)

    def set_rate(self, town_id: int, value: object, staff: int = 0) -> object:
        user = self.sara_staff if town_id == self.sara_id else self.toya_staff[staff]
        return self.service().set_rate(self.user(user), self.town(town_id), value)

    def rates(self, month: str) -> dict[int, int]:
        """Each town's yen per point in the month's clearing statement."""
        st = self.service().statement(
            self.user(self.toya_staff[0]), self.town(self.toya_id), self.town(self.sara_id), month
        )
        return {st.town_a.id: st.rate_a, st.town_b.id: st.rate_b}

    def pay(self, payer_town_id: int, points: int, at: int) -> None:
        """A partner payment as the indexer records it: `payer_town_id`'s points at a shop of
        the other town, in a block of time `at`."""
        s = get_db().session
        n = s.scalar(sa.select(sa.func.count()).select_from(PartnerPayment))
        moment = dt.datetime.fromtimestamp(at, dt.UTC)
        s.add(
            PartnerPayment(
                chain_id=self.chain_id,
                tx_hash=f"0x{n + 1:064x}",
                log_index=0,
                block_number=n + 1,
                block_time=moment,
                month=moment.astimezone(JST).strftime("%Y-%m"),
                payer_town_id=payer_town_id,
                merchant_town_id=self.sara_id if payer_town_id == self.toya_id else self.toya_id,
                merchant="0x" + "11" * 20,
                payer="0x" + "22" * 20,
                amount=Decimal(points),
                ref="0x" + "00" * 32,
            )
        )
        s.commit()


@pytest.fixture
def pair(app: Flask, deployed: Deployments) -> Pair:
    with app.app_context():
        s = get_db().session
        sara = _town("sarabetsu", "更別村", "Sarabetsu", deployed)
        toya = _town("toyako", "洞爺湖町", "Lake Toya", deployed)
        sara_staff = _signup(app, "staff@sarabetsu.example")
        grant_town_role(sara_staff, sara.id, STAFF)
        toya_staff = [_signup(app, f"staff{i}@toyako.example") for i in range(2)]
        for u in toya_staff:
            grant_town_role(u, toya.id, STAFF)
        a, b = sorted((sara.id, toya.id))
        s.add(
            Partnership(town_a_id=a, town_b_id=b, status=ACTIVE, a_approved_by=1, b_approved_by=2)
        )
        s.commit()
        return Pair(
            app, deployed.chain_id, sara.id, toya.id, sara_staff.id, [u.id for u in toya_staff]
        )


def _audits() -> list[dict]:
    return [
        a.details
        for a in get_db().session.scalars(
            sa.select(AuditLog).where(AuditLog.action == "clearing.rate").order_by(AuditLog.id)
        )
    ]


def test_changing_the_rates_after_a_month_leaves_its_clearing_as_it_was(pair):
    """Tōyako owes for November; in December it lowers its rate and Sarabetsu raises its own.
    November is still valued, approved and settled at the rates in force in November (which
    the old code would have turned around into Sarabetsu owing Tōyako)."""
    with pair.app.app_context():
        pair.now = jst(2026, 10, 20, 12)  # October: both towns set their rates for November
        pair.set_rate(pair.toya_id, "5")
        pair.set_rate(pair.sara_id, "2")
        pair.now = jst(2026, 11, 15, 12)
        pair.pay(pair.toya_id, 120, pair.now)  # Tōyako owes 120 x 5 = 600 yen
        pair.pay(pair.sara_id, 10, pair.now)  # Sarabetsu owes 10 x 2 = 20 yen
        pair.now = jst(2026, 12, 3, 9)  # December: the owing town lowers, the other raises
        pair.set_rate(pair.toya_id, "1")
        pair.set_rate(pair.sara_id, "50")
        assert pair.rates("2026-11") == {pair.toya_id: 5, pair.sara_id: 2}
        svc = pair.service()
        toya, sara = pair.town(pair.toya_id), pair.town(pair.sara_id)
        st = svc.statement(pair.user(pair.toya_staff[0]), toya, sara, "2026-11")
        assert (st.debtor.id, st.net_yen) == (pair.toya_id, 580)
        svc.approve_clearing(pair.user(pair.toya_staff[0]), toya, sara, "2026-11")
        svc.approve_clearing(pair.user(pair.toya_staff[1]), toya, sara, "2026-11")
        settled = pair.service().settle_clearing(
            pair.user(pair.toya_staff[0]), toya, sara, "2026-11", "ZENGIN-1"
        )
        assert (settled.status, settled.yen, settled.debtor_town_id) == (
            "settled",
            580,
            pair.toya_id,
        )
        by_town = {settled.town_a_id: settled.rate_a, settled.town_b_id: settled.rate_b}
        assert by_town == {pair.toya_id: 5, pair.sara_id: 2}
        # December, begun when the change was made, keeps November's rates; January has the new.
        assert pair.rates("2026-12") == {pair.toya_id: 5, pair.sara_id: 2}
        assert pair.rates("2027-01") == {pair.toya_id: 1, pair.sara_id: 50}
        # The statement still matches its approval: nothing is flagged as changed.
        assert (
            not pair.service().statement(pair.user(pair.toya_staff[0]), toya, sara, "2026-11").stale
        )
        get_db().session.commit()


def test_a_change_is_in_force_from_the_first_second_of_the_next_jst_month(pair):
    last = jst(2026, 12, 31, 23, 59, 59)
    first = last + 1  # 2027-01-01 00:00:00 in Japan
    # In UTC both moments are on 31 December: the calendar is Japan's, as for the payments.
    assert dt.datetime.fromtimestamp(first, dt.UTC).date() == dt.date(2026, 12, 31)
    assert first == int(month_end("2026-12").timestamp())
    with pair.app.app_context():
        pair.now = last
        pair.set_rate(pair.toya_id, "7")
        pair.pay(pair.toya_id, 100, last)
        pair.pay(pair.toya_id, 100, first)
        assert pair.service().rate(pair.toya_id) == 1
        assert pair.rates("2026-12")[pair.toya_id] == 1
        pair.now = first
        assert pair.service().rate(pair.toya_id) == 7
        assert pair.rates("2026-12")[pair.toya_id] == 1
        assert pair.rates("2027-01")[pair.toya_id] == 7
        # Set at the first second of January, a change waits for February.
        pair.set_rate(pair.toya_id, "9")
        assert pair.rates("2027-01")[pair.toya_id] == 7
        assert pair.rates("2027-02")[pair.toya_id] == 9
        rates = pair.service().rates(pair.user(pair.toya_staff[0]), pair.town(pair.toya_id))
        assert (rates.month, rates.current, rates.pending.yen_per_point) == ("2027-01", 7, 9)
        assert [(v.effective_from, v.yen_per_point, v.state) for v in rates.history] == [
            ("2027-02", 9, "pending"),
            ("2027-01", 7, "current"),
            ("0000-01", 1, "past"),
        ]
        assert rates.history[0].set_by.id == pair.toya_staff[0]
        assert rates.history[-1].set_by is None  # the platform's default
        get_db().session.commit()


def test_a_second_change_replaces_the_waiting_one_and_the_rate_in_force_withdraws_it(pair):
    with pair.app.app_context():
        pair.now = jst(2026, 12, 10)
        assert pair.set_rate(pair.toya_id, "5").yen_per_point == 5
        assert pair.set_rate(pair.toya_id, " 6 ", staff=1).yen_per_point == 6
        s = get_db().session
        PartnerRate = models.PointRateVersion  # noqa: N806 - a model, named as one
        waiting = s.execute(
            sa.select(
                PartnerRate.effective_from, PartnerRate.yen_per_point, PartnerRate.set_by
            ).where(PartnerRate.town_id == pair.toya_id, PartnerRate.effective_from > "2026-12")
        ).all()
        assert [tuple(w) for w in waiting] == [("2027-01", 6, pair.toya_staff[1])]
        assert pair.set_rate(pair.toya_id, "6") is not None  # what is waiting: no change
        assert pair.set_rate(pair.toya_id, "1") is None  # the rate in force: withdrawn
        assert pair.set_rate(pair.toya_id, "1") is None  # nothing to change
        assert pair.rates("2027-01")[pair.toya_id] == 1
        audits = _audits()
        assert [(a["before"], a["after"], a["effective_from"]) for a in audits] == [
            (1, 5, "2027-01"),
            (5, 6, "2027-01"),
            (6, 1, "2027-01"),
        ]
        assert audits[1]["replaced"] == [
            {"effective_from": "2027-01", "yen_per_point": 5, "set_by": pair.toya_staff[0]}
        ]
        assert audits[2]["withdrawn"] is True
        rows = s.scalars(sa.select(AuditLog).where(AuditLog.action == "clearing.rate")).all()
        assert {(r.town_id, r.subject_type, r.subject_id) for r in rows} == {
            (pair.toya_id, "town", str(pair.toya_id))
        }
        s.commit()


# Zero, negative, too large (and too long to be read as a number), not whole, not written in
# ASCII digits, not a number at all.
BAD = ["0", "-1", "-0", "1000001", "9" * 5000, "1.5", "2.0", "1e3", "0x10", "abc", "", " "]
BAD += ["１２", "+5", "5 yen"]


def test_bad_rates_are_a_clear_400_and_change_nothing(app, pair):
    with app.app_context():
        pair.now = jst(2026, 12, 10)
        pair.set_rate(pair.toya_id, "5")
        get_db().session.commit()
    staff = _api(app, "staff0@toyako.example")
    before = _rate_rows(app)
    for value in BAD:
        resp = page_post(staff, "/towns/toyako/admin/partners/rate", {"rate": value}, 400)
        assert "1〜1000000 の整数（円）を入力してください。" in resp.get_data(as_text=True), value
    assert _rate_rows(app) == before
    with app.app_context():
        svc, user, town = pair.service(), pair.user(pair.toya_staff[0]), pair.town(pair.toya_id)
        for value in (0, -3, 10**7, 2.5, Decimal(3), True, None, [5], 10**5000):
            with pytest.raises(InvalidInput) as raised:
                svc.set_rate(user, town, value)
            assert raised.value.status == 400, value
        assert len(_audits()) == 1
        get_db().session.commit()
    assert _rate_rows(app) == before


def _api(app: Flask, email: str) -> Api:
    return Api(app).login(email)


def _rate_rows(app: Flask) -> list[tuple]:
    with app.app_context():
        s = get_db().session
        PartnerRate = models.PointRateVersion  # noqa: N806 - a model, named as one
        rows = s.execute(
            sa.select(
                PartnerRate.town_id, PartnerRate.effective_from, PartnerRate.yen_per_point
            ).order_by(PartnerRate.id)
        ).all()
        audits = s.scalar(sa.select(sa.func.count()).select_from(AuditLog))
        s.commit()
    return [tuple(r) for r in rows] + [("audit rows", audits)]


def test_the_console_shows_the_rate_and_the_change_waiting_by_the_chains_clock(app, towns, w3):
    """Through the console, on anvil: a change at the last second of a JST month waits for the
    next (ja and en), and is in force from the block of the next month's first second."""
    latest = w3.eth.get_block("latest")["timestamp"]
    month = dt.datetime.fromtimestamp(latest, dt.UTC).astimezone(JST).strftime("%Y-%m")
    first = int(month_end(month).timestamp())
    nxt = dt.datetime.fromtimestamp(first, JST).strftime("%Y-%m")
    _mine_at(w3, first - 1)
    toya = towns.api(TOYAKO_STAFF)
    url = "/towns/toyako/admin/partners"
    done = page_post(toya, f"{url}/rate", {"rate": "3"})
    assert done.headers["Location"].endswith("notice=rate")
    ja = toya.client.get(url, headers={"Accept-Language": "ja"}).get_data(as_text=True)
    assert f"今月（{month}）" in ja and "1ポイントあたり1円" in ja
    assert f"{nxt} から：1ポイントあたり3円" in ja and "保存しました" not in ja
    en = toya.client.get(url, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert f"From {nxt}: ¥3 per point" in en and f"This month ({month})" in en
    assert f"Yen per point from {nxt}" in en
    _mine_at(w3, first)
    ja = toya.client.get(url, headers={"Accept-Language": "ja"}).get_data(as_text=True)
    assert f"今月（{nxt}）" in ja and "1ポイントあたり3円" in ja
    assert "予定されている変更はありません。" in ja
    en = toya.client.get(url, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "No change is waiting." in en
    # Setting the rate in force again changes nothing, and says so.
    kept = page_post(toya, f"{url}/rate", {"rate": "3"})
    assert kept.headers["Location"].endswith("notice=rate_kept")


def _mine_at(w3, timestamp: int) -> None:
    w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])
    w3.provider.make_request("anvil_mine", ["0x1"])
    assert w3.eth.get_block("latest")["timestamp"] == timestamp
