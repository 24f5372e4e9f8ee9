"""pytest 9 attaches its log capture to every non-propagating logger at the start of each test
phase, iterating `logging.Logger.manager.loggerDict` without logging's lock. A thread the test's
fixtures started (the live server, the Celery worker, beat) that creates a logger meanwhile
makes that iteration raise "RuntimeError: dictionary changed size during iteration", which
fails the test from inside pytest (a full run, 2026-12-06: the event check-in journey, whose
only traceback frame was contextlib's __enter__). `logging.getLogger` adds loggers under
logging's module lock, so holding the same lock while pytest attaches closes the race
(tests/unit/test_pytest_logging_lock.py)."""

from __future__ import annotations

import logging
from typing import Any

from _pytest.logging import catching_logs


def hold_logging_lock_while_attaching() -> None:
    """Called once, by tests/conftest.py."""
    enter = catching_logs.__enter__

    def locked_enter(self: Any) -> Any:
        with logging._lock:  # type: ignore[attr-defined]  # an RLock: addHandler takes it too
            return enter(self)

    catching_logs.__enter__ = locked_enter  # type: ignore[method-assign]
