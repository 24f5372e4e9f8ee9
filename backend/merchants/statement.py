"""A shop's CSV statement: its confirmed sales and its redemptions over a period of JST days.

Cells typed by people (the bank reference) go through core.csv_safe, never as a formula.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable
from typing import TYPE_CHECKING

from backend.accounts.models import User
from backend.core.csv_safe import csv_cell
from backend.core.errors import N_, InvalidInput
from backend.core.times import as_utc

if TYPE_CHECKING:
    from backend.merchants.services import MerchantService

JST = dt.timezone(dt.timedelta(hours=9))
# The days a statement may cover: 00:00 JST of the first and of the day after the last must be
# moments Python and the database can hold (0001-01-01 and 9999-12-31 are not).
FIRST_DAY, LAST_DAY = dt.date(2000, 1, 1), dt.date(2999, 12, 31)

# The header row and the total's label in the reader's language (the page passes gettext); the
# cells below them (types, statuses, slugs) stay codes an accounting import can match on.
HEADERS = (
    N_("Date (Japan time)"),
    N_("Type"),
    N_("Amount (points)"),
    N_("Reference"),
    N_("Status"),
    N_("Transaction ID"),
    N_("Points of town"),
)
TOTAL_SALES = N_("Total sales (points)")


def _same(text: str) -> str:
    return text


def period(frm: object, to: object) -> tuple[dt.date, dt.date]:
    """The days from `frm` to `to` (YYYY-MM-DD; this month's first day and today by default),
    both within FIRST_DAY..LAST_DAY; InvalidInput otherwise."""
    today = dt.datetime.now(JST).date()
    try:
        start = dt.date.fromisoformat(frm) if isinstance(frm, str) and frm else today.replace(day=1)
        end = dt.date.fromisoformat(to) if isinstance(to, str) and to else today
    except ValueError:
        raise InvalidInput(N_("Dates must look like 2026-04-30."), field="from") from None
    if not FIRST_DAY <= start <= LAST_DAY or not FIRST_DAY <= end <= LAST_DAY:
        raise InvalidInput(
            N_("Dates must be from %(first)s to %(last)s."),
            field="from" if not FIRST_DAY <= start <= LAST_DAY else "to",
            first=FIRST_DAY.isoformat(),
            last=LAST_DAY.isoformat(),
        )
    if end < start or (end - start).days > 366:
        raise InvalidInput(N_("The period must run forward and be at most a year."), field="to")
    return start, end


def statement_csv(
    svc: MerchantService,
    user: User | None,
    merchant_id: object,
    frm: object,
    to: object,
    translate: Callable[[str], str] = _same,
) -> tuple[str, str]:
    """(file name, CSV text) of the merchant's sales and settlements from `frm` to `to`
    (YYYY-MM-DD, JST days, both included), the headers put through `translate`. Merchant
    staff only."""
    merchant = svc.require_staff(user, merchant_id)
    start, end = period(frm, to)
    lo = dt.datetime.combine(start, dt.time(), JST)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), JST)
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow([csv_cell(translate(h)) for h in HEADERS])  # translations are text too
    town = svc.town_of(merchant)
    total_sales = 0
    for entry, charge in reversed(svc.sales(user, merchant.id, lo, hi)):
        total_sales += int(entry.amount)
        w.writerow(
            [
                entry.recorded_at.astimezone(JST).strftime("%Y-%m-%d %H:%M"),
                "sale",
                int(entry.amount),
                charge.code if charge else "",
                "confirmed",
                entry.tx_hash,
                town.slug,
            ]
        )
    # Paid with a partner town's points: burned in that town, cleared between the towns.
    partner = svc.partner_sales(merchant, lo, hi)
    towns = svc.points_towns(partner)
    for charge in partner:
        total_sales += int(charge.amount)
        w.writerow(
            [
                as_utc(charge.paid_at or charge.created_at)
                .astimezone(JST)
                .strftime("%Y-%m-%d %H:%M"),
                "partner_sale",
                int(charge.amount),
                charge.code,
                "confirmed",
                charge.tx_hash or "",
                towns[charge.points_town_id].slug if charge.points_town_id in towns else "",
            ]
        )
    for s in reversed(svc.settlements_of(merchant)):
        if not lo <= as_utc(s.created_at) < hi:
            continue
        w.writerow(
            [
                as_utc(s.created_at).astimezone(JST).strftime("%Y-%m-%d %H:%M"),
                "partner_settlement" if s.idempotency_key.startswith("partner:") else "redemption",
                -int(s.amount),
                csv_cell(s.bank_reference or ""),  # typed by staff: never a formula
                s.status,
                s.tx_hash or "",
                town.slug,
            ]
        )
    w.writerow([])
    w.writerow([csv_cell(translate(TOTAL_SALES)), "", total_sales, "", "", "", ""])
    name = f"statement-{merchant.id}-{start.isoformat()}-{end.isoformat()}.csv"
    return name, out.getvalue()
