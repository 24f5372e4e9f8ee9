"""The Celery broker: an embedded SQLite broker by default, bounded publishing, and its purge.

Why (docs/adr/0007-embedded-broker.md): kombu's filesystem transport crashed the worker on a
half-written message file, and a stalled Redis made each request hang for its whole connection
retry cycle. Here:

- With no CELERY_BROKER_URL the broker is kombu's SQLAlchemy transport on `instance/broker.db`
  (SQLite in WAL mode): a message is a row written in a transaction, never half a file. kombu
  polls it once a second (fixed; its transport options go to `create_engine`, so no
  `polling_interval` there) and keeps consumed rows with `visible = 0`: `purge_consumed`
  deletes them on a beat schedule.
- A request never waits on the broker for more than PUBLISH_TIMEOUT: `publish` sends once,
  without retries, from a helper thread, and gives up waiting after the timeout. The database
  row (the outbox) is the durable record of the work; the periodic sweeps pick up anything
  whose message was lost.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT = 0.5  # seconds a request waits for a task message to be handed to the broker
EMBEDDED_PREFIX = "sqla+sqlite://"
MESSAGE_TABLE = "kombu_message"


def default_broker_url(instance_path: Path) -> str:
    """The embedded broker of `make run`: SQLite next to the app's database."""
    return f"{EMBEDDED_PREFIX}/{(Path(instance_path) / 'broker.db').resolve()}"


def is_embedded(url: str) -> bool:
    return url.startswith(EMBEDDED_PREFIX)


def embedded_path(url: str) -> Path:
    """The SQLite file of a `sqla+sqlite:////abs/path.db` URL."""
    return Path(url.removeprefix(EMBEDDED_PREFIX + "/"))


def transport_settings(url: str) -> dict[str, Any]:
    """Celery settings that keep one broker call short on each transport."""
    if url.startswith(("redis://", "rediss://")):
        return {
            # A dead Redis refuses at once; a stalled one must not hold a socket for minutes.
            # socket_timeout stays above kombu's 1 s BRPOP wait so an idle worker is not cut off.
            "broker_transport_options": {"socket_connect_timeout": 1, "socket_timeout": 5},
            "broker_connection_timeout": 1,
        }
    return {}


def prepare_embedded(url: str) -> None:
    """Create the broker's SQLite file in WAL mode (readers never block the writer) and kombu's
    tables, once, before web, worker and beat race to create them."""
    if not is_embedded(url):
        return
    path = embedded_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=30)
    try:
        con.execute("PRAGMA journal_mode=WAL")  # persistent: every later connection uses WAL
    finally:
        con.close()
    from kombu import Connection

    with Connection(url) as conn:
        conn.default_channel  # noqa: B018 - opening the channel creates kombu's tables


def publish(
    celery: Any, name: str, args: Sequence[Any] = (), timeout: float = PUBLISH_TIMEOUT
) -> bool:
    """Send task `name` once, waiting at most `timeout` seconds; False when it was not sent.

    For the request path: the caller has already committed a durable record of the work, and a
    periodic sweep re-sends what a lost message missed, so a broker outage costs a delay, never
    a hung request. The send runs in a daemon thread: a stalled broker keeps that thread (up to
    the transport's socket timeout), not the request.
    """
    # A proxy (celery.current_app) resolves per thread: resolve it here, in the caller's.
    celery = getattr(celery, "_get_current_object", lambda: celery)()
    done = threading.Event()
    failure: list[BaseException] = []

    def send() -> None:
        try:
            celery.send_task(name, args=list(args), retry=False)
        except BaseException as exc:  # noqa: BLE001 - reported to the waiting caller
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=send, name=f"publish-{name}", daemon=True).start()
    if not done.wait(timeout):
        log.warning("broker did not take %s within %.1f s: the sweep will send it", name, timeout)
        return False
    if failure:
        log.warning(
            "broker refused %s (%s): the sweep will send it", name, type(failure[0]).__name__
        )
        return False
    return True


def purge_consumed(url: str) -> int:
    """Delete the rows of messages already delivered (kombu keeps them with visible = 0)."""
    if not is_embedded(url):
        return 0
    con = sqlite3.connect(embedded_path(url), timeout=30)
    try:
        with con:
            cur = con.execute(f"DELETE FROM {MESSAGE_TABLE} WHERE visible = 0")  # noqa: S608
            return int(cur.rowcount)
    except sqlite3.OperationalError as exc:  # no table yet: nothing was ever sent
        if "no such table" in str(exc):
            return 0
        raise
    finally:
        with contextlib.suppress(Exception):
            con.close()
