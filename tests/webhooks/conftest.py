"""Fixtures of the webhook tests: a real receiver on loopback and the app's settings for them
(short retries and leases, so a test waits for state for a second, not for minutes)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.webhooks.receiver import Receiver

FAST_RETRIES = {
    "webhook_retry_base": 0.3,
    "webhook_retry_cap": 0.3,
    "webhook_lease_seconds": 5.0,
    "webhook_timeout": 2.0,
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()
