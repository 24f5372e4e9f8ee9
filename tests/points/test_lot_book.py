"""LotBook fed with one holder's transactions only (what the points page does): another holder
of those transactions is seen partially and must neither break the page nor change our lots."""

from __future__ import annotations

import pytest

from backend.points.lots import ZERO, LotBook, LotBookMismatch, day_start

ME, X, SHOP = "0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 20


def _events(include_x_burn: bool) -> list[tuple[str, dict, int]]:
    ev = [
        # tx 1: a batch to me and X, expiring on day 10
        ("Transfer", {"from": ZERO, "to": ME, "value": 5}, 1),
        ("Transfer", {"from": ZERO, "to": X, "value": 7}, 1),
        ("PointsBatchIssued", {"expiresAt": day_start(10)}, 1),
        # tx 2: X issued 3 points of day 20
        ("Transfer", {"from": ZERO, "to": X, "value": 3}, 2),
        ("PointsIssued", {"to": X, "amount": 3, "expiresAt": day_start(20)}, 2),
    ]
    if include_x_burn:  # tx 3 (not mine): X pays a shop on day 11, burning its expired lot
        ev += [
            ("Transfer", {"from": X, "to": ZERO, "value": 7}, 3),
            ("PointsExpired", {"holder": X, "amount": 7, "day": 11}, 3),
            ("Transfer", {"from": X, "to": SHOP, "value": 1}, 3),
        ]
    # tx 4 (mine): on day 12 X gives me 1 point of its day-20 lot; my day-10 lot expires first
    ev += [
        ("Transfer", {"from": ME, "to": ZERO, "value": 5}, 4),
        ("PointsExpired", {"holder": ME, "amount": 5, "day": 12}, 4),
        ("Transfer", {"from": X, "to": ME, "value": 1}, 4),
        ("PointsLotMoved", {"from": X, "to": ME, "day": 20, "amount": 1}, 4),
    ]
    return ev


def test_a_partial_book_keeps_the_holders_lots_right():
    full = LotBook(strict=True).feed(_events(True))
    mine_only = LotBook().feed(_events(False))  # tx 3 does not involve me
    assert full.lots_of(ME) == mine_only.lots_of(ME) == [(20, 1)]
    assert full.spendable(ME, 12) == mine_only.spendable(ME, 12) == 1
    assert full.expired(ME, 20) == 1


def test_strict_book_reports_missing_events():
    events = _events(False) + [("PointsExpired", {"holder": X, "amount": 0, "day": 12}, 5)]
    with pytest.raises(LotBookMismatch):
        LotBook(strict=True).feed(events)
    # not strict: X (seen partially) is tidied, no error; its view is not used for anything
    assert LotBook().feed(events).lots_of(X) == [(20, 3)]
