"""Rendered pages kept per process until the data changes (issue 16 §1: the busiest pages at
half a static file's rate).

Pages read the projection (never the node); rendering them is what costs. `PageCache.page`
keeps a page's rendered body per (page, full path, language, user) and serves it again while
the database's *data generation* is the one it was rendered at, and for at most `ttl` seconds.

- The generation (`data_generations`, one row) goes up with every commit of a session that
  wrote something: web requests, Celery tasks, the indexer (a class-level SQLAlchemy hook on
  every Session, so no writer has to remember it). On PostgreSQL it is bumped after the
  commit, in its own short transaction once the session has given its connection back (writers
  do not queue on its row, a commit never holds two connections); on SQLite inside the
  committing transaction (its writers take turns anyway). It is read before a page reads its
  data: a page rendered from data older than its generation cannot be stored under a newer
  one. A PostgreSQL writer that dies between its commit and the bump leaves cached pages up to
  `ttl` seconds old.
- What differs on every response is left out of the cached body as holes and filled in per
  request: the CSP nonce (`csp_nonce()`), the CSRF token (`csrf_token()`) and the page's
  request key (`holes.key`, one per render as before). While a page renders for the cache,
  the two Jinja globals return the holes (`init_app` wraps them), so macros imported without
  context are covered too.
- Only GET requests without flashed messages are cached; anything else renders as usual.

JSON answers (`PageCache.json`) use the same keys and generation, without holes.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app, g, request, session
from sqlalchemy import Engine, event, inspect, select, text
from sqlalchemy.orm import Session

from backend.core.models import DataGeneration

log = logging.getLogger(__name__)

_BUMP = text(
    "INSERT INTO data_generations (id, n) VALUES (1, 1) "
    "ON CONFLICT (id) DO UPDATE SET n = data_generations.n + 1"
)
_WROTE = "page_cache_wrote"
_DUE = "page_cache_bump_due"


_GENERATION = select(DataGeneration.n).where(DataGeneration.id == 1)


def current_generation(s: Session) -> int:
    # On the session's connection, without the ORM's per-statement work: every cached page
    # view pays this one query.
    return int(s.connection().execute(_GENERATION).scalar() or 0)


def generation_column() -> Any:
    """The data generation as a scalar subquery, for a query the request makes anyway (the
    session check, accounts.sessions) to read it in the same round trip: on PostgreSQL each
    round trip is a good part of a cached page's cost."""
    return _GENERATION.scalar_subquery()


_REMEMBERED = "furusato.page_cache_generation"  # in the request's environ: this request only


def remember_generation(n: int | None) -> None:
    """Keep the generation read with the request's first query for `PageCache`; read before
    the page reads its data, as the cache needs (a write committed in between only makes the
    stored body look older than it is, so it is rendered again sooner). Kept on the request,
    not on `g`: an app context can outlive a request (one pushed around several test
    requests), and another request must never take this one's generation."""
    request.environ[_REMEMBERED] = n


def bump_generation(bind: Engine) -> None:
    """One more generation (its own transaction); a failure is logged, never raised: the
    write it follows is committed already, and cached pages expire within their ttl."""
    try:
        with bind.begin() as conn:
            conn.execute(_BUMP)
    except Exception as exc:  # noqa: BLE001 - e.g. a database without the table
        log.debug("data generation not bumped: %s", exc)


_HAS_TABLE: weakref.WeakKeyDictionary[Engine, bool] = weakref.WeakKeyDictionary()


def _engine(s: Session) -> Engine | None:
    bind = s.get_bind()
    return bind if isinstance(bind, Engine) else getattr(bind, "engine", None)


def _has_table(engine: Engine) -> bool:
    found = _HAS_TABLE.get(engine)
    if found is None:
        found = _HAS_TABLE[engine] = inspect(engine).has_table("data_generations")
    return found


def _mark_wrote(s: Session, *_: Any) -> None:
    if s.new or s.dirty or s.deleted:
        s.info[_WROTE] = True


def _mark_dml(state: Any) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        state.session.info[_WROTE] = True


def _before_commit(s: Session) -> None:
    """SQLite: bump inside the committing transaction. Its writers take turns anyway (one lock
    for the whole file), and a bump in a transaction of its own after the commit could wait
    for a write lock that another session of the same thread holds."""
    if s.get_nested_transaction() is not None:
        return
    if not (s.info.get(_WROTE) or s.new or s.dirty or s.deleted):
        return
    engine = _engine(s)
    if engine is None or engine.dialect.name != "sqlite" or not _has_table(engine):
        return
    s.execute(_BUMP)
    s.info[_WROTE] = False


def _after_commit(s: Session) -> None:
    """PostgreSQL: bump after the commit, in a transaction of its own, so that writers never
    queue on the generation's row lock for the length of their transaction; once the session
    has given its connection back (`_after_end`), so that a commit never needs two."""
    if s.get_nested_transaction() is not None:
        return  # a savepoint released: its writes commit (or not) with the outer transaction
    if s.info.pop(_WROTE, False):
        engine = _engine(s)
        if engine is not None and engine.dialect.name != "sqlite":
            s.info[_DUE] = engine


def _after_end(s: Session, transaction: Any) -> None:
    if transaction.parent is None and _DUE in s.info:
        bump_generation(s.info.pop(_DUE))


def _install_hooks() -> None:
    if event.contains(Session, "after_commit", _after_commit):
        return
    event.listen(Session, "before_flush", _mark_wrote)
    event.listen(Session, "do_orm_execute", _mark_dml)
    event.listen(Session, "before_commit", _before_commit)
    event.listen(Session, "after_commit", _after_commit)
    event.listen(Session, "after_transaction_end", _after_end)
    # No reset on rollback: a flag left over only costs one more bump (a savepoint rolled back
    # must not hide the outer transaction's writes).


_install_hooks()


@dataclass(frozen=True)
class Holes:
    """Markers rendered in place of per-response values (letters and digits: HTML and JSON
    escaping leave them as they are); random per process, so no content can forge one."""

    nonce: str
    csrf: str
    key: str


@dataclass
class _Entry:
    generation: int
    at: float
    body: str


class PageCache:
    def __init__(self, max_entries: int = 1024, ttl: float = 15.0) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self.holes = Holes(*(f"pagehole{secrets.token_hex(12)}" for _ in range(3)))
        self._entries: OrderedDict[tuple[Any, ...], _Entry] = OrderedDict()
        self.real: dict[str, Callable[[], str]] = {}  # the wrapped Jinja globals (init_app)
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def _key(self, name: str, user_id: int | None, locale: str) -> tuple[Any, ...]:
        return (name, request.full_path, locale, user_id)

    def _get(self, key: tuple[Any, ...], generation: int) -> str | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.generation != generation:
                return None
            if time.monotonic() - entry.at > self.ttl:
                return None
            self._entries.move_to_end(key)
            return entry.body

    def _put(self, key: tuple[Any, ...], generation: int, body: str) -> None:
        with self._lock:
            self._entries[key] = _Entry(generation, time.monotonic(), body)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def _cacheable(self) -> bool:
        return request.method == "GET" and "_flashes" not in session

    def _body(
        self, s: Session, name: str, user_id: int | None, locale: str, render: Callable[[], str]
    ) -> str:
        if not self._cacheable():
            return render()
        key = self._key(name, user_id, locale)
        # Before the page reads its data; read with the session check where there was one.
        generation = request.environ.pop(_REMEMBERED, None)
        if generation is None:
            generation = current_generation(s)
        body = self._get(key, generation)
        if body is None:
            self.misses += 1
            body = render()
            self._put(key, generation, body)
        else:
            self.hits += 1
        return body

    def page(
        self,
        s: Session,
        name: str,
        render: Callable[[Holes], str],
        *,
        user_id: int | None,
        locale: str,
    ) -> str:
        """The page `name` for this request: `render(holes)` renders it (with `holes.key` as
        its request key) when the cache has no body for this generation; the holes are filled
        in for this response."""

        def rendering() -> str:
            g.page_cache_holes = self.holes
            try:
                return render(self.holes)
            finally:
                g.page_cache_holes = None

        body = self._body(s, name, user_id, locale, rendering)
        return self.fill(body)

    def json(
        self, s: Session, name: str, build: Callable[[], str], *, user_id: int | None, locale: str
    ) -> str:
        """A JSON body (`build()` serialises it) cached like a page, without holes."""
        return self._body(s, name, user_id, locale, build)

    def fill(self, body: str) -> str:
        h = self.holes
        for hole, name in ((h.nonce, "csp_nonce"), (h.csrf, "csrf_token")):
            if hole in body:
                body = body.replace(hole, self.real[name]())
        if h.key in body:
            body = body.replace(h.key, uuid.uuid4().hex)
        return body


def init_app(app: Flask, cache: PageCache | None = None) -> PageCache:
    """Make `app.extensions["page_cache"]` and wrap the `csp_nonce` and `csrf_token` Jinja
    globals (call after Talisman and CSRFProtect set them) so that a page rendering for the
    cache gets the holes."""
    cache = cache or PageCache()
    app.extensions["page_cache"] = cache
    for name, hole in (("csp_nonce", cache.holes.nonce), ("csrf_token", cache.holes.csrf)):
        real = app.jinja_env.globals.get(name)
        if not callable(real):
            continue
        cache.real[name] = real

        def wrapped(_real: Callable[[], str] = real, _hole: str = hole) -> str:
            if g.get("page_cache_holes") is not None:
                return _hole
            return _real()

        app.jinja_env.globals[name] = wrapped
    return cache


def cached_json(
    s: Session, name: str, build: Callable[[], Any], *, user_id: int | None, locale: str
) -> Response:
    """A JSON answer through the app's page cache: `build()` makes the object when the data
    changed since it was last built for this path, language and user."""
    cache: PageCache = current_app.extensions["page_cache"]
    body = cache.json(
        s, name, lambda: current_app.json.dumps(build()) + "\n", user_id=user_id, locale=locale
    )
    return Response(body, mimetype="application/json")
