"""A service's webhook (issue 14 §2), as the town's admin manages it: its URL, its signing
secret (shown once when it is made or rotated, then kept sealed by the webhooks domain), and
the deliveries staff may look at and send again.

The webhooks domain knows no services: a service's endpoint is the owner `api_service:<id>`
(`webhook_owner`). `ServiceAccount.webhook_url` mirrors the endpoint's URL for the API's own
answers; the endpoint is what the worker sends to. Every change is audited with the admin as
actor; every public method commits what it changed, or raises an AppError and writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from backend.accounts.models import User
from backend.core.db import get_db
from backend.core.errors import N_
from backend.core.models import AuditLog
from backend.core.numbers import db_id_or_none
from backend.integrations.models import ServiceAccount
from backend.integrations.services import MAX_URL, ServiceAccountService, service_account_service
from backend.regions.models import Town
from backend.webhooks.errors import WebhookUrlRefused
from backend.webhooks.models import WebhookDelivery, WebhookEndpoint
from backend.webhooks.services import WebhookService, webhook_service


def webhook_owner(service_id: int) -> str:
    """The webhooks domain's owner key of a service."""
    return f"api_service:{service_id}"


@dataclass(frozen=True)
class WebhookView:
    account: ServiceAccount
    endpoint: WebhookEndpoint | None
    counts: dict[str, int]
    recent: Sequence[WebhookDelivery]
    failed: Sequence[WebhookDelivery]


class ServiceWebhookService:
    """The town ADMIN's view and changes of a service's webhook (authorised by
    `ServiceAccountService.account`: 401/403 for others, 404 for another town's service)."""

    def __init__(
        self, session: Session, *, accounts: ServiceAccountService, webhooks: WebhookService
    ) -> None:
        self.session = session
        self.accounts = accounts
        self.webhooks = webhooks

    def view(self, actor: User | None, town: Town, service_id: object) -> WebhookView:
        account = self.accounts.account(actor, town, service_id)
        owner = webhook_owner(account.id)
        return WebhookView(
            account=account,
            endpoint=self.webhooks.endpoint(owner),
            counts=self.webhooks.counts(owner),
            recent=self.webhooks.deliveries(owner, limit=20),
            failed=self.webhooks.deliveries(owner, state="failed", limit=50),
        )

    def set_url(
        self, actor: User | None, town: Town, service_id: object, url: object
    ) -> str | None:
        """Set, change or (with "") remove the service's webhook URL. Returns the new signing
        secret when this made the endpoint (shown once), else None. WebhookUrlRefused for a
        URL the platform will not POST to: nothing changes."""
        account = self.accounts.account(actor, town, service_id)
        assert actor is not None
        owner = webhook_owner(account.id)
        text = url.strip() if isinstance(url, str) else ""
        if len(text) > MAX_URL:  # ServiceAccount.webhook_url's length
            raise WebhookUrlRefused(
                N_("The webhook URL is longer than %(max)d characters."), max=MAX_URL
            )
        try:
            if not text:
                if self.webhooks.endpoint(owner) is not None:
                    self.webhooks.remove_endpoint(owner)
                secret = None
            else:
                made = self.webhooks.set_endpoint(owner, text)
                text, secret = made.endpoint.url, made.secret
            account.webhook_url = text
            self._audit(actor, account, "services.webhook.set", url=text, new_secret=bool(secret))
            self.session.commit()
        except Exception:
            self.session.rollback()
            raise
        return secret

    def rotate_secret(self, actor: User | None, town: Town, service_id: object) -> str:
        """A new signing secret (shown once); the old one stops signing at once."""
        account = self.accounts.account(actor, town, service_id)
        assert actor is not None
        try:
            secret = self.webhooks.rotate_secret(webhook_owner(account.id))
            self._audit(actor, account, "services.webhook.rotate_secret")
            self.session.commit()
        except Exception:
            self.session.rollback()
            raise
        return secret

    def resend(
        self, actor: User | None, town: Town, service_id: object, delivery_id: object
    ) -> WebhookDelivery:
        """Send a failed delivery again (one that is not failed is left as it is)."""
        account = self.accounts.account(actor, town, service_id)
        assert actor is not None
        try:
            found = self.webhooks.retry(webhook_owner(account.id), db_id_or_none(delivery_id) or 0)
            self._audit(actor, account, "services.webhook.resend", event_id=found.event_id)
            self.session.commit()
        except Exception:
            self.session.rollback()
            raise
        return found

    def _audit(self, actor: User, account: ServiceAccount, action: str, **details: Any) -> None:
        self.session.add(
            AuditLog(
                actor=f"user:{actor.id}",
                action=action,
                subject_type="service_account",
                subject_id=str(account.id),
                details={"town_id": account.town_id, "name_en": account.name_en, **details},
            )
        )


def service_webhook_service() -> ServiceWebhookService:
    session = get_db().session()
    return ServiceWebhookService(
        session, accounts=service_account_service(), webhooks=webhook_service(session)
    )
