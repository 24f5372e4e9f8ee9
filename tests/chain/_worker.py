"""The Celery app of worker subprocesses that must decode test-only contracts (tests/abi, as
tests/conftest.py registers them in the test process): `celery -A tests.chain._worker worker`."""

from __future__ import annotations

from pathlib import Path

from backend.chain.registry import add_artifact_dir

add_artifact_dir(Path(__file__).resolve().parents[1] / "abi")

from backend.worker import celery, flask_app  # noqa: E402

__all__ = ["celery", "flask_app"]
