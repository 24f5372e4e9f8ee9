"""The transaction outbox (being split into modules; see sending.py for now)."""

from backend.chain.outbox.sending import *  # noqa: F403
