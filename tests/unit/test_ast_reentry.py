"""The test processes run without column tables (PYTHONNODEBUGRANGES=1, scripts/test.sh and
`make test-fast`), because CPython 3.11 breaks `ast.parse` when a traceback is formatted while it
runs.

CPython 3.11 keeps one AST recursion counter per interpreter (python/cpython#106905, fixed in
3.12). With column tables, `traceback.format_exception` calls `ast.parse` to place its ^^^ marks.
pytest formats the traceback of every exception raised in a finalizer (its unraisable-exception
hook; `filterwarnings = error` turns each leaked socket's ResourceWarning into one), and a
finalizer can run in the middle of any allocation, including hypothesis's `ast.parse` of a
strategy's source: that parse then failed with "SystemError: AST constructor recursion depth
mismatch" (the API fuzz test, twice in full runs). Without column tables no traceback calls
`ast.parse`.
"""

from __future__ import annotations

import ast
import gc
import traceback
from collections.abc import Iterator

import pytest


def _an_exception() -> BaseException:
    try:
        {}["missing"] + 1  # type: ignore[operator]
    except KeyError as exc:
        return exc
    raise AssertionError("unreachable")


@pytest.fixture
def tracebacks_formatted_in_every_collection() -> Iterator[list[int]]:
    """What pytest's hook does in a finalizer, forced: every garbage collection formats a
    traceback, and collections run every 50 allocations. Yields the count of collections."""
    exc = _an_exception()
    seen: list[int] = []

    def format_one(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            seen.append(1)
            traceback.format_exception(exc)

    threshold = gc.get_threshold()
    gc.callbacks.append(format_one)
    gc.set_threshold(50)
    try:
        yield seen
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(format_one)


def test_ast_parse_survives_tracebacks_formatted_while_it_runs(
    tracebacks_formatted_in_every_collection: list[int],
) -> None:
    source = "\n".join(
        f"def f{i}(a, b=[1, 2]):\n    return [x * {i} for x in a if (x and b) or not x]"
        for i in range(300)
    )
    for _ in range(3):
        tree = ast.parse(source)  # SystemError here when tracebacks call ast.parse
        assert len(tree.body) == 300
    # The collections did run, and formatted their traceback, during the parses.
    assert len(tracebacks_formatted_in_every_collection) > 10


def test_this_process_has_no_column_tables() -> None:
    """The cause named: the flag that keeps tracebacks away from ast.parse is set (a test run
    started without scripts/test.sh or the Makefile lacks it)."""
    code = _an_exception.__code__
    assert all(col is None for _line, _end, col, _end_col in code.co_positions()), (
        "run the tests with PYTHONNODEBUGRANGES=1 (scripts/test.sh sets it)"
    )
