"""DAO tasks: none yet; importing the handlers here registers them in the web app and worker."""

from __future__ import annotations

from backend.dao import handlers  # noqa: F401  (registers the governors' event handlers)
