"""Holders own what they bought (issue 15 §4): a custodial holder gives a card to another person
or moves it to their own wallet after typing the password again, through the relayer; the new
holder sees it with its perks and uses left; every refusal changes nothing; ten sends at once
are one transfer. And the wallet key export page on /me."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from eth_account import Account
from flask import Flask

from backend.accounts.models import User
from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.shop.gifts import GIVE
from backend.shop.models import Collection, Gift
from backend.shop.services import gift_service
from tests.concurrency import at_once, in_app
from tests.shop.shop_helpers import PASSWORD, Api, bought_card, confirm_email, contract, drive

CARD = "towns.sarabetsu.collections.ambassador"


def _form(api: Api, path: str) -> dict[str, str]:
    html = api.get(path).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    key = re.search(r'name="request_key" value="([^"]+)"', html)
    assert token, html[:400]
    return {"csrf_token": token.group(1), **({"request_key": key.group(1)} if key else {})}


def _give_path(token: dict[str, Any]) -> str:
    return f"/my/collection/{token['collection_id']}/{token['token_id']}/give"


def _address(user: dict[str, Any]) -> str:
    (built_in,) = [a["address"] for a in user["addresses"] if a["kind"] == "custodial"]
    return built_in


def _friend(app: Flask, email: str = "friend@example.com") -> dict[str, Any]:
    """Someone who signed up and confirmed their address: their user JSON."""
    user = Api(app.test_client()).signup(email)["user"]
    confirm_email(app, email)
    return user


def _gifts(app: Flask) -> list[Gift]:
    with app.app_context():
        return list(get_db().session.scalars(sa.select(Gift)))


def _counts(app: Flask) -> tuple[int, int, int]:
    with app.app_context():
        s = get_db().session
        return (
            s.scalar(sa.select(sa.func.count()).select_from(Gift)),
            s.scalar(sa.select(sa.func.count()).select_from(OutboxTx)),
            s.scalar(
                sa.select(sa.func.count())
                .select_from(AuditLog)
                .where(AuditLog.action == "nft.gift")
            ),
        )


def test_a_card_given_by_email_arrives_with_its_perks_and_leaves_the_giver(shop_app, w3, deployed):
    fan, token = bought_card(shop_app, w3)
    friend = Api(shop_app.test_client())
    friend_address = _address(_friend(shop_app))
    assert (
        friend.post(
            "/api/auth/login", {"email": "friend@example.com", "password": PASSWORD}
        ).status_code
        == 200
    )
    path = _give_path(token)

    page = fan.get("/my/collection").get_data(as_text=True)
    assert f'href="{path}"' in page  # the card offers "Give or move"
    resp = fan.client.post(
        path,
        data={
            **_form(fan, path),
            "kind": "give",
            "recipient": "Friend@Example.com",
            "password": PASSWORD,
        },
    )
    assert resp.status_code == 302 and resp.headers["Location"] == "/my/collection"
    assert "on its way" in fan.get("/my/collection", headers={"Accept-Language": "en"}).get_data(
        as_text=True
    )

    drive(shop_app, w3)
    card = contract(w3, deployed, CARD, "FanCollection")
    assert card.functions.ownerOf(token["token_id"]).call() == friend_address

    (theirs,) = friend.get("/api/shop/my/collection").get_json()["tokens"]
    assert theirs["token_id"] == token["token_id"]
    assert [p["uses_left"] for p in theirs["perks"]] == [p["uses_left"] for p in token["perks"]]
    html = friend.get("/my/collection", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "uses left" in html
    assert fan.get("/api/shop/my/collection").get_json()["tokens"] == []

    (gift,) = _gifts(shop_app)
    with shop_app.app_context():
        gift_service().refresh([get_db().session.merge(gift)])
    assert _gifts(shop_app)[0].state == "done"
    with shop_app.app_context():
        audit = get_db().session.scalar(sa.select(AuditLog).where(AuditLog.action == "nft.gift"))
    assert audit.details["to"] == friend_address and audit.details["token_id"] == token["token_id"]


def test_moving_to_ones_own_wallet_sends_it_there(shop_app, w3, deployed):
    fan, token = bought_card(shop_app, w3)
    own = Account.create().address
    path = _give_path(token)
    resp = fan.client.post(
        path, data={**_form(fan, path), "kind": "move", "recipient": own, "password": PASSWORD}
    )
    assert resp.status_code == 302
    drive(shop_app, w3)
    card = contract(w3, deployed, CARD, "FanCollection")
    assert card.functions.ownerOf(token["token_id"]).call() == own


@pytest.mark.parametrize(
    ("fields", "status", "text"),
    [
        ({"recipient": "friend@example.com", "password": "wrong"}, 401, "password is incorrect"),
        ({"recipient": "nobody@example.com", "password": PASSWORD}, 400, "Nobody with an account"),
        # Signed up with this address but never confirmed it: it could be anyone's.
        ({"recipient": "unconfirmed@example.com", "password": PASSWORD}, 400, "has confirmed"),
        ({"recipient": "0x1234", "password": PASSWORD}, 400, "not a wallet address"),
        ({"recipient": "", "password": PASSWORD}, 400, "Give the e-mail address"),
        ({"recipient": "fan@example.com", "password": PASSWORD}, 400, "your own account"),
    ],
)
def test_refusals_say_why_and_send_nothing(shop_app, w3, fields, status, text):
    fan, token = bought_card(shop_app, w3)
    _friend(shop_app)
    confirm_email(shop_app, "fan@example.com")  # giving to oneself is refused for itself
    Api(shop_app.test_client()).signup("unconfirmed@example.com")
    path = _give_path(token)
    before = _counts(shop_app)
    resp = fan.client.post(
        path,
        data={**_form(fan, path), "kind": "give", **fields},
        headers={"Accept-Language": "en"},
    )
    assert resp.status_code == status
    assert text in resp.get_data(as_text=True)
    assert _counts(shop_app) == before


def test_someone_elses_card_and_a_soulbound_card_cannot_be_given(shop_app, w3):
    fan, token = bought_card(shop_app, w3)
    path = _give_path(token)
    other = Api(shop_app.test_client())
    _friend(shop_app, "other@example.com")
    other.post("/api/auth/login", {"email": "other@example.com", "password": PASSWORD})
    assert other.get(path).status_code == 404  # not theirs: not even the form
    assert other.client.post(path, data={"recipient": "x@example.com"}).status_code in (400, 404)
    assert shop_app.test_client().get(path).status_code == 302  # signed out: log in first

    with shop_app.app_context():
        session = get_db().session
        session.execute(sa.update(Collection).values(soulbound=True))
        session.commit()
    before = _counts(shop_app)
    resp = fan.client.post(
        path,
        data={**_form(fan, path), "recipient": "other@example.com", "password": PASSWORD},
        headers={"Accept-Language": "en"},
    )
    assert resp.status_code == 409 and "cannot be given or moved" in resp.get_data(as_text=True)
    assert _counts(shop_app) == before
    assert 'data-give="' not in fan.get("/my/collection").get_data(as_text=True)


def test_the_same_form_twice_is_one_gift(shop_app, w3):
    fan, token = bought_card(shop_app, w3)
    _friend(shop_app)
    path = _give_path(token)
    form = {**_form(fan, path), "recipient": "friend@example.com", "password": PASSWORD}
    assert fan.client.post(path, data=form).status_code == 302
    assert fan.client.post(path, data=form).status_code == 302
    assert _counts(shop_app)[0] == 1 and _counts(shop_app)[2] == 1


def test_ten_sends_of_one_card_at_once_are_one_transfer(any_db_shop, w3):
    """Ten different forms (ten tabs) for one card at once: one gift, one outbox row."""
    shop_app = any_db_shop
    fan, token = bought_card(shop_app, w3)
    _friend(shop_app)
    cid = token["collection_id"]
    fan_id = fan.get("/api/accounts/me").get_json()["user"]["id"]
    before = _counts(shop_app)

    def send(n: int):
        def call() -> int:

            svc = gift_service()
            user = get_db().session.get(User, fan_id)
            return svc.give(
                user,
                cid,
                token["token_id"],
                recipient="friend@example.com",
                password=PASSWORD,
                request_key=f"tab-{n}",
                kind=GIVE,
            ).id

        return in_app(shop_app, call)

    answers = at_once([send(n) for n in range(10)])
    ids = {a for a in answers if isinstance(a, int)}
    refused = [a for a in answers if not isinstance(a, int)]
    assert len(ids) == 1, answers
    assert all(getattr(r, "code", "") == "gift_refused" for r in refused), refused
    after = _counts(shop_app)
    assert (after[0] - before[0], after[1] - before[1], after[2] - before[2]) == (1, 1, 1)


def test_export_key_page_needs_the_password_and_the_box_and_is_not_cached(shop_app, w3):
    fan = Api(shop_app.test_client())
    me = fan.signup("keys@example.com")["user"]
    me_page = fan.get("/me").get_data(as_text=True)
    assert 'href="/me/key"' in me_page
    for data, status in (
        ({"password": PASSWORD}, 400),  # the box not ticked
        ({"password": "wrong", "understood": "yes"}, 401),
    ):
        resp = fan.client.post("/me/key", data={**_form(fan, "/me/key"), **data})
        assert resp.status_code == status
        assert 'data-testid="export-key"' not in resp.get_data(as_text=True)
    with shop_app.app_context():
        exports = get_db().session.scalar(
            sa.select(sa.func.count()).select_from(AuditLog).where(AuditLog.action == "key.export")
        )
    assert exports == 0

    resp = fan.client.post(
        "/me/key", data={**_form(fan, "/me/key"), "password": PASSWORD, "understood": "yes"}
    )
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    html = resp.get_data(as_text=True)
    key = re.search(r'data-testid="export-key">(0x[0-9a-f]{64})<', html).group(1)
    assert Account.from_key(key).address == _address(me)
