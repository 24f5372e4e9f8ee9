"""The Celery app of the webhook tests' worker subprocesses: `celery -A tests.webhooks._worker
worker`. Tasks the worker sends itself (a delivery run that goes on, an outbox dispatch) stay
on the test's queue; test-only contracts decode as in the test process."""

from __future__ import annotations

import os
from pathlib import Path

from backend.chain.registry import add_artifact_dir

add_artifact_dir(Path(__file__).resolve().parents[1] / "abi")

from backend.worker import celery, flask_app  # noqa: E402

celery.conf.task_default_queue = os.environ["TEST_QUEUE"]

__all__ = ["celery", "flask_app"]
