"""The console's Webhooks section: the town's admin sets a service's webhook URL and sees its
signing secret once, rotates it, sees failed deliveries and sends one again; refused URLs and
other people change nothing. The secret the page showed is the one that signs the POSTs."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.integrations.models import ServiceAccount
from backend.webhooks.models import WebhookDelivery, WebhookEndpoint
from backend.webhooks.services import queue_delivery
from backend.webhooks.tasks import deliver_due
from tests.integrations.conftest import OTHER_ADMIN, make_service
from tests.webhooks.receiver import Receiver

SECRET = re.compile(r'data-testid="webhook-secret">(whsec_[A-Za-z0-9+/=]+)<')


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def _form(api, url: str, data: dict[str, str] | None = None):
    if api.token is None:
        api.token = api.client.get("/api/csrf").get_json()["csrf_token"]
    return api.client.post(url, data=data or {}, headers={"X-CSRFToken": api.token})


def _endpoints(app) -> list[tuple[str, str]]:
    with app.app_context():
        return [
            (e.owner, e.url)
            for e in get_db().session.scalars(
                sa.select(WebhookEndpoint).order_by(WebhookEndpoint.id)
            )
        ]


def _audits(app) -> list[str]:
    with app.app_context():
        return list(
            get_db().session.scalars(
                sa.select(AuditLog.action)
                .where(AuditLog.action.like("services.webhook.%"))
                .order_by(AuditLog.id)
            )
        )


def test_the_admin_sets_the_url_and_sees_the_secret_once(app, world, admins, receiver):
    svc = make_service(app, world.town_id)
    admin = world.api(admins[0])
    base = f"/towns/sarabetsu/admin/webhooks/{svc.id}"
    listing = admin.get("/towns/sarabetsu/admin/webhooks")
    assert listing.status_code == 200 and "Car share" in listing.get_data(as_text=True)

    shown = _form(admin, f"{base}/url", {"url": receiver.url})
    page = shown.get_data(as_text=True)
    assert shown.status_code == 200 and shown.headers["Cache-Control"] == "no-store"
    (secret,) = SECRET.findall(page)
    assert _endpoints(app) == [(f"api_service:{svc.id}", receiver.url)]
    with app.app_context():
        assert get_db().session.get(ServiceAccount, svc.id).webhook_url == receiver.url
    # Never shown again: not on the page, not on the list.
    for url in (base, "/towns/sarabetsu/admin/webhooks"):
        assert secret not in admin.get(url).get_data(as_text=True)
    # The same URL again keeps the secret (303, no secret shown).
    again = _form(admin, f"{base}/url", {"url": receiver.url})
    assert again.status_code == 303

    # The shown secret signs what the service receives.
    with app.app_context():
        s = get_db().session
        assert queue_delivery(
            s,
            owner=f"api_service:{svc.id}",
            event_id="issuance:1:confirmed",
            event_type="issuance.confirmed",
            payload={"id": 1, "status": "confirmed"},
        )
        s.commit()
        deliver_due.run()
    assert list(receiver.unique(secret)) == ["issuance:1:confirmed"]

    rotated = _form(admin, f"{base}/rotate")
    (new,) = SECRET.findall(rotated.get_data(as_text=True))
    assert rotated.status_code == 200 and new != secret
    assert _audits(app) == [
        "services.webhook.set",
        "services.webhook.set",
        "services.webhook.rotate_secret",
    ]

    removed = _form(admin, f"{base}/url", {"url": ""})
    assert removed.status_code == 303
    assert _endpoints(app) == [(f"api_service:{svc.id}", "")]


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "ftp://example.com/x",
        "https://u:p@example.com/x",
        "http://127.0.0.1:8080/" + "x" * 600,
    ],
)
def test_a_refused_url_shows_why_and_changes_nothing(app, world, admins, url):
    svc = make_service(app, world.town_id)
    admin = world.api(admins[0])
    answer = _form(admin, f"/towns/sarabetsu/admin/webhooks/{svc.id}/url", {"url": url})
    assert answer.status_code == 400
    assert 'data-testid="webhook-error"' in answer.get_data(as_text=True)
    assert _endpoints(app) == [] and _audits(app) == []


def test_only_the_towns_admin(app, world, admins, receiver):
    svc = make_service(app, world.town_id)
    base = f"/towns/sarabetsu/admin/webhooks/{svc.id}"
    for email in (world.staff, OTHER_ADMIN, world.customer):
        api = world.api(email)
        assert api.get("/towns/sarabetsu/admin/webhooks").status_code == 403
        assert api.get(base).status_code == 403
        assert _form(api, f"{base}/url", {"url": receiver.url}).status_code == 403
        assert _form(api, f"{base}/rotate").status_code == 403
    # Another town's admin, through their own town: no such service there.
    other = world.api(OTHER_ADMIN)
    assert other.get(f"/towns/toyako/admin/webhooks/{svc.id}").status_code == 404
    assert (
        _form(
            other, f"/towns/toyako/admin/webhooks/{svc.id}/url", {"url": receiver.url}
        ).status_code
        == 404
    )
    assert app.test_client().get(base).status_code == 302  # to sign in
    assert _endpoints(app) == [] and _audits(app) == []


def test_failed_deliveries_are_shown_and_sent_again(world, admins, receiver, app):
    svc = make_service(app, world.town_id)
    admin = world.api(admins[0])
    base = f"/towns/sarabetsu/admin/webhooks/{svc.id}"
    _form(admin, f"{base}/url", {"url": receiver.url})
    with app.app_context():
        s = get_db().session
        queue_delivery(
            s,
            owner=f"api_service:{svc.id}",
            event_id="issuance:2:failed",
            event_type="issuance.failed",
            payload={"id": 2, "status": "failed"},
        )
        s.execute(
            sa.update(WebhookDelivery).values(state="failed", attempts=10, last_error="HTTP 500")
        )
        s.commit()
        delivery_id = s.scalar(sa.select(WebhookDelivery.id))
    page = admin.get(base).get_data(as_text=True)
    assert 'data-testid="webhook-failed"' in page and "issuance:2:failed" in page
    sent = _form(admin, f"{base}/deliveries/{delivery_id}/resend")
    assert sent.status_code == 303
    with app.app_context():
        row = get_db().session.get(WebhookDelivery, delivery_id)
        assert (row.state, row.attempts) == ("pending", 0)
        deliver_due.run()
    assert receiver.ids() == ["issuance:2:failed"]
    assert _audits(app)[-1] == "services.webhook.resend"
    assert _form(admin, f"{base}/deliveries/999/resend").status_code == 404
