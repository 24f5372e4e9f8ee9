"""The console's Audit log (issue 13): the town's rows only (audit_log.town_id, filled on insert
from the row's details or subject), filtered by actor, action and JST days, newest first, 50 a
page; staff and data staff read it; only data staff export it as CSV (403 for the others, and
no button), the CSV is formula-safe and the export writes its own audit row."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
import sqlalchemy as sa

from backend.core.db import get_db
from backend.core.models import AuditLog
from tests.console.conftest import audit_rows
from tests.factories import CollectionFactory, ListingFactory

AUDIT = "/towns/sarabetsu/admin/audit"
JST = dt.timezone(dt.timedelta(hours=9))


def _add(app, **row) -> None:
    with app.app_context():
        defaults = {"actor": "system:test", "subject_type": "thing", "subject_id": "1"}
        get_db().session.add(AuditLog(**{**defaults, **row}))
        get_db().session.commit()


def _texts(html: str) -> list[str]:
    return [
        line.split('data-action="', 1)[1].split('"', 1)[0]
        for line in html.splitlines()
        if 'class="audit-row"' in line
    ]


def test_rows_are_scoped_to_the_town_on_insert(app, town):
    _add(app, action="t.details", details={"town_id": town.town_id})
    _add(app, action="t.subject", subject_type="town", subject_id=str(town.town_id))
    _add(app, action="t.merchant", subject_type="merchant", subject_id=str(town.merchant_id))
    _add(app, action="t.merchant_detail", details={"merchant_id": town.merchant_id})
    with app.app_context():
        listing = ListingFactory(collection_id=CollectionFactory(town_id=town.other_town_id).id)
        get_db().session.commit()
        listing_id = listing.id
    _add(app, action="t.listing", subject_type="listing", subject_id=str(listing_id))
    _add(app, action="t.gone", subject_type="dao_poll", subject_id="999999")
    _add(app, action="t.other", details={"town_id": town.other_town_id})
    _add(app, action="t.platform")
    scoped = {a["action"]: a["town_id"] for a in audit_rows(app, "t.")}
    assert scoped == {
        "t.details": town.town_id,
        "t.subject": town.town_id,
        "t.merchant": town.town_id,
        "t.merchant_detail": town.town_id,
        "t.listing": town.other_town_id,
        "t.gone": None,
        "t.other": town.other_town_id,
        "t.platform": None,
    }
    html = town.api("staff").client.get(AUDIT).get_data(as_text=True)
    shown = _texts(html)
    assert "t.details" in shown and "t.merchant" in shown and "merchant.register" in shown
    assert "t.other" not in shown and "t.platform" not in shown and "t.listing" not in shown


def test_filters_by_actor_action_and_days_newest_first(app, town):
    admin_actor = f"user:{town.user_id('admin')}"
    day = dt.datetime(2026, 11, 3, 23, 30, tzinfo=JST)  # 14:30 UTC the same JST day
    for i, (actor, action, at) in enumerate(
        [
            (admin_actor, "town.role.grant", day),
            (admin_actor, "town.role.revoke", day + dt.timedelta(minutes=40)),  # next JST day
            ("system:outbox", "settlement.fail", day - dt.timedelta(days=1)),
        ]
    ):
        _add(app, actor=actor, action=action, at=at, details={"town_id": town.town_id, "i": i})
    staff = town.api("staff").client
    by_actor = _texts(staff.get(f"{AUDIT}?actor=admin@example.com").get_data(as_text=True))
    assert by_actor == ["town.role.revoke", "town.role.grant"]  # newest first
    assert _texts(staff.get(f"{AUDIT}?action=town.role").get_data(as_text=True)) == [
        "town.role.revoke",
        "town.role.grant",
    ]
    assert _texts(staff.get(f"{AUDIT}?action=town.role.grant").get_data(as_text=True)) == [
        "town.role.grant"
    ]
    one_day = staff.get(f"{AUDIT}?from=2026-11-03&to=2026-11-03").get_data(as_text=True)
    assert _texts(one_day) == ["town.role.grant"]
    by_system = staff.get(f"{AUDIT}?actor=system:outbox&to=2026-11-03").get_data(as_text=True)
    assert _texts(by_system) == ["settlement.fail"]
    assert _texts(staff.get(f"{AUDIT}?actor=nobody@example.com").get_data(as_text=True)) == []
    bad = staff.get(f"{AUDIT}?from=yesterday", headers={"Accept-Language": "en"})
    assert bad.status_code == 400 and "Dates must look like" in bad.get_data(as_text=True)
    assert staff.get(f"{AUDIT}?from=2026-11-04&to=2026-11-03").status_code == 400
    assert staff.get(f"{AUDIT}?page=-1").status_code == 400


def test_pages_of_fifty(app, town):
    with app.app_context():
        s = get_db().session
        base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        for i in range(120):
            s.add(
                AuditLog(
                    actor="system:test",
                    action=f"bulk.n{i:03d}",
                    subject_type="thing",
                    subject_id=str(i),
                    at=base + dt.timedelta(minutes=i),
                    town_id=town.town_id,
                )
            )
        s.commit()
    staff = town.api("staff").client
    first = _texts(staff.get(f"{AUDIT}?action=bulk").get_data(as_text=True))
    assert len(first) == 50 and first[0] == "bulk.n119" and first[-1] == "bulk.n070"
    third = staff.get(f"{AUDIT}?action=bulk&page=3", headers={"Accept-Language": "en"})
    html = third.get_data(as_text=True)
    assert _texts(html)[0] == "bulk.n019" and len(_texts(html)) == 20
    assert "Page 3 of 3" in html and "120 rows" in html and 'rel="prev"' in html


@pytest.mark.parametrize("who", ["staff", "admin", "verifier", "customer", "other_admin"])
def test_only_data_staff_export_and_others_see_no_button(app, town, who):
    before = len(audit_rows(app))
    api = town.api(who)
    page = api.client.get(AUDIT)
    if who in ("staff", "admin"):
        assert page.status_code == 200
        assert 'data-testid="audit-export"' not in page.get_data(as_text=True)
    else:
        assert page.status_code == 403
    assert api.client.get(f"{AUDIT}.csv").status_code == 403
    assert len(audit_rows(app)) == before


def test_data_staff_export_a_formula_safe_csv_that_is_itself_audited(app, town):
    _add(
        app,
        action="card.issue",
        actor='=HYPERLINK("http://evil")',
        reason="+cmd|' /C calc'!A0",
        details={"town_id": town.town_id, "note": "=1+1"},
    )
    data = town.api("data").client
    page = data.get(f"{AUDIT}?action=card", headers={"Accept-Language": "ja"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'data-testid="audit-export"' in html
    assert "CSV で書き出す" in html and "監査ログ" in html
    resp = data.get(f"{AUDIT}.csv?action=card")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert resp.headers["Cache-Control"] == "no-store"
    text = resp.get_data(as_text=True).lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:5] == ["id", "at_jst", "actor", "actor_email", "action"]
    assert len(rows) == 2
    body = rows[1]
    assert body[2].startswith("'=") and body[7].startswith("'+")
    for cell in body:
        assert not cell.lstrip(" ").startswith(("=", "+", "-", "@")), cell
    export = audit_rows(app, "audit.export")
    assert len(export) == 1
    assert export[0]["actor"] == f"user:{town.user_id('data')}"
    assert export[0]["town_id"] == town.town_id
    assert export[0]["details"]["rows"] == 1 and export[0]["details"]["action"] == "card"


def test_audit_page_in_english(app, town):
    html = town.api("admin").client.get(AUDIT, headers={"Accept-Language": "en"})
    text = html.get_data(as_text=True)
    for label in ("Audit log", "Filter", "From (JST)", "To (JST)"):
        assert label in text, label
    with app.app_context():
        assert get_db().session.scalar(sa.select(sa.func.count()).select_from(AuditLog)) > 0


@pytest.mark.parametrize(
    "query", ["from=0001-01-01", "to=9999-12-31", "from=0001-01-01&to=0001-01-02"]
)
def test_days_out_of_range_are_a_400_not_a_500(app, town, query):
    """The first day (before UTC's first moment in JST) and the last (no next day) overflowed
    where the filter turns JST days into moments: a 500 for the page and the export."""
    staff = town.api("staff").client
    page = staff.get(f"{AUDIT}?{query}", headers={"Accept-Language": "en"})
    assert page.status_code == 400 and "2026-04-30" in page.get_data(as_text=True)
    before = len(audit_rows(app))
    assert town.api("data").client.get(f"{AUDIT}.csv?{query}").status_code == 400
    assert len(audit_rows(app)) == before  # no export row for a refused export
