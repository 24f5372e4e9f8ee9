"""The console's points sale (/towns/<slug>/admin/premium): town staff set the offer in Japanese
or English; only a paid programme within 180 days may carry bought points, a premium that would
give fractions of a point is refused, and every refusal is a 4xx that saves nothing; people who
are not the town's staff get 403. Saved changes are audited."""

from __future__ import annotations

import sqlalchemy as sa

from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.points.models import TownProgramme
from backend.premium.models import PremiumOffer
from tests.premium.conftest import OFFER, Person, add_user

PAGE = "/towns/sarabetsu/admin/premium"


def _offer(app):
    with app.app_context():
        s = get_db().session
        o = s.scalar(sa.select(PremiumOffer))
        if o is not None:
            s.expunge(o)
        return o


def _audits(app) -> int:
    with app.app_context():
        return get_db().session.scalar(
            sa.select(sa.func.count())
            .select_from(AuditLog)
            .where(AuditLog.action == "premium.offer_update")
        )


def test_staff_set_the_offer_and_it_is_audited(app, town_id, staff_id):
    staff = Person(app, "staff@example.com", lang="ja")
    html = staff.get(PAGE).get_data(as_text=True)
    assert "ポイント販売" in html and "販売停止中" in html and "プレミアムポイント" in html
    resp = staff.post(PAGE, OFFER)
    assert resp.status_code == 302 and "notice=saved" in resp.headers["Location"]
    o = _offer(app)
    assert (o.active, o.premium_percent, o.unit_yen, o.person_month_yen, o.programme_id) == (
        True,
        20,
        1000,
        30000,
        2,
    )
    assert _audits(app) == 1
    en = Person(app, "staff@example.com", lang="en")
    page = en.get(PAGE).get_data(as_text=True)
    assert "On sale" in page and "0 yen in 0 purchases" in page
    # The buy page of the town now sells points; the points page links to it.
    add_user(app, "buyer@example.com")
    buyer = Person(app, "buyer@example.com", lang="ja")
    assert "1,000 円 → 1,200 ポイント" in buyer.get("/towns/sarabetsu/points/buy").get_data(
        as_text=True
    )
    assert "プレミアム付ポイントを買う" in buyer.get("/points").get_data(as_text=True)


def test_bad_offers_are_refused_and_save_nothing(app, town_id, staff_id):
    staff = Person(app, "staff@example.com")
    staff.post(PAGE, OFFER)
    before = (_offer(app).premium_percent, _audits(app))
    cases = [
        ({"programme_id": "3"}, "Choose a programme for points bought for money"),  # free kind
        ({"programme_id": "99"}, "Choose a programme"),
        ({"programme_id": "x"}, "Choose a programme"),
        ({"premium_percent": "101"}, "from 0 to 100"),
        ({"premium_percent": "-5"}, "from 0 to 100"),
        ({"unit_yen": "10", "premium_percent": "15"}, "fraction of a point"),
        ({"max_yen_per_purchase": "1500"}, "whole number of units"),
        ({"max_yen_per_purchase": "500"}, "from 1000 to"),
        ({"person_month_yen": "0"}, "from 1000 to"),
        ({"person_month_yen": "9" * 30}, "from 1000 to"),
        ({"town_month_yen": "abc"}, "from 1000 to"),
    ]
    for change, text in cases:
        resp = staff.post(PAGE, {**OFFER, **change})
        assert resp.status_code == 400, change
        assert text in resp.get_data(as_text=True), change
        assert (_offer(app).premium_percent, _audits(app)) == before, change


def test_a_paid_programme_longer_than_six_months_is_never_offered(app, town_id, staff_id):
    staff = Person(app, "staff@example.com")
    staff.get(PAGE)  # seeds the town's programmes
    with app.app_context():
        s = get_db().session
        # A row edited behind the console's back to 365 days: not a programme for bought points.
        s.execute(
            sa.update(TownProgramme).where(TownProgramme.programme_id == 2).values(expiry_days=365)
        )
        s.commit()
    resp = staff.post(PAGE, OFFER)
    assert resp.status_code == 400 and _offer(app) is None
    assert 'value="2"' not in staff.get(PAGE).get_data(as_text=True)


def test_people_who_are_not_staff_get_403(app, town_id, staff_id):
    add_user(app, "buyer@example.com")
    buyer = Person(app, "buyer@example.com")
    assert buyer.get(PAGE).status_code == 403
    keys = buyer.keys("/towns/sarabetsu/points/buy")
    assert buyer.post(PAGE, OFFER, keys).status_code == 403
    assert _offer(app) is None and _audits(app) == 0
    assert app.test_client().get(PAGE).status_code == 302  # to log in
