"""The indexer's Celery tasks close their connections to the node when a run ends.

Each run of `chain.index_blocks` (every 5 s) and `chain.reconcile_projection` makes its own
JSON-RPC client with up to two kept-alive connections. They were left to the garbage collector:
every run's sockets were closed only by their finalizers, each with a ResourceWarning ("unclosed
<socket ...>"), which under the tests' `filterwarnings = error` became an exception in a finalizer
(see tests/unit/test_ast_reentry.py for what that once broke)."""

from __future__ import annotations

from typing import Any

from backend.chain import indexer_tasks
from backend.chain.rpc import JsonRpc


def test_index_and_reconcile_runs_close_their_clients(app, deployed, monkeypatch):
    made: list[JsonRpc] = []
    closed: list[JsonRpc] = []

    class Recorded(JsonRpc):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

        def close(self) -> None:
            closed.append(self)
            super().close()

    monkeypatch.setattr(indexer_tasks, "JsonRpc", Recorded)
    with app.app_context():
        for _ in range(3):
            assert indexer_tasks.index_blocks(max_seconds=20)["caught_up"]
        assert indexer_tasks.reconcile_projection()["differences"] == []
    assert len(made) == 4
    assert closed == made
    # Closed means no socket left open: none is waiting for the garbage collector.
    assert all(c._conn is None and c._logs_conn is None for c in made)
