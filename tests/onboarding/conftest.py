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
