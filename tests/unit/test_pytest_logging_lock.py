"""pytest's log capture attaches itself while other threads create loggers, as the live
server, the Celery worker and beat do during journeys (tests/pytest_logging_lock.py)."""

from __future__ import annotations

import logging
import sys
import threading

from _pytest.logging import LogCaptureHandler, catching_logs


def test_attaching_the_log_capture_survives_a_thread_creating_loggers() -> None:
    # Many loggers make pytest's walk over them long, and a tiny switch interval lets the
    # other thread run in the middle of it: unpatched, every one of the 300 attaches raised.
    for i in range(20_000):
        logging.getLogger(f"logging_lock_test.before.{i}")
    stop = threading.Event()
    created = 0

    def create_loggers() -> None:
        nonlocal created
        while not stop.is_set():
            logging.getLogger(f"logging_lock_test.during.{created}")
            created += 1

    errors: list[RuntimeError] = []
    interval = sys.getswitchinterval()
    thread = threading.Thread(target=create_loggers)
    sys.setswitchinterval(1e-6)
    thread.start()
    try:
        for _ in range(300):
            capture = catching_logs(LogCaptureHandler(), level=logging.INFO)
            try:
                capture.__enter__()
            except RuntimeError as exc:
                errors.append(exc)
            else:
                capture.__exit__(None, None, None)
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)
        for name in list(logging.Logger.manager.loggerDict):
            if name.startswith("logging_lock_test."):
                del logging.Logger.manager.loggerDict[name]
    assert created > 0, "the other thread never ran"
    assert errors == []
