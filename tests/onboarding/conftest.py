"""Onboarding fixtures: an app whose deployments file is its own copy (a town set up in a test
is recorded there, not in the session's file), the worker and beat as helpers a test can stop
and start again (an interrupted setup), and an operator."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from backend.accounts.services import AccountService
from backend.chain.api import get_vault
from backend.chain.registry import Deployments
from backend.core.db import get_db
from backend.onboarding.services import add_operator
from tests.conftest import BeatTicker

PASSWORD = "correct horse battery"


@pytest.fixture
def app(
    make_app: Callable[..., Flask], deployed: Deployments, deployments_dir: Path, tmp_path: Path
) -> Flask:
    own = tmp_path / "deployments"
    shutil.copytree(deployments_dir, own)
    return make_app(deployments_dir=own)


@contextmanager
def worker_and_beat(app: Flask) -> Iterator[Any]:
    """A real Celery worker with beat's tasks ticking (as `platform`, without the server)."""
    from celery.contrib.testing.worker import start_worker

    celery = app.extensions["celery"]
    with (
        start_worker(
            celery,
            pool="solo",
            perform_ping_check=False,
            loglevel="WARNING",
            queues=[celery.conf.task_default_queue],
            shutdown_timeout=10,
        ) as worker,
        BeatTicker(app, every=0.3),
    ):
        yield worker


def signup(app: Flask, email: str) -> int:
    with app.app_context():
        svc = AccountService(get_db().session(), lambda: get_vault(app))
        return svc.signup(email, PASSWORD, verified=True).id


@pytest.fixture
def operator_id(app: Flask) -> int:
    user_id = signup(app, "operator@example.com")
    with app.app_context():
        add_operator(get_db().session(), "operator@example.com")
    return user_id


@pytest.fixture
def operator_id_for() -> Callable[[Flask], int]:
    """Make an operator in a given app (for tests that build their own app)."""

    def make(app: Flask) -> int:
        user_id = signup(app, "operator@example.com")
        with app.app_context():
            add_operator(get_db().session(), "operator@example.com")
        return user_id

    return make


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On a failed onboarding test, its report carries the outbox's history (rows, attempts,
    state changes) and the transactions its senders have on chain: a set-up step failed once
    in a while in full runs ("nonce used by another transaction"), never when run alone."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    app = item.funcargs.get("app") if hasattr(item, "funcargs") else None  # type: ignore[attr-defined]
    if report.when == "call" and report.failed and isinstance(app, Flask):
        report.sections.append(("outbox and chain", _outbox_and_chain(app)))


def _outbox_and_chain(app: Flask) -> str:
    import sqlalchemy as sa
    from web3 import Web3

    from backend.chain.outbox_models import OutboxAttempt, OutboxTx, OutboxTxEvent

    lines: list[str] = []
    with app.app_context():
        s = get_db().session
        senders = set()
        for t in s.scalars(sa.select(OutboxTx).order_by(OutboxTx.id)):
            senders.add(t.sender_address.lower())
            lines.append(
                f"tx {t.id} {t.sender_kind} {t.function} nonce={t.nonce} state={t.state} "
                f"sent_block={t.sent_block} block={t.block_number} error={t.error}"
            )
            for a in s.scalars(
                sa.select(OutboxAttempt)
                .where(OutboxAttempt.tx_id == t.id)
                .order_by(OutboxAttempt.id)
            ):
                lines.append(
                    f"  attempt {a.kind} nonce={a.nonce} {a.tx_hash} fee={a.max_fee_per_gas}"
                )
            for e in s.scalars(
                sa.select(OutboxTxEvent)
                .where(OutboxTxEvent.tx_id == t.id)
                .order_by(OutboxTxEvent.id)
            ):
                lines.append(f"  {e.at.time()} {e.from_state} -> {e.to_state}: {e.reason}")
        s.commit()
    try:
        w3 = Web3(Web3.HTTPProvider(app.extensions["settings"].rpc_url))
        head = w3.eth.block_number
        for n in range(max(0, head - 400), head + 1):
            block = w3.eth.get_block(n, full_transactions=True)
            for tx in block["transactions"]:
                if str(tx["from"]).lower() in senders:
                    lines.append(
                        f"block {n} t={block['timestamp']}: {tx['from']} nonce {tx['nonce']} "
                        f"{tx['hash'].to_0x_hex()}"
                    )
    except Exception as exc:  # noqa: BLE001 - a report of a failure must not fail itself
        lines.append(f"(the chain could not be read: {exc!r})")
    return "\n".join(lines)
