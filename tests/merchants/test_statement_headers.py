"""Issue 15 §7 "the CSV headers are English only": the shop's CSV statement (its sales and
redemptions) has its header row and total label in the reader's language, Japanese or English,
with the rows' codes unchanged and every cell still safe for a spreadsheet (core.csv_safe)."""

from __future__ import annotations

import csv
import io

import pytest

from backend.core.csv_safe import FORMULA_START


@pytest.mark.parametrize(
    ("lang", "header", "total"),
    [
        (
            "ja",
            [
                "日時（日本時間）",
                "種別",
                "金額（ポイント）",
                "参照番号",
                "状態",
                "取引ID",
                "ポイントの町",
            ],
            "売上合計（ポイント）",
        ),
        (
            "en",
            [
                "Date (Japan time)",
                "Type",
                "Amount (points)",
                "Reference",
                "Status",
                "Transaction ID",
                "Points of town",
            ],
            "Total sales (points)",
        ),
    ],
)
def test_the_statement_speaks_the_readers_language(app, world, lang, header, total):
    clerk = world.api(world.clerk)
    resp = clerk.client.get(
        f"/merchants/{world.merchant_id}/statement.csv", headers={"Accept-Language": lang}
    )
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(resp.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0] == header
    assert rows[-1] == [total, "", "0", "", "", "", ""]
    for cell in rows[0] + [rows[-1][0]]:
        assert not cell.startswith(FORMULA_START)


def test_someone_else_gets_no_statement(app, world):
    resp = world.api(world.customer).client.get(f"/merchants/{world.merchant_id}/statement.csv")
    assert resp.status_code in (403, 404)


@pytest.mark.parametrize(
    ("frm", "to"),
    [
        ("9999-12-31", "9999-12-31"),  # the day after the last one has no date
        ("0001-01-01", "0001-01-02"),  # 00:00 in Japan is before the first moment in UTC
    ],
)
def test_a_period_at_the_ends_of_the_calendar_is_a_400_not_a_500(app, world, frm, to):
    resp = world.api(world.clerk).get(
        f"/merchants/{world.merchant_id}/statement.csv?from={frm}&to={to}"
    )
    assert resp.status_code == 400, resp.get_data(as_text=True)[:300]
    assert "2000-01-01" in resp.get_data(as_text=True)
