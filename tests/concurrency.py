"""The "N at once" harness of the race tests: run calls in threads released together, and
answer what each call returned or raised, in call order.

Every money or vote path is tested with ten requests at once (docs: "10 at once -> one
effect"); the tests differ in what they call and assert, not in how they start the threads.
Each thread that touches the database runs in its own app context (`in_app`), so it has its own
scoped session (backend/core/db.py) and its own connection, as a request in its own worker
would.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from flask import Flask

from backend.core.db import get_db

T = TypeVar("T")

TIMEOUT = 120  # seconds a call may take before the test fails (a deadlock, not a slow machine)


def at_once(
    calls: Sequence[Callable[[], T]], *, workers: int | None = None, timeout: float = TIMEOUT
) -> list[T | Exception]:
    """Run every call in a thread; all are released together. Each call's answer is what it
    returned or the Exception it raised (for the test's assertions to report), in call order.

    With `workers` (fewer than the calls) a pool of that many threads takes them as they free
    up, all released by one event: more requests than connections, as under real load."""
    n = len(calls)
    pool_size = workers or n
    gate = threading.Barrier(n) if pool_size == n else None
    start = threading.Event()

    def run(call: Callable[[], T]) -> T | Exception:
        try:
            if gate is not None:
                gate.wait(timeout)
            else:
                start.wait(timeout)
            return call()
        except Exception as exc:  # noqa: BLE001 - the caller's assertions report it
            return exc

    with ThreadPoolExecutor(max_workers=pool_size) as pool:
        futures = [pool.submit(run, c) for c in calls]
        start.set()
        return [f.result(timeout) for f in futures]


def in_app(app: Flask, fn: Callable[[], T], *, request: bool = False) -> Callable[[], T]:
    """`fn` run in an app context of its own (a test request context with `request`, for
    code that reads the request, e.g. the rate limiter or the locale), its scoped session
    removed afterwards."""

    def call() -> T:
        ctx: Any = app.test_request_context() if request else app.app_context()
        with ctx:
            try:
                return fn()
            finally:
                get_db().session.remove()

    return call


def n_at_once(
    app: Flask, n: int, fn: Callable[[int], T], *, request: bool = False
) -> list[T | Exception]:
    """`fn(i)` for i in 0..n-1, each in its own app context, all at once (see `at_once`)."""
    return at_once([in_app(app, lambda i=i: fn(i), request=request) for i in range(n)])


def twin_first(
    monkeypatch: Any, owner: Any, name: str, app: Flask, twin: Callable[[], T]
) -> list[T]:
    """Make one exact interleaving of two requests with one idempotency key: the first call of
    `owner.name` (a step the request takes after looking its key up and finding nothing) runs
    `twin` to its commit first, in an app context of its own, then goes on. Returns a list that
    holds the twin's answer once it has run (the request under test comes after it).

    Races seen once in a thousand runs become one deterministic test each (the double submit
    whose twin commits between the look-up and the write)."""
    real = getattr(owner, name)
    answers: list[T] = []
    started = False

    def step(*args: Any, **kw: Any) -> Any:
        nonlocal started
        if not started:  # the twin's own call of this step goes straight through
            started = True
            answers.append(in_app(app, twin, request=True)())
        return real(*args, **kw)

    monkeypatch.setattr(owner, name, step)
    return answers
