"""Issuing fixtures: the merchants' world (Sarabetsu with staff, another town with its staff,
a customer), a second member of Sarabetsu's staff for four eyes, and helpers to upload a CSV
through the API and to read balances on chain."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from web3 import Web3

from backend.accounts.roles import STAFF, grant_town_role
from backend.chain.outbox_models import OutboxTx
from backend.chain.registry import artifact
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.issuing.models import IssuanceBatch, IssuanceChunk, IssuanceRow
from tests.merchants import conftest as merchants
from tests.merchants.conftest import Api, World, _signup

# The merchants' fixtures: Sarabetsu and another town, with staff, shops, clerks, customers.
app = merchants.app
world = merchants.world
__all__ = ["_signup", "app", "world"]

SECOND_STAFF = "second@example.com"


@pytest.fixture
def second_staff(app: Flask, world: World) -> str:
    """Another member of Sarabetsu's staff (the four-eyes approver)."""
    with app.app_context():
        user = _signup(app, SECOND_STAFF)
        grant_town_role(user, world.town_id, STAFF)
        get_db().session.commit()
    return SECOND_STAFF


def upload(
    api: Api,
    slug: str,
    data: bytes,
    *,
    reason: str = "River clean-up",
    key: str = "upload-1",
    programme_id: int = 3,
    name: str = "list.csv",
) -> Any:
    """POST a CSV to the issuing API (multipart, with the CSRF header)."""
    if api.token is None:
        api.token = api.client.get("/api/csrf").get_json()["csrf_token"]
    import io

    return api.client.post(
        f"/api/towns/{slug}/issuances",
        data={
            "file": (io.BytesIO(data), name),
            "programme_id": str(programme_id),
            "reason": reason,
            "idempotency_key": key,
        },
        content_type="multipart/form-data",
        headers={"X-CSRFToken": api.token},
    )


def counts(app: Flask) -> dict[str, int]:
    """What a refused request must leave unchanged."""
    with app.app_context():
        s = get_db().session
        return {
            m.__tablename__: int(s.scalar(sa.select(sa.func.count()).select_from(m)) or 0)
            for m in (IssuanceBatch, IssuanceRow, IssuanceChunk, OutboxTx, AuditLog)
        }


def chain_balance(w3: Web3, points: str, holder: str) -> int:
    c = w3.eth.contract(address=Web3.to_checksum_address(points), abi=artifact("RegionPoints").abi)
    return int(c.functions.balanceOf(Web3.to_checksum_address(holder)).call())


def fail_the_issue_batch_call(
    app: Flask, error: str = "execution reverted: EnforcedPause()"
) -> None:
    """The outbox gave up on the batch's issueBatch call (as after a revert), with `error`."""
    with app.app_context():
        s = get_db().session
        tx = s.scalar(sa.select(OutboxTx).where(OutboxTx.function == "issueBatch"))
        assert tx is not None
        tx.state, tx.error = "failed", error
        s.commit()
