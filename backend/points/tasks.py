"""Points has no periodic task of its own; importing the handlers registers them with the
indexer in the web process and in the worker."""

from __future__ import annotations

from backend.points import handlers as _handlers  # noqa: F401

BEAT_SCHEDULE: dict[str, dict[str, object]] = {}
