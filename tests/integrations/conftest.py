"""Integrations fixtures: the issuing world (Sarabetsu and Lake Toya with staff, shops and
customers on deployed points) plus an admin of each town, and helpers to make a service with
its key and to read what a refused request must leave unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from backend.accounts.roles import ADMIN, grant_town_role
from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.integrations.models import ApiIssuance, ServiceAccount, ServiceApiKey
from backend.integrations.services import service_account_service
from backend.issuing.models import IssuanceBatch, IssuanceChunk, IssuanceRow
from tests.issuing import conftest as issuing
from tests.merchants.conftest import World, _signup

app = issuing.app
world = issuing.world
__all__ = ["app", "world"]

ADMIN_EMAIL = "admin@example.com"
OTHER_ADMIN = "admin@other.example"
THANKS = 3  # the thank-you programme every demo town deploys


@dataclass
class Service:
    id: int
    key: str
    town_id: int


@pytest.fixture
def admins(app: Flask, world: World) -> tuple[str, str]:
    """An admin of Sarabetsu and one of Lake Toya."""
    with app.app_context():
        grant_town_role(_signup(app, ADMIN_EMAIL), world.town_id, ADMIN)
        grant_town_role(_signup(app, OTHER_ADMIN), world.other_town_id, ADMIN)
        get_db().session.commit()
    return ADMIN_EMAIL, OTHER_ADMIN


def make_service(
    app: Flask,
    town_id: int,
    *,
    name: str = "Car share",
    daily: int = 10_000,
    monthly: int | None = None,
    cap: int | None = None,
    programmes: tuple[int, ...] = (THANKS,),
) -> Service:
    """A service of the town made as the operators' command does, with its first key."""
    from backend.regions.models import Town

    with app.app_context():
        svc = service_account_service()
        account, key = svc.create(
            None,
            get_db().session.get(Town, town_id),
            name_ja=f"{name}（ja）",
            name_en=name,
            programme_ids=programmes,
            daily_budget=daily,
            monthly_budget=monthly,
            cap_per_issuance=cap,
            cli=True,
        )
        return Service(account.id, key.text, town_id)


def state(app: Flask) -> dict[str, Any]:
    """What a refused request must leave unchanged: row counts of every table it may touch."""
    with app.app_context():
        s = get_db().session
        return {
            m.__tablename__: int(s.scalar(sa.select(sa.func.count()).select_from(m)) or 0)
            for m in (
                ServiceAccount,
                ServiceApiKey,
                ApiIssuance,
                IssuanceBatch,
                IssuanceRow,
                IssuanceChunk,
                OutboxTx,
                AuditLog,
            )
        }
