"""Service accounts and keys (issue 14 §1): `flask --app backend services create` prints a key
shown once and stored hashed; the key authenticates its service; a rotation leaves two keys
valid (the old one until its end); a revoked key, a wrong key or a malformed header never
authenticates; only the town's admin manages its services."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
import sqlalchemy as sa

from backend.core.db import get_db
from backend.core.errors import AppError
from backend.core.models import AuditLog
from backend.integrations import services as integrations
from backend.integrations.errors import InvalidApiKey, RotationInProgress
from backend.integrations.models import ServiceAccount, ServiceApiKey
from backend.integrations.services import service_account_service
from backend.regions.models import Town
from tests.integrations.conftest import ADMIN_EMAIL, OTHER_ADMIN, THANKS, make_service, state


def _run(app, *args: str):
    return app.test_cli_runner().invoke(args=["services", *args])


def test_cli_creates_a_service_and_prints_its_key_once(app, world):
    out = _run(
        app,
        "create",
        "--town",
        "sarabetsu",
        "--name",
        "Car share",
        "--name-ja",
        "相乗り",
        "--programme",
        str(THANKS),
        "--daily-budget",
        "5000",
        "--monthly-budget",
        "100000",
        "--cap",
        "500",
    )
    assert out.exit_code == 0, out.output
    key = out.output.strip().splitlines()[-1]
    assert key.startswith("fur_") and len(key) == 4 + 12 + 1 + 43
    with app.app_context():
        s = get_db().session
        account = s.scalar(sa.select(ServiceAccount))
        assert (account.name_ja, account.name_en, account.programme_ids) == (
            "相乗り",
            "Car share",
            [THANKS],
        )
        assert (
            int(account.daily_budget),
            int(account.monthly_budget),
            int(account.cap_per_issuance),
        ) == (5000, 100000, 500)
        (row,) = s.scalars(sa.select(ServiceApiKey)).all()
        # Stored hashed: the prefix and the secret's SHA-256, never the secret.
        secret = key.split("_", 2)[2]
        assert row.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
        assert secret not in repr([getattr(row, c.key) for c in ServiceApiKey.__table__.columns])
        found, k = service_account_service().authenticate(f"Bearer {key}")
        assert found.id == account.id and k.id == row.id
        audit = s.scalar(sa.select(AuditLog).where(AuditLog.action == "services.create"))
        assert audit.actor == "system:cli" and audit.town_id == world.town_id
        assert secret not in str(audit.details)


def test_cli_refuses_bad_input_and_writes_nothing(app, world):
    before = state(app)
    for args in (
        ("--town", "nowhere", "--name", "x", "--programme", "3", "--daily-budget", "10"),
        ("--town", "sarabetsu", "--name", "x", "--programme", "999", "--daily-budget", "10"),
        ("--town", "sarabetsu", "--name", "x", "--programme", "3", "--daily-budget", "0"),
        ("--town", "sarabetsu", "--name", "x", "--programme", "3", "--daily-budget", "-5"),
        ("--town", "sarabetsu", "--name", "", "--programme", "3", "--daily-budget", "10"),
        (
            "--town",
            "sarabetsu",
            "--name",
            "x",
            "--programme",
            "3",
            "--daily-budget",
            "10",
            "--monthly-budget",
            "5",
        ),
    ):
        out = _run(app, "create", *args)
        assert out.exit_code != 0, (args, out.output)
    assert state(app) == before


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer fur_000000000000_" + "A" * 43,
        "Bearer not-a-key",
    ],
)
def test_wrong_keys_do_not_authenticate(app, world, header):
    svc = make_service(app, world.town_id)
    with app.app_context():
        with pytest.raises(InvalidApiKey):
            service_account_service().authenticate(header)
        # The right prefix with a wrong secret is refused too.
        prefix = svc.key.split("_")[1]
        with pytest.raises(InvalidApiKey):
            service_account_service().authenticate(f"Bearer fur_{prefix}_{'B' * 43}")


def test_rotation_keeps_two_keys_valid_then_revoke_and_expiry_end_them(app, world, admins):
    svc = make_service(app, world.town_id)
    with app.app_context():
        s = get_db().session
        town = s.get(Town, world.town_id)
        admin = world.user(ADMIN_EMAIL)
        accounts = service_account_service()
        new = accounts.rotate(admin, town, svc.id)
        # Both keys are valid during the rotation; a third rotation waits for a revoke.
        assert accounts.authenticate(f"Bearer {svc.key}")[0].id == svc.id
        assert accounts.authenticate(f"Bearer {new.text}")[0].id == svc.id
        with pytest.raises(RotationInProgress):
            accounts.rotate(admin, town, svc.id)
        old = s.scalar(sa.select(ServiceApiKey).where(ServiceApiKey.id != new.row.id))
        assert old.expires_at is not None
        # After the grace period the old key no longer works (the clock moved, not a sleep).
        later = service_account_service()
        later._now = lambda: (
            dt.datetime.now(dt.UTC) + integrations.ROTATION_GRACE + dt.timedelta(seconds=1)
        )
        with pytest.raises(InvalidApiKey):
            later.authenticate(f"Bearer {svc.key}")
        assert later.authenticate(f"Bearer {new.text}")[0].id == svc.id
        # Revoking ends a key at once, and is audited.
        accounts.revoke(admin, town, svc.id, old.id)
        with pytest.raises(InvalidApiKey):
            accounts.authenticate(f"Bearer {svc.key}")
        assert accounts.authenticate(f"Bearer {new.text}")[0].id == svc.id
        actions = [a.action for a in s.scalars(sa.select(AuditLog).order_by(AuditLog.id))]
        assert actions[-2:] == ["services.key.rotate", "services.key.revoke"]
        # Another rotation is allowed again once the old key is revoked.
        third = accounts.rotate(admin, town, svc.id)
        assert accounts.authenticate(f"Bearer {third.text}")[0].id == svc.id


def test_only_the_towns_admin_manages_its_services(app, world, admins):
    svc = make_service(app, world.town_id)
    before = state(app)
    with app.app_context():
        s = get_db().session
        town = s.get(Town, world.town_id)
        accounts = service_account_service()
        for email in (world.staff, OTHER_ADMIN, world.customer):  # staff is not enough
            user = world.user(email)
            for call in (
                lambda user=user: accounts.accounts(user, town),
                lambda user=user: accounts.rotate(user, town, svc.id),
                lambda user=user: accounts.revoke(user, town, svc.id, 1),
                lambda user=user: accounts.create(
                    user, town, name_ja="x", name_en="x", programme_ids=[THANKS], daily_budget=1
                ),
            ):
                with pytest.raises(AppError) as err:
                    call()
                assert err.value.status == 403
        with pytest.raises(AppError) as err:
            accounts.accounts(None, town)
        assert err.value.status == 401
        # The other town's admin cannot reach this town's service through their own town.
        other = s.get(Town, world.other_town_id)
        with pytest.raises(AppError) as err:
            accounts.rotate(world.user(OTHER_ADMIN), other, svc.id)
        assert err.value.status == 404
    assert state(app) == before
