"""Japan time everywhere, labelled (issue 15 §7 "Times"): a grant recorded at 04:47:59 UTC reads
13:47 Japan time on the holder's points page, in the staff's audit log and in its CSV, in Japanese
and in English; the seconds are dropped (never rounded up to 13:48); a day near midnight UTC is
the JST day."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import sqlalchemy as sa

from backend.accounts.models import User
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.core.times import jst_text
from backend.points.models import PointsEntry
from backend.regions.models import Town as TownRow
from tests.console.conftest import EMAILS

AT = dt.datetime(2026, 12, 4, 4, 47, 59, tzinfo=dt.UTC)  # 13:47:59 JST
AUDIT = "/towns/sarabetsu/admin/audit"


def _grant(app, town) -> None:
    with app.app_context():
        s = get_db().session
        sarabetsu = s.get(TownRow, town.town_id)
        holder = s.scalar(sa.select(User).where(User.email == EMAILS["customer"]))
        s.add(
            PointsEntry(
                chain_id=sarabetsu.chain_id,
                contract_address=sarabetsu.points_address,
                holder=holder.addresses[0].address,
                kind="issued",
                amount=Decimal(500),
                reason="welcome",
                block_number=1,
                tx_hash="0x" + "ab" * 32,
                log_index=0,
                recorded_at=AT,
            )
        )
        s.add(
            AuditLog(
                actor="system:test",
                action="points.grant",
                subject_type="town",
                subject_id=str(town.town_id),
                details={"town_id": town.town_id},
                at=AT,
            )
        )
        s.commit()


def test_jst_text_drops_seconds_and_reads_naive_as_utc():
    assert jst_text(AT) == "2026-12-04 13:47"
    assert jst_text(AT.replace(tzinfo=None)) == "2026-12-04 13:47"
    assert jst_text(AT, seconds=True) == "2026-12-04 13:47:59"
    # 15:30 UTC on the 3rd is already the 4th in Japan
    assert jst_text(dt.datetime(2026, 12, 3, 15, 30, tzinfo=dt.UTC)) == "2026-12-04 00:30"


def test_a_grant_reads_the_same_japan_minute_on_every_page_and_in_the_csv(app, town):
    _grant(app, town)
    customer = town.api("customer").client
    ja = customer.get("/points", headers={"Accept-Language": "ja"}).get_data(as_text=True)
    assert "2026年12月4日 13:47（日本時間）" in ja
    assert "04:47" not in ja
    en = customer.get("/points", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "2026-12-04 13:47 JST" in en

    data = town.api("data").client
    page = data.get(f"{AUDIT}?action=points.grant", headers={"Accept-Language": "ja"})
    html = page.get_data(as_text=True)
    assert "2026年12月4日 13:47:59（日本時間）" in html and "04:47" not in html
    assert 'datetime="2026-12-04T13:47:59+09:00"' in html
    resp = data.get(f"{AUDIT}.csv?action=points.grant")
    rows = list(csv.reader(io.StringIO(resp.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][1] == "at_jst"  # the header names the zone
    assert rows[1][1] == "2026-12-04 13:47:59"


def test_member_since_is_the_japan_day(app, town):
    with app.app_context():
        s = get_db().session
        user = s.scalar(sa.select(User).where(User.email == EMAILS["customer"]))
        user.created_at = dt.datetime(2026, 12, 3, 15, 30, tzinfo=dt.UTC)
        s.commit()
    me = town.api("customer").client.get("/me", headers={"Accept-Language": "ja"})
    assert "2026年12月4日" in me.get_data(as_text=True)
