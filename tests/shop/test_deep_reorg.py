"""Orders under a reorg deeper than the confirmations (issue 10 §4): a card order minted by the
minter key and a points order relayed for the buyer, both shown completed and in "my
collection", are taken off the chain with evm_revert. The outbox sends them again, the orders end
completed and the collection equals the chain's owners; a mint whose nonce went to another
transaction on the new branch is minted again (or refunded), never left processing."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from eth_account import Account

from backend.accounts.models import Address, User
from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.shop.models import Order
from backend.shop.services import payment_provider
from tests.chain._reorg_helpers import drive, nonce_gap, revert, rpc, snapshot
from tests.chain_admin import role_address
from tests.shop.shop_helpers import Api, contract, index_to_head, listing_id
from tests.shop.shop_helpers import drive as shop_drive


def _address(app, email: str) -> str:
    with app.app_context():
        return get_db().session.scalar(
            sa.select(Address.address).join(User).where(User.email == email)
        )


def _index_and_reconcile(app) -> None:
    from backend.shop.tasks import reconcile_orders

    with app.app_context():
        index_to_head(app)
        get_db().session.expire_all()
        reconcile_orders()
        get_db().session.remove()


def _mint_sender(app) -> tuple[str, str, int]:
    """(address, key, nonce) of the key that sent the (first) card mint."""
    from backend.chain.outbox import outbox_service

    with app.app_context():
        s = get_db().session
        row = s.scalar(
            sa.select(OutboxTx).where(OutboxTx.function == "mintPaidOffChain").order_by(OutboxTx.id)
        )
        out = (row.sender_address, outbox_service().keys.account(row.sender_address).key.hex(),
               int(row.nonce))  # fmt: skip
        s.commit()
        return out


def _status(app, public_id: str) -> str:
    with app.app_context():
        s = get_db().session
        status = s.scalar(sa.select(Order.status).where(Order.public_id == public_id))
        s.commit()
        return str(status)


def _card_order(app, api: Api, key: str) -> str:
    resp = api.post(
        "/api/shop/orders",
        {"listing_id": listing_id(app, "card"), "quantity": 1, "idempotency_key": key},
    )
    assert resp.status_code == 201, resp.get_json()
    public_id = resp.get_json()["order"]["id"]
    with app.app_context():
        payload, headers = payment_provider().signed_event(public_id, "paid", 5000)
    assert api.client.post("/api/payments/webhooks/test", data=payload, headers=headers).json == {
        "result": "processed"
    }
    return str(public_id)


def _owners_match_chain(app, w3) -> bool:
    """Every token the projection (what "my collection" reads) shows has that owner on chain."""
    from backend.chain.indexer_models import TokenOwner
    from backend.chain.registry import artifact

    with app.app_context():
        s = get_db().session
        rows = [(r.contract_address, int(r.token_id), r.owner) for r in s.scalars(
            sa.select(TokenOwner))]  # fmt: skip
        s.commit()
    abi = artifact("FanCollection").abi
    return bool(rows) and all(
        w3.eth.contract(address=c, abi=abi).functions.ownerOf(t).call() == o for c, t, o in rows
    )


@pytest.mark.parametrize("pad", [0, 5])
def test_orders_shown_completed_are_completed_again_after_a_deep_reorg(shop_app, w3, anvil, pad):
    app = shop_app
    api = Api(app.test_client())
    api.signup("fan@example.com")
    me = _address(app, "fan@example.com")
    deployed = app.extensions["chain"].deployments()
    points = contract(w3, deployed, "towns.sarabetsu.RegionPoints")
    points.functions.issue(me, 12_000, 2, "test").transact({"from": role_address("issuer")})
    rpc(w3, "anvil_mine", ["0x1"])
    snap = snapshot(w3)
    start = w3.eth.block_number
    card = _card_order(app, api, "reorg-card-0001")
    resp = api.post(
        "/api/shop/orders",
        {"listing_id": listing_id(app, "points"), "quantity": 1, "idempotency_key": "reorg-pts-1"},
    )
    assert resp.status_code == 201, resp.get_json()
    relayed = resp.get_json()["order"]["id"]
    # Both are completed once each one's transaction has its confirmations; how many rounds
    # that takes depends on which sender's transaction is mined first.
    assert drive(
        app,
        w3,
        lambda: (_status(app, card), _status(app, relayed)) == ("completed", "completed"),
        also=lambda: _index_and_reconcile(app),
    )
    assert len(api.get("/api/shop/my/collection").get_json()["tokens"]) == 2
    if pad:
        rpc(w3, "anvil_mine", [hex(pad)])
    depth = w3.eth.block_number - start
    revert(w3, snap)
    assert 1 <= depth <= 10
    _index_and_reconcile(app)
    assert (_status(app, card), _status(app, relayed)) == ("processing", "processing")
    assert api.get("/api/shop/my/collection").get_json()["tokens"] == []

    def consistent() -> bool:
        return (
            _status(app, card) == _status(app, relayed) == "completed"
            and len(api.get("/api/shop/my/collection").get_json()["tokens"]) == 2
        )

    assert drive(app, w3, consistent, also=lambda: _index_and_reconcile(app))
    assert _owners_match_chain(app, w3)
    assert points.functions.balanceOf(me).call() == 12_000 - 5_000  # paid once
    with app.app_context():
        s = get_db().session
        mints = s.scalars(sa.select(OutboxTx).where(OutboxTx.function == "mintPaidOffChain")).all()
        assert len(mints) == 1  # sent again, not minted twice
        s.commit()
    relayer = Account.from_key(app.extensions["settings"].relayer_private_keys).address
    minter = _mint_sender(app)[0]
    assert nonce_gap(app, w3, relayer) == nonce_gap(app, w3, minter) == 0
    # The next order is minted.
    nxt = _card_order(app, api, "reorg-card-0002")
    assert drive(app, w3, lambda: _status(app, nxt) == "completed",
                 also=lambda: _index_and_reconcile(app))  # fmt: skip


def test_a_mint_whose_nonce_was_taken_on_the_new_branch_is_minted_again(shop_app, w3, anvil):
    app = shop_app
    api = Api(app.test_client())
    api.signup("fan@example.com")
    snap = snapshot(w3)
    card = _card_order(app, api, "reorg-card-0003")
    shop_drive(app, w3, rounds=1)
    assert _status(app, card) == "completed"
    admin, admin_key, nonce = _mint_sender(app)
    revert(w3, snap)
    foreign = Account.sign_transaction(
        {"to": admin, "value": 0, "gas": 21_000, "maxFeePerGas": 10**11,
         "maxPriorityFeePerGas": 10**9, "nonce": nonce, "chainId": w3.eth.chain_id},
        admin_key,
    )  # fmt: skip
    rpc(w3, "eth_sendRawTransaction", ["0x" + foreign.raw_transaction.hex()])
    rpc(w3, "anvil_mine", ["0x1"])
    assert drive(
        app, w3, lambda: _status(app, card) == "completed", also=lambda: _index_and_reconcile(app)
    )
    with app.app_context():
        s = get_db().session
        states = sorted(
            s.scalars(
                sa.select(OutboxTx.state).where(OutboxTx.function == "mintPaidOffChain")
            ).all()
        )
        order = s.scalar(sa.select(Order).where(Order.public_id == card))
        assert states == ["confirmed", "failed"] and order.mint_attempts == 2
        s.commit()
    assert len(api.get("/api/shop/my/collection").get_json()["tokens"]) == 1
    assert nonce_gap(app, w3, admin) == 0
