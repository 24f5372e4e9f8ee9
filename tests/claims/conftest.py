"""Claims fixtures: the merchants' world (Sarabetsu with staff, Lake Toya) on real anvil, with
mail going to a real SMTP server (tests/mail.py), and helpers to issue by e-mail through the
issuing API and to read holders' lots on chain."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from web3 import Web3

from backend.chain.outbox import outbox_service
from backend.chain.registry import artifact
from tests.merchants import conftest as merchants
from tests.merchants.conftest import Api

world = merchants.world
__all__ = ["world"]


@pytest.fixture
def app(make_app, deployed, smtp_server) -> Flask:
    app = make_app(**smtp_server.settings)
    with app.app_context():
        outbox_service().auto_dispatch = False  # tests drive the outbox themselves
    return app


def issue(staff: Api, recipient: str, amount: int, key: str, programme_id: int = 3) -> Any:
    """Preview a batch of one row through the issuing API (the answer's issuance)."""
    r = staff.post(
        "/api/towns/sarabetsu/issuances",
        {
            "rows": [{"recipient": recipient, "amount": amount}],
            "programme_id": programme_id,
            "reason": "Snow clearing",
            "idempotency_key": key,
        },
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    return r.get_json()["issuance"]


def lots(w3: Web3, points: str, holder: str) -> list[tuple[int, int]]:
    """(expiry day, amount) of each of the holder's lots, as the contract keeps them."""
    c = w3.eth.contract(address=Web3.to_checksum_address(points), abi=artifact("RegionPoints").abi)
    days, amounts = c.functions.lotsOf(Web3.to_checksum_address(holder)).call()
    return [(int(d), int(a)) for d, a in zip(days, amounts, strict=True)]
