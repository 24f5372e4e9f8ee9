"""Outgoing webhooks as other domains use them.

- `queue_delivery(session, owner=..., event_id=..., event_type=..., payload=...)`: in the
  caller's transaction, one row per event id (a repeat is a no-op), sent by the worker after
  commit. The caller's domain decides what an event is; this package only carries it.
- `WebhookService`: an owner's endpoint (set or change its URL, rotate its secret: the secret is
  returned once, then only its sealed form is kept) and what staff see of its deliveries
  (recent ones, failed ones, sending a failed one again). Authorisation (whose owner this is)
  belongs to the calling domain, which knows who its owners are.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session

from backend.core.db import utcnow
from backend.core.errors import N_, InvalidInput
from backend.core.safety import is_local_test_chain
from backend.core.upsert import insert_for
from backend.webhooks.errors import WebhookDeliveryNotFound, WebhookEndpointNotFound
from backend.webhooks.models import (
    FAILED,
    PENDING,
    STATES,
    WebhookDelivery,
    WebhookEndpoint,
)
from backend.webhooks.signing import new_secret, seal
from backend.webhooks.urls import UrlPolicy, policy_for

log = logging.getLogger(__name__)

DELIVER_TASK = "webhooks.deliver_due"
MAX_EVENT_ID = 200
MAX_OWNER = 80


def queue_delivery(
    session: Session,
    *,
    owner: str,
    event_id: str,
    event_type: str,
    payload: dict[str, Any],
) -> bool:
    """Queue `payload` for `owner`'s endpoint under `event_id`, in the caller's transaction.

    Returns False (and queues nothing) when the owner has no endpoint with a URL, or when
    `event_id` was queued before: ON CONFLICT DO NOTHING, so two transactions queueing the same
    event (a task run twice, two workers) make one row and neither fails. The worker is kicked
    after the commit; the beat task `webhooks.deliver_due` finds the row if that kick is lost.
    """
    if not event_id or len(event_id) > MAX_EVENT_ID:
        raise ValueError(f"event_id must be 1 to {MAX_EVENT_ID} characters")
    endpoint = session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.owner == owner))
    if endpoint is None or not endpoint.url:
        return False
    now = utcnow()
    values = {
        "endpoint_id": endpoint.id,
        "event_id": event_id,
        "event_type": event_type,
        "url": endpoint.url,
        "payload": payload,
        "state": PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "last_error": "",
        "created_at": now,
    }
    stmt = (
        insert_for(session, WebhookDelivery)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(WebhookDelivery.id)  # no row back: the event was queued before
    )
    added = session.execute(stmt).scalar_one_or_none() is not None
    if added:
        _kick_after_commit(session)
    return added


def _kick_after_commit(session: Session) -> None:
    """Send the delivery task once the transaction commits (never for a rollback)."""
    if session.info.get("webhooks_hooked"):
        session.info["webhooks_kick"] = True
        return
    celery = current_app.extensions.get("celery") if has_app_context() else None
    if celery is None:
        return
    session.info["webhooks_hooked"] = True
    session.info["webhooks_kick"] = True

    def _after_commit(sess: Session) -> None:
        if sess.info.pop("webhooks_kick", False):
            try:
                celery.send_task(DELIVER_TASK)
            except Exception:  # the beat task sends what a lost kick missed
                log.exception("could not send %s", DELIVER_TASK)

    def _after_rollback(sess: Session, _trans: Any) -> None:
        sess.info.pop("webhooks_kick", None)

    event.listen(session, "after_commit", _after_commit)
    event.listen(session, "after_soft_rollback", _after_rollback)


@dataclass(frozen=True)
class EndpointSet:
    endpoint: WebhookEndpoint
    secret: str | None  # the new secret, shown once; None when the endpoint kept its secret


class WebhookService:
    """An owner's endpoint and its deliveries. Raises WebhookUrlRefused for a URL the
    platform will not POST to (nothing changes), WebhookEndpointNotFound and
    WebhookDeliveryNotFound."""

    def __init__(self, session: Session, *, secret_key: str, policy: UrlPolicy) -> None:
        self.session = session
        self.secret_key = secret_key
        self.policy = policy

    def endpoint(self, owner: str) -> WebhookEndpoint | None:
        return self.session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.owner == owner))

    def set_endpoint(self, owner: str, url: str) -> EndpointSet:
        """Point `owner`'s webhooks at `url`. A first endpoint gets a secret (returned once);
        a changed URL keeps its secret. Deliveries not yet sent go to the new URL."""
        if not owner or len(owner) > MAX_OWNER:
            raise ValueError(f"owner must be 1 to {MAX_OWNER} characters")
        url = self.policy.check(url)
        now = utcnow()
        found = self.endpoint(owner)
        if found is not None:
            found.url = url
            found.updated_at = now
            self.session.flush()
            return EndpointSet(found, None)
        secret = new_secret()
        sealed = seal(self.secret_key, owner, secret)
        made = WebhookEndpoint(
            owner=owner,
            url=url,
            secret_nonce=sealed.nonce,
            secret_ciphertext=sealed.ciphertext,
            created_at=now,
            updated_at=now,
            secret_created_at=now,
        )
        self.session.add(made)
        self.session.flush()
        return EndpointSet(made, secret)

    def remove_endpoint(self, owner: str) -> None:
        """Stop sending: the URL is cleared (the row and its history stay); deliveries not
        yet sent fail at their next attempt with "no URL"."""
        found = self._endpoint(owner)
        found.url = ""
        found.updated_at = utcnow()
        self.session.flush()

    def rotate_secret(self, owner: str) -> str:
        """A new secret for `owner` (returned once); the old one stops at once, so the
        receiver must switch too (it may accept both while it does)."""
        found = self._endpoint(owner)
        secret = new_secret()
        sealed = seal(self.secret_key, owner, secret)
        found.secret_nonce, found.secret_ciphertext = sealed.nonce, sealed.ciphertext
        found.secret_created_at = found.updated_at = utcnow()
        self.session.flush()
        return secret

    def deliveries(
        self, owner: str, *, state: str | None = None, limit: int = 50
    ) -> Sequence[WebhookDelivery]:
        """`owner`'s deliveries, newest first (`state` narrows them, e.g. "failed")."""
        if state is not None and state not in STATES:
            raise InvalidInput(N_("Unknown delivery state."), field="state")
        query = (
            select(WebhookDelivery)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookEndpoint.owner == owner)
        )
        if state is not None:
            query = query.where(WebhookDelivery.state == state)
        order = (WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
        return self.session.scalars(query.order_by(*order).limit(limit)).all()

    def counts(self, owner: str) -> dict[str, int]:
        """How many of `owner`'s deliveries are in each state."""
        rows = self.session.execute(
            select(WebhookDelivery.state, func.count())
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookEndpoint.owner == owner)
            .group_by(WebhookDelivery.state)
        )
        found = {state: 0 for state in STATES}
        found.update({state: int(n) for state, n in rows})
        return found

    def retry(self, owner: str, delivery_id: int) -> WebhookDelivery:
        """Send a failed delivery again, from a fresh count of attempts (staff, after the
        receiver is fixed). A delivery that is not failed is left as it is."""
        found = self.session.scalar(
            select(WebhookDelivery)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookEndpoint.owner == owner, WebhookDelivery.id == delivery_id)
        )
        if found is None:
            raise WebhookDeliveryNotFound(N_("No such webhook delivery."))
        now = utcnow()
        done = self.session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == found.id, WebhookDelivery.state == FAILED)
            .values(state=PENDING, attempts=0, next_attempt_at=now, failed_at=None)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount == 1:  # type: ignore[attr-defined]
            _kick_after_commit(self.session)
        self.session.refresh(found)
        return found

    def _endpoint(self, owner: str) -> WebhookEndpoint:
        found = self.endpoint(owner)
        if found is None:
            raise WebhookEndpointNotFound(N_("This service has no webhook URL."))
        return found


def url_policy() -> UrlPolicy:
    """The current app's URL policy (WEBHOOK_PRIVATE_URLS and the chain it serves)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    chain_id = app.extensions.get("chain_id")
    local = chain_id is None or is_local_test_chain(chain_id)
    return policy_for(app.extensions["settings"].webhook_private_urls, local)


def webhook_service(session: Session) -> WebhookService:
    """The service for the current app (its SECRET_KEY seals the secrets)."""
    return WebhookService(session, secret_key=current_app.config["SECRET_KEY"], policy=url_policy())
