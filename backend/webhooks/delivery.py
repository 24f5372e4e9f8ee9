"""The worker's side of webhooks: claim a due delivery, POST it, record the answer.

One delivery at a time, each in three short transactions (claim, then the HTTP request with no
transaction open, then finish), so no lock is held while a receiver is slow.

- Claim: one UPDATE of the first due row (pending, or delivering with its lease run out) to
  delivering, with a lease (`claimed_until`) and a fresh `claim_token`. On PostgreSQL the row
  is picked with FOR UPDATE SKIP LOCKED, so concurrent workers take different rows instead of
  queueing on one; on SQLite the single UPDATE is atomic (one writer at a time) and re-checks
  that the row is still due. Either way two workers never hold one row at once.
- Send: one POST to an address the URL check has just approved (urls.py: no second look-up,
  so DNS rebinding cannot move it inside), never following a redirect. The whole exchange,
  connecting to the answer's status line and headers, ends within WEBHOOK_TIMEOUT (below the
  lease): a receiver that trickles its answer a byte at a time is cut off at the deadline, and
  the answer's body is never read (a huge one costs nothing), so no worker is tied up and no
  lease runs out while its POST is still in flight.
- Finish: only while the claim token is still ours (a worker whose lease ran out and whose
  row another worker took changes nothing). A 2xx is delivered; anything else waits
  `backoff(attempts)` and goes back to pending, or fails after the last attempt.
- A worker killed between the POST and the finish leaves the row delivering; when its lease
  runs out another worker sends it again, with the same webhook-id: delivery is at least once,
  and the id lets the receiver keep exactly one (Standard Webhooks asks receivers to).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import logging
import random
import secrets
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from backend.webhooks.errors import WebhookUrlRefused
from backend.webhooks.models import (
    DELIVERED,
    DELIVERING,
    FAILED,
    OPEN,
    PENDING,
    WebhookDelivery,
    WebhookEndpoint,
)
from backend.webhooks.signing import SealedSecret, SecretUnreadable, body, headers, unseal
from backend.webhooks.urls import Target, UrlPolicy

log = logging.getLogger(__name__)

MAX_ERROR = 500  # characters of an error kept on the row


@dataclass(frozen=True)
class Retry:
    """When a failed attempt is tried again: base * 3^(n-1) seconds, capped, with jitter (a
    random point in the upper half) so that many deliveries failing together spread out."""

    base: float
    cap: float
    max_attempts: int

    def delay(self, attempts: int) -> float:
        exact = min(self.cap, self.base * 3 ** max(0, attempts - 1))
        return exact * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class Claim:
    id: int
    token: str
    attempts: int
    event_id: str
    event_type: str
    created_at: dt.datetime
    payload: dict[str, Any]
    owner: str
    url: str
    sealed: SealedSecret


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int | None = None
    error: str = ""
    url: str = ""
    give_up: bool = False  # nothing to retry (the endpoint has no URL any more)


def _due(now: dt.datetime) -> Any:
    d = WebhookDelivery
    return and_(
        d.state.in_(OPEN),
        d.next_attempt_at <= now,
        or_(d.claimed_until.is_(None), d.claimed_until <= now),
    )


def claim_next(session: Session, now: dt.datetime, lease: float) -> Claim | None:
    """Claim the first due delivery for `lease` seconds and commit; None when none is due."""
    d = WebhookDelivery
    first = (
        select(d.id)
        .where(_due(now))
        .order_by(d.next_attempt_at, d.id)
        .limit(1)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite renders no FOR UPDATE
        .scalar_subquery()
    )
    token = secrets.token_hex(16)
    claimed = session.execute(
        update(d)
        .where(d.id == first, _due(now))
        .values(
            state=DELIVERING,
            claimed_until=now + dt.timedelta(seconds=lease),
            claim_token=token,
            attempts=d.attempts + 1,
        )
        .returning(d.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if claimed is None:
        session.commit()
        return None
    row = session.execute(
        select(d, WebhookEndpoint)
        .join(WebhookEndpoint, WebhookEndpoint.id == d.endpoint_id)
        .where(d.id == claimed)
    ).one()
    delivery, endpoint = row
    claim = Claim(
        id=delivery.id,
        token=token,
        attempts=delivery.attempts,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        created_at=delivery.created_at,
        payload=dict(delivery.payload),
        owner=endpoint.owner,
        url=endpoint.url,
        sealed=SealedSecret(bytes(endpoint.secret_nonce), bytes(endpoint.secret_ciphertext)),
    )
    session.commit()
    return claim


def attempt(
    claim: Claim, *, secret_key: str, policy: UrlPolicy, timeout: float, now: dt.datetime
) -> Outcome:
    """POST the claimed delivery once, within `timeout` seconds in all; never raises for the
    receiver's or the URL's faults."""
    if not claim.url:
        return Outcome(False, error="the endpoint has no URL any more", give_up=True)
    try:
        target = policy.target(claim.url)
        secret = unseal(secret_key, claim.owner, claim.sealed)
    except WebhookUrlRefused as exc:
        return Outcome(False, error=f"URL refused: {exc.message % exc.details}", url=claim.url)
    except SecretUnreadable:
        return Outcome(False, error="secret unreadable: rotate the secret", url=claim.url)
    data = body(claim.event_type, claim.created_at, claim.payload)
    try:
        status = post(target, data.encode(), headers(secret, claim.event_id, data, now), timeout)
    except _Late:
        return Outcome(False, error=f"Timeout: no answer within {timeout:g} s", url=target.url)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return Outcome(False, error=f"{type(exc).__name__}: {exc}"[:MAX_ERROR], url=target.url)
    if 200 <= status < 300:
        return Outcome(True, status=status, url=target.url)
    return Outcome(False, status=status, error=f"HTTP {status}", url=target.url)


class _Late(Exception):
    """The receiver did not answer within the deadline."""


def post(target: Target, data: bytes, head: dict[str, str], timeout: float) -> int:
    """POST `data` to one of `target`'s checked addresses (no proxy, no redirect) and return
    the answer's status. Everything ends within `timeout` seconds: at the deadline a timer
    shuts the socket, which ends whatever read or write is waiting (raises _Late). The body
    of the answer is never read."""
    deadline = time.monotonic() + timeout
    sock = _connect(target, deadline)
    cut = threading.Event()
    killer = sock.dup()  # shutting down the dup ends reads on the (TLS-wrapped) original too

    def _cut() -> None:
        cut.set()
        with contextlib.suppress(OSError):  # already closed: the POST ended meanwhile
            killer.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(max(deadline - time.monotonic(), 0.0), _cut)
    timer.daemon = True
    timer.start()
    conn: http.client.HTTPConnection | None = None
    try:
        if target.https:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=target.host)
            conn = http.client.HTTPSConnection(target.host, target.port, timeout=timeout)
        else:
            conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
        conn.sock = sock  # connected to the checked address: http.client does not look up
        conn.request("POST", target.path, body=data, headers=head)
        status = int(conn.getresponse().status)
        if cut.is_set():  # the headers were cut short: http.client took the end for theirs
            raise _Late()
        return status
    except (OSError, http.client.HTTPException):
        if cut.is_set():
            raise _Late() from None
        raise
    finally:
        timer.cancel()
        if conn is not None:
            conn.close()
        sock.close()
        killer.close()


def _connect(target: Target, deadline: float) -> socket.socket:
    """A socket connected to the first of `target`'s addresses that answers before `deadline`."""
    error: OSError = OSError("no address")
    for address in target.addresses:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _Late()
        try:
            return socket.create_connection((address, target.port), timeout=left)
        except TimeoutError:
            raise _Late() from None
        except OSError as exc:
            error = exc
    raise error


def finish(
    session: Session, claim: Claim, outcome: Outcome, now: dt.datetime, retry: Retry
) -> str | None:
    """Record `outcome` while the claim is still ours and commit; the row's new state, or
    None when the lease had run out and another worker holds the row."""
    d = WebhookDelivery
    values: dict[str, Any] = {
        "claimed_until": None,
        "claim_token": None,
        "last_status": outcome.status,
        "last_error": outcome.error[:MAX_ERROR],
    }
    if outcome.url:
        values["url"] = outcome.url
    if outcome.ok:
        values.update(state=DELIVERED, delivered_at=now)
    elif outcome.give_up or claim.attempts >= retry.max_attempts:
        values.update(state=FAILED, failed_at=now)
    else:
        later = now + dt.timedelta(seconds=retry.delay(claim.attempts))
        values.update(state=PENDING, next_attempt_at=later)
    done = session.execute(
        update(d)
        .where(d.id == claim.id, d.claim_token == claim.token)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if done.rowcount != 1:  # type: ignore[attr-defined]
        log.warning("webhook delivery %s: lease ran out before it finished", claim.id)
        return None
    if values["state"] == FAILED:
        log.warning("webhook delivery %s failed for good: %s", claim.event_id, outcome.error)
    return str(values["state"])
