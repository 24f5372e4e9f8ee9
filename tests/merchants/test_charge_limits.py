"""Rate limits on charging a customer code (issue 11 §4): a shop that guesses codes, or tries
one code again and again, gets 429 after ten failures on that code; another code still works."""

from __future__ import annotations

import itertools

from tests.merchants.conftest import assert_error

_keys = itertools.count()


def _charge(clerk, merchant_id: int, code: str):
    return clerk.post(
        f"/api/merchants/{merchant_id}/charge-customer",
        {"amount": 100, "customer_code": code, "idempotency_key": f"guess-{next(_keys):04d}"},
    )


def test_guessing_one_customer_code_is_stopped_after_ten_failures(app, world):
    clerk = world.api(world.clerk)
    statuses = [_charge(clerk, world.merchant_id, "GUESS-0001").status_code for _ in range(12)]
    assert all(400 <= s < 500 and s != 429 for s in statuses[:10]), statuses
    assert statuses[10:] == [429, 429]
    assert_error(_charge(clerk, world.merchant_id, "GUESS-0001"), 429, "too_many_requests")
    # The limit is per code: another code is still checked (and refused on its own merits).
    other = _charge(clerk, world.merchant_id, "GUESS-0002")
    assert 400 <= other.status_code < 500 and other.status_code != 429
