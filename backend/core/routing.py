"""URL rules whose url_for builders are compiled when first used, not when the app is built.

When a rule is added, werkzeug compiles two Python functions for it (``url_for`` with and without
unknown arguments), through ``ast`` and ``compile``. With about 260 rules that was 94 % of
``create_app``: 75 ms of CPU per app (measured 2026-12-05). A process builds URLs for a few
dozen endpoints and most builders are never called, so here each is compiled on its first call,
by werkzeug's own code, and kept. Matching (the rule's regex) is compiled as before.

Every process that builds the app (gunicorn workers, Celery, the CLI commands) starts 67 ms
sooner; the tests, an app per test, had shared compiled builders through a patch in their
conftest, which this replaces. `tests/unit/test_routing.py` checks that every rule of the app
builds the same URLs as werkzeug's own rule, so a werkzeug upgrade that changes the private
method fails there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from werkzeug.routing import Rule

_Builder = Callable[..., tuple[str, str]]


class LazyBuilderRule(Rule):
    """A werkzeug Rule that compiles its URL builders on first use (see the module docstring)."""

    def _compile_builder(self, append_unknown: bool = True) -> _Builder:
        compiled: _Builder | None = None

        def build(rule: Rule, /, **values: Any) -> tuple[str, str]:
            # Two threads may both compile on a first call: the same function, one is kept.
            nonlocal compiled
            if compiled is None:
                compiled = Rule._compile_builder(rule, append_unknown).__get__(rule, None)
            return compiled(**values)

        return build
