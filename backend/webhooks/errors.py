"""Errors of outgoing webhooks (each maps to a 4xx in the JSON error shape)."""

from __future__ import annotations

from typing import Any

from backend.core.errors import InvalidInput, NotFound


class WebhookUrlRefused(InvalidInput):
    """The URL is not one the platform will POST to (scheme, host, address): nothing changes."""

    code = "webhook_url_refused"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, field="url", **details)


class WebhookEndpointNotFound(NotFound):
    code = "webhook_endpoint_not_found"


class WebhookDeliveryNotFound(NotFound):
    code = "webhook_delivery_not_found"
