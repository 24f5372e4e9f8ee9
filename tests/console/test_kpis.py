"""The console's KPIs (/towns/<slug>/admin/kpis) and the anonymised CSV of the month's events
(ADR 0028): the figures of a small world made here, in JST months; another town's rows not
counted; staff, admins and data staff read the page, a clerk, venue staff and outsiders get
403; only data staff export (403 otherwise, no audit row); the CSV names nobody (no e-mail,
name, 0x address or time), its pseudonym is stable within a town and differs across towns,
and formula-looking text is neutralised; a bad month is a 400 that changes nothing."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from backend.accounts.models import Address, User
from backend.accounts.roles import DATA, grant_town_role
from backend.core.db import get_db
from backend.core.purpose_keys import KPI_PSEUDONYM, purpose_key
from backend.dao.models import DaoPoll, DaoPollVote, DaoProposal, DaoVote
from backend.events.models import Event, EventCheckIn
from backend.insights.export import pseudonym
from backend.insights.period import parse_period
from backend.insights.services import kpi_service
from backend.issuing.models import IssuanceBatch, IssuanceChunk, IssuanceRow
from backend.merchants.models import PAID, SETTLED
from backend.points.models import PointsGrant, TownProgramme
from backend.premium.models import PremiumPurchase
from backend.regions.models import Town
from backend.residency.models import Resident
from backend.shop.models import CheckIn, Order
from tests.console.conftest import EMAILS, audit_rows
from tests.factories import (
    ChargeFactory,
    CollectionFactory,
    ListingFactory,
    SettlementFactory,
    UserFactory,
)

KPIS = "/towns/sarabetsu/admin/kpis"
MONTH = "2030-05"
JST = dt.timezone(dt.timedelta(hours=9))
FIRST = dt.datetime(2030, 5, 1, 0, 0, tzinfo=JST)  # the month's first JST instant
IN = dt.datetime(2030, 5, 14, 12, 0, tzinfo=JST)
LAST = dt.datetime(2030, 5, 31, 23, 59, tzinfo=JST)
BEFORE = FIRST - dt.timedelta(minutes=1)  # 2030-04-30 23:59 JST: April
AFTER = dt.datetime(2030, 6, 1, 0, 0, tzinfo=JST)  # June
_seq = iter(range(1, 10_000))


def _n() -> int:
    return next(_seq)


def _address(user_id: int) -> str:
    return str(
        get_db().session.scalar(sa.select(Address.address).where(Address.user_id == user_id))
    )


def _grant(town_id, user_id, programme_id, amount, at, status="confirmed") -> None:
    get_db().session.add(
        PointsGrant(
            user_id=user_id,
            town_id=town_id,
            programme_id=programme_id,
            grant_key=f"k{_n()}",
            amount=Decimal(amount),
            address="0x" + "1" * 40,
            status=status,
            confirmed_at=at,
        )
    )


def _batch(town_id, staff_id, programme_id, source, at, rows) -> None:
    s = get_db().session
    batch = IssuanceBatch(
        town_id=town_id,
        programme_id=programme_id,
        reason="thanks",
        source=source,
        idempotency_key=f"b{_n()}",
        total=Decimal(sum(a for _u, a, _s in rows)),
        four_eyes_amount=Decimal(10**9),
        created_by=staff_id,
        state="done",
    )
    s.add(batch)
    s.flush()
    chunk = IssuanceChunk(
        batch_id=batch.id,
        number=1,
        recipients=len(rows),
        total=batch.total,
        confirmed_at=at,
        status="confirmed",
    )
    s.add(chunk)
    s.flush()
    for line, (user_id, amount, status) in enumerate(rows, start=2):
        s.add(
            IssuanceRow(
                batch_id=batch.id,
                line=line,
                recipient=f"someone{line}@example.com",
                user_id=user_id,
                address="0x" + "2" * 40,
                amount=Decimal(amount),
                status=status,
                chunk_id=chunk.id,
            )
        )


def _purchase(town_id, user_id, yen, points, at, status="issued") -> None:
    n = _n()
    get_db().session.add(
        PremiumPurchase(
            public_id=f"pp_{n}",
            request_key=f"r{n}",
            town_id=town_id,
            user_id=user_id,
            address="0x" + "3" * 40,
            yen=yen,
            points=points,
            premium_percent=10,
            programme_id=2,
            expiry_days=180,
            status=status,
            provider="test",
            issued_at=at,
        )
    )


def _charge(t, user_id, amount, at, status=PAID, points_town_id=None) -> None:
    ChargeFactory(
        merchant_id=t.merchant_id,
        town_id=t.town_id,
        created_by=t.user_id("clerk"),
        amount=Decimal(amount),
        status=status,
        payer_user_id=user_id,
        paid_at=at,
        points_town_id=points_town_id,
    )


def _order(listing, user_id, quantity, at, status="completed") -> None:
    n = _n()
    get_db().session.add(
        Order(
            public_id=f"o{n}",
            user_id=user_id,
            idempotency_key=f"o{n}",
            listing_id=listing.id,
            quantity=quantity,
            amount=listing.price * quantity,
            payment_kind=listing.payment_kind,
            buyer_address="0x" + "4" * 40,
            status=status,
            payment_ref=f"ref{n}",
            created_at=at,
        )
    )


def _event(town_id, staff_id) -> Event:
    event = Event(
        town_id=town_id,
        request_key=f"e{_n()}",
        name_ja="祭り",
        name_en="Festival",
        place_ja="広場",
        place_en="Square",
        starts_at=FIRST,
        ends_at=AFTER,
        points=100,
        programme_id=4,
        created_by=staff_id,
    )
    get_db().session.add(event)
    get_db().session.flush()
    return event


def _proposal(town_id, at, joint_of=None) -> DaoProposal:
    n = _n()
    p = DaoProposal(
        town_id=town_id,
        chamber="card",
        governor_address="0x" + "5" * 40,
        proposal_id=str(n),
        idempotency_key=f"p{n}",
        description="d",
        targets=[],
        values=[],
        calldatas=[],
        token="yen",
        token_address="0x" + "6" * 40,
        recipient="0x" + "7" * 40,
        amount=Decimal(1),
        treasury_address="0x" + "8" * 40,
        created_at=at,
        joint_of=joint_of,
    )
    get_db().session.add(p)
    get_db().session.flush()
    return p


def _poll(town_id) -> DaoPoll:
    n = _n()
    poll = DaoPoll(
        town_id=town_id,
        chamber="card",
        poll_address="0x" + "9" * 40,
        token_address="0x" + "a" * 40,
        idempotency_key=f"q{n}",
        options=[{"ja": "はい", "en": "Yes"}],
        duration_blocks=10,
        description=f"poll {n}",
    )
    get_db().session.add(poll)
    get_db().session.flush()
    return poll


def _resident(town_id, user_id, at, state="issued") -> None:
    get_db().session.add(
        Resident(
            town_id=town_id,
            user_id=user_id,
            identity_hash="0x" + f"{_n():064x}",
            holder="0x" + "b" * 40,
            state=state,
            method="in_person",
            verified_at=at,
        )
    )


def _world(app, t) -> dict[str, Any]:
    """Sarabetsu's May 2030, with rows just outside it (April, June, unfinished states) and the
    same kinds of rows in Lake Toya; returns the figures expected from what was made."""
    with app.app_context():
        s = get_db().session
        cust, newbie, staff = t.user_id("customer"), t.user_id("newbie"), t.user_id("staff")
        voter = UserFactory().id  # only votes
        town, other = t.town_id, t.other_town_id
        # A town's own programme row with a formula-looking kind (staff type names and kinds).
        s.add(
            TownProgramme(
                town_id=town,
                programme_id=3,
                kind="=1+1",
                name_ja="感謝",
                name_en="Thanks",
                expiry_days=90,
            )
        )
        # Points granted: welcome (1) and event prize (4); a pending one and April's are not.
        _grant(town, cust, 1, 500, FIRST)
        _grant(town, newbie, 4, 100, IN)
        _grant(town, voter, 1, 500, IN, status="pending")
        _grant(town, cust, 4, 100, BEFORE)
        # Issued by staff (programme 3): two confirmed rows, one to an address (no person),
        # one failed; a service's batch (programme 3); a batch confirmed in June.
        _batch(
            town,
            staff,
            3,
            "csv",
            LAST,
            [(cust, 1000, "confirmed"), (None, 200, "confirmed"), (newbie, 50, "failed")],
        )
        _batch(town, staff, 3, "service", IN, [(newbie, 300, "confirmed")])
        _batch(town, staff, 3, "single", AFTER, [(voter, 999, "confirmed")])
        # Bought: one issued (1,000 yen -> 1,100 points); one still processing.
        _purchase(town, cust, 1000, 1100, IN)
        _purchase(town, newbie, 5000, 5500, IN, status="processing")
        # Shop payments: two paid (one with the partner's points), one pending, one in June.
        _charge(t, cust, 300, IN)
        _charge(t, newbie, 120, LAST, points_town_id=other)
        _charge(t, voter, 70, None, status="pending")
        _charge(t, cust, 55, AFTER)
        # Redemptions (burnt in May: 400 requested, 250 settled in May but burnt in April).
        SettlementFactory(
            town_id=town,
            merchant_id=t.merchant_id,
            requested_by=staff,
            amount=Decimal(400),
            redeemed_at=IN,
        )
        SettlementFactory(
            town_id=town,
            merchant_id=t.merchant_id,
            requested_by=staff,
            amount=Decimal(250),
            redeemed_at=BEFORE,
            status=SETTLED,
            settled_at=IN,
        )
        # Fan NFTs: 2 event tickets by card (3,000 yen each), 1 ambassador card for 50 points,
        # a failed order and one in June.
        tickets = ListingFactory(
            collection_id=CollectionFactory(town_id=town, category="event_ticket").id,
            payment_kind="card",
            price=Decimal(3000),
        )
        cards = ListingFactory(
            collection_id=CollectionFactory(town_id=town, category="ambassador_card").id,
            payment_kind="points",
            price=Decimal(50),
        )
        _order(tickets, cust, 2, IN)
        _order(cards, newbie, 1, LAST)
        _order(tickets, voter, 1, IN, status="failed")
        _order(cards, cust, 1, AFTER)
        # A ticket used by the customer's address (done), one still processing.
        for status in ("done", "processing"):
            s.add(
                CheckIn(
                    idempotency_key=f"c{_n()}",
                    town_id=town,
                    collection_id=tickets.collection_id,
                    token_id=1,
                    perk_id=1,
                    holder_address=_address(cust).lower(),
                    verifier_user_id=t.user_id("verifier"),
                    status=status,
                    created_at=IN,
                )
            )
        # Event check-ins: newbie in May; the customer in June.
        event = _event(town, staff)
        s.add(EventCheckIn(event_id=event.id, user_id=newbie, method="self", created_at=IN))
        s.add(EventCheckIn(event_id=event.id, user_id=cust, method="self", created_at=AFTER))
        # DAO: a proposal and its resident-chamber half (counted once), one in April; a counted
        # vote by the voter, a vote still submitted; a counted poll vote by the customer.
        proposal = _proposal(town, IN)
        _proposal(town, IN, joint_of=proposal.id)
        _proposal(town, BEFORE)
        s.add(
            DaoVote(
                proposal_row_id=proposal.id,
                voter="0x" + "c" * 40,
                user_id=voter,
                support=1,
                state="counted",
                created_at=IN,
            )
        )
        s.add(
            DaoVote(
                proposal_row_id=proposal.id,
                voter="0x" + "d" * 40,
                user_id=t.user_id("admin"),
                support=1,
                state="submitted",
                created_at=IN,
            )
        )
        poll = _poll(town)
        s.add(
            DaoPollVote(
                poll_row_id=poll.id,
                voter="0x" + "e" * 40,
                user_id=cust,
                option=0,
                state="counted",
                created_at=IN,
            )
        )
        # Residents: one issued pass in May, one whose issue failed.
        _resident(town, t.user_id("data"), IN)
        _resident(town, t.user_id("verifier"), IN, state="failed")

        # Lake Toya: the same kinds of rows in the same month, none of which Sarabetsu counts.
        _grant(other, cust, 1, 500, IN)
        _purchase(other, cust, 2000, 2200, IN)
        _batch(other, staff, 3, "csv", IN, [(newbie, 700, "confirmed")])
        other_event = _event(other, staff)
        s.add(EventCheckIn(event_id=other_event.id, user_id=voter, method="self", created_at=IN))
        other_listing = ListingFactory(
            collection_id=CollectionFactory(town_id=other, category="event_ticket").id,
            payment_kind="card",
            price=Decimal(9000),
        )
        _order(other_listing, cust, 1, IN)
        _resident(other, cust, IN)
        s.commit()
        return {
            "voter": voter,
            "issued": {  # (route, programme) -> (count, points)
                ("points_granted", 1): (1, 500),
                ("points_granted", 4): (1, 100),
                ("points_issued_staff", 3): (2, 1200),
                ("points_issued_service", 3): (1, 300),
                ("points_bought", 2): (1, 1100),
            },
            "bought_yen": 1000,
            "payments": 2,
            "payment_points": 420,
            "partner_payments": 1,
            "redemptions": 1,
            "redeemed_points": 400,
            "settlements": 1,
            "settled_yen": 250,
            "nft": {"event_ticket": (1, 2, 6000, 0), "ambassador_card": (1, 1, 0, 50)},
            "ticket_uses": 1,
            "event_check_ins": 1,
            "proposals": 1,
            "votes": 1,
            "poll_votes": 1,
            "residents_verified": 1,
            # customer (grant, staff, bought, paid, order, ticket, poll vote), newbie (grant,
            # service, paid, order, check-in), voter (vote)
            "people": len({cust, newbie, voter}),
            "csv_rows": 2 + 3 + 1 + 2 + 1 + 1 + 2,  # grants, issued, bought, paid, redeemed,
            # settled, orders
        }


def _field(html: str, section: str, name: str) -> str:
    part = html.split(f'data-testid="{section}"', 1)[1]
    return part.split(f'data-field="{name}">', 1)[1].split("<", 1)[0]


def _number(text: str) -> int:
    return int(text.replace("¥", "").replace(",", ""))


def test_the_month_s_figures_of_a_small_world(app, town):
    expected = _world(app, town)
    with app.app_context():
        staff = get_db().session.get(User, town.user_id("staff"))
        report = kpi_service().report(
            staff, get_db().session.get(Town, town.town_id), parse_period(MONTH)
        )
    issued = {(line.route, line.programme_id): (line.count, line.points) for line in report.issued}
    assert issued == expected["issued"]
    assert report.issued_points == sum(p for _c, p in expected["issued"].values())
    for name in (
        "bought_yen",
        "payments",
        "payment_points",
        "partner_payments",
        "redemptions",
        "redeemed_points",
        "settlements",
        "settled_yen",
        "ticket_uses",
        "event_check_ins",
        "proposals",
        "votes",
        "poll_votes",
        "residents_verified",
        "people",
    ):
        assert getattr(report, name) == expected[name], name
    nft = {line.category: (line.orders, line.tokens, line.yen, line.points) for line in report.nft}
    assert nft == expected["nft"]

    page = town.api("staff").client.get(f"{KPIS}?month={MONTH}", headers={"Accept-Language": "en"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert _number(_field(html, "kpi-shops", "payment-points")) == expected["payment_points"]
    assert _number(_field(html, "kpi-shops", "settled-yen")) == expected["settled_yen"]
    assert _number(_field(html, "kpi-community", "votes")) == expected["votes"]
    people = html.split('data-kpi="people"', 1)[1].split('class="kpi-value">', 1)[1]
    assert _number(people.split("<", 1)[0]) == expected["people"]
    assert (
        "Thanks" in html and "Relationship population" in html and "What each number counts" in html
    )
    # Aggregates only: no e-mail, name of a person or address on the page.
    for who in EMAILS.values():
        assert who not in html
    assert not re.search(r"0x[0-9a-fA-F]{40}", html)


def test_the_page_in_japanese_defaults_to_this_month_and_is_in_the_console_nav(app, town):
    api = town.api("admin")
    page = api.client.get(KPIS, headers={"Accept-Language": "ja"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    this_month = dt.datetime.now(JST).strftime("%Y-%m")
    assert f'data-testid="kpi-period">{this_month}<' in html
    assert "関係人口" in html and "各数値が数えているもの" in html
    assert 'data-testid="kpi-export"' not in html  # the admin is not data staff
    overview = api.client.get("/towns/sarabetsu/admin").get_data(as_text=True)
    assert f'href="{KPIS}"' in overview
    # Sizes in rem/em, as the phone at 200 % text needs (px only for hairline borders).
    css = app.test_client().get("/static/console.css").get_data(as_text=True)
    kpi_rules = [line.replace("1px solid", "") for line in css.splitlines() if ".kpi" in line]
    assert kpi_rules and not any("px" in line for line in kpi_rules)


@pytest.mark.parametrize("who", ["clerk", "verifier", "customer", "other_admin"])
def test_clerks_venue_staff_and_outsiders_get_403(app, town, who):
    api = town.api(who)
    assert api.client.get(f"{KPIS}?month={MONTH}").status_code == 403
    before = len(audit_rows(app))
    assert api.client.get(f"{KPIS}.csv?month={MONTH}").status_code == 403
    assert len(audit_rows(app)) == before


@pytest.mark.parametrize("who", ["staff", "admin"])
def test_only_data_staff_export(app, town, who):
    api = town.api(who)
    page = api.client.get(KPIS)
    assert page.status_code == 200 and 'data-testid="kpi-export"' not in page.get_data(as_text=True)
    before = len(audit_rows(app))
    assert api.client.get(f"{KPIS}.csv?month={MONTH}").status_code == 403
    assert api.client.get(f"{KPIS}.csv?month=abcd").status_code == 403  # refused before parsing
    assert len(audit_rows(app)) == before
    anonymous = app.test_client().get(f"{KPIS}.csv?month={MONTH}")
    assert anonymous.status_code in (302, 303) and len(audit_rows(app)) == before


def _csv(resp) -> list[dict[str, str]]:
    text = resp.get_data(as_text=True).lstrip("\ufeff")
    return list(csv.DictReader(io.StringIO(text)))


def test_data_staff_export_anonymised_pseudonymous_rows(app, town):
    expected = _world(app, town)
    with app.app_context():
        grant_town_role(get_db().session.get(User, town.user_id("data")), town.other_town_id, DATA)
        get_db().session.commit()
        key = purpose_key(str(app.config["SECRET_KEY"]), KPI_PSEUDONYM)
    data = town.api("data").client
    page = data.get(f"{KPIS}?month={MONTH}").get_data(as_text=True)
    assert 'data-testid="kpi-export"' in page
    resp = data.get(f"{KPIS}.csv?month={MONTH}")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert resp.headers["Cache-Control"] == "no-store"
    assert f"kpi-events-sarabetsu-{MONTH}.csv" in resp.headers["Content-Disposition"]
    raw = resp.get_data(as_text=True)
    rows = _csv(resp)
    assert len(rows) == expected["csv_rows"]
    assert list(rows[0]) == [
        "day_jst",
        "kind",
        "programme_kind",
        "points",
        "yen",
        "shop_id",
        "nft_category",
        "nft_tokens",
        "person",
    ]
    # Nobody named: no e-mail, no name, no 0x address or hash, no time of day.
    assert "@" not in raw and not re.search(r"0x[0-9a-fA-F]{8}", raw)
    assert not re.search(r"\d{1,2}:\d{2}", raw)
    for who in ("customer", "newbie", "Farm Market", "直売所"):
        assert who not in raw
    assert {r["day_jst"] for r in rows} <= {f"2030-05-{d:02d}" for d in range(1, 32)}
    assert {r["day_jst"] for r in rows} >= {"2030-05-01", "2030-05-31"}  # JST edges inside
    # The pseudonym: stable for the customer within the town, another in Lake Toya.
    cust = town.user_id("customer")
    mine = pseudonym(key, town.town_id, cust)
    assert len(mine) == 16 and re.fullmatch(r"[0-9a-f]{16}", mine)
    kinds_of_customer = {r["kind"] for r in rows if r["person"] == mine}
    assert kinds_of_customer == {
        "points_granted",
        "points_issued_staff",
        "points_bought",
        "shop_payment",
        "nft_order",
    }
    assert str(cust) not in {r["person"] for r in rows}
    assert {r["person"] for r in rows if r["kind"] in ("redemption", "settlement")} == {""}
    staff_rows = [r for r in rows if r["kind"] == "points_issued_staff"]
    assert sorted(r["person"] for r in staff_rows) == sorted(["", mine])  # an address: nobody
    other = data.get(f"/towns/toyako/admin/kpis.csv?month={MONTH}")
    assert other.status_code == 200
    theirs = {r["person"] for r in _csv(other) if r["kind"] == "points_granted"}
    assert theirs == {pseudonym(key, town.other_town_id, cust)} and mine not in theirs
    # Figures agree with the page: one row per event, amounts as counted.
    assert sum(int(r["points"]) for r in rows if r["kind"] == "shop_payment") == 420
    assert sum(int(r["yen"] or 0) for r in rows if r["kind"] == "nft_order") == 6000
    # Formula-looking text from the town's programme row is neutralised.
    programme_kinds = {r["programme_kind"] for r in staff_rows}
    assert programme_kinds == {"'=1+1"}
    for r in rows:
        for cell in r.values():
            assert not cell.lstrip(" ").startswith(("=", "+", "-", "@")), cell
    # Each export is audited, with the month and the number of rows.
    exports = audit_rows(app, "kpi.export")
    assert [(e["town_id"], e["details"]["month"], e["details"]["rows"]) for e in exports] == [
        (town.town_id, MONTH, expected["csv_rows"]),
        (town.other_town_id, MONTH, 2 + 1 + 1),
    ]
    assert exports[0]["actor"] == f"user:{town.user_id('data')}"


def test_a_month_too_big_for_one_file_is_refused(app, town, monkeypatch):
    _world(app, town)
    monkeypatch.setattr("backend.insights.export.EXPORT_MAX", 3)
    before = len(audit_rows(app))
    resp = town.api("data").client.get(f"{KPIS}.csv?month={MONTH}")
    assert resp.status_code == 400 and len(audit_rows(app)) == before


@pytest.mark.parametrize(
    "month",
    [
        "2026-13",
        "abcd",
        "0000-01",
        "1999-12",
        "9999-12",
        "2026-1",
        "20260-01",
        "2" * 5000,
        "2026-04-01",
    ],
)
def test_a_bad_month_is_a_400_that_changes_nothing(app, town, month):
    before = len(audit_rows(app))
    staff = town.api("staff").client
    page = staff.get(f"{KPIS}?month={month}", headers={"Accept-Language": "en"})
    assert page.status_code == 400
    assert "A month must look like 2026-04." in page.get_data(as_text=True)
    assert town.api("data").client.get(f"{KPIS}.csv?month={month}").status_code == 400
    assert len(audit_rows(app)) == before
