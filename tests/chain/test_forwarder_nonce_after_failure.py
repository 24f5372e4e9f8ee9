"""A user's relayed request that fails leaves their forwarder nonce unused on chain
(`ERC2771Forwarder.execute` reverts as a whole when the call fails). The user's next requests
must still be mined: they are signed with the chain's nonce, not with a counter that moved on.
Before the fix every later request of that user reverted on the forwarder, for ever."""
# ruff: noqa: F811  (pytest fixtures imported from _outbox_fixtures are used as arguments)

from __future__ import annotations

import pytest
from flask import Flask

from backend.chain.forwarder import ForwardRequest, LocalSigner
from backend.chain.outbox import ContractCall, Sender, outbox_service
from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from tests.chain._outbox_fixtures import (  # noqa: F401  (fixtures)
    POINTS,
    chain,
    forwarder,
    give_points,
    outbox_app,
    points,
    settle,
    user,
)
from tests.concurrency import n_at_once

RECIPIENT = "0x000000000000000000000000000000000000dEaD"


def _pay(app: Flask, signer: LocalSigner, key: str, amount: int) -> int:
    with app.app_context():
        session = get_db().session
        tx = outbox_service().enqueue(
            session,
            ContractCall(POINTS, "transfer", [RECIPIENT, amount]),
            sender=Sender.user(signer, town_id=1, user_id=1),
            key=key,
        )
        session.commit()
        return tx.id


def _state(app: Flask, tx_id: int) -> str:
    with app.app_context():
        return get_db().session.get(OutboxTx, tx_id).state


@pytest.fixture
def failed_once(outbox_app, chain, anvil, deployed, user, any_db_url):  # noqa: F811
    """An app whose user holds 1,000 points and has just had a transfer of 5,000 fail."""
    app = outbox_app(database_url=any_db_url)
    give_points(chain, deployed, anvil, user.address, 1_000)
    too_much = _pay(app, user, "too-much", 5_000)
    settle(app, chain)
    assert _state(app, too_much) in ("reverted", "failed")
    assert forwarder(chain, deployed).functions.nonces(user.address).call() == 0
    return app


def test_the_next_request_after_a_failed_one_is_mined(failed_once, chain, deployed, user):
    contract = points(chain, deployed)
    before = contract.functions.balanceOf(RECIPIENT).call()

    ok = _pay(failed_once, user, "after", 100)
    settle(failed_once, chain)

    assert _state(failed_once, ok) == "confirmed"
    assert contract.functions.balanceOf(RECIPIENT).call() == before + 100
    assert forwarder(chain, deployed).functions.nonces(user.address).call() == 1
    # and the one after it continues from there (no re-read needed, no gap)
    again = _pay(failed_once, user, "after-2", 50)
    settle(failed_once, chain)
    assert _state(failed_once, again) == "confirmed"
    assert contract.functions.balanceOf(RECIPIENT).call() == before + 150


def test_ten_requests_at_once_after_a_failed_one_are_all_mined(failed_once, chain, deployed, user):
    contract = points(chain, deployed)
    before = contract.functions.balanceOf(RECIPIENT).call()

    def request(i: int) -> int:
        session = get_db().session
        tx = outbox_service().enqueue(
            session,
            ContractCall(POINTS, "transfer", [RECIPIENT, 10 + i]),
            sender=Sender.user(user, town_id=1, user_id=1),
            key=f"at-once-{i}",
        )
        session.commit()
        return tx.id

    answers = n_at_once(failed_once, 10, request)
    ids = [a for a in answers if not isinstance(a, BaseException)]
    assert len(ids) == 10, answers
    with failed_once.app_context():
        nonces = sorted(get_db().session.get(OutboxTx, i).forward_request["nonce"] for i in ids)
    assert nonces == list(range(10))  # from the chain's nonce, no gap, no twice
    settle(failed_once, chain, rounds=4)

    assert {_state(failed_once, i) for i in ids} == {"confirmed"}
    assert contract.functions.balanceOf(RECIPIENT).call() == before + sum(10 + i for i in range(10))


def test_an_own_wallet_request_prepared_after_a_failed_one_is_mined(
    failed_once, chain, deployed, user
):
    contract = points(chain, deployed)
    before = contract.functions.balanceOf(RECIPIENT).call()
    with failed_once.app_context():
        session = get_db().session
        svc = outbox_service()
        prepared = svc.prepare_forward_request(
            session,
            user_address=user.address,
            contract=POINTS,
            function="transfer",
            args=[RECIPIENT, 70],
        )
        assert prepared["request"]["nonce"] == 0  # the chain's, not the counter's 1
        signature = user.sign_typed_data(prepared["typed_data"]).signature.hex()
        request = ForwardRequest.from_json(
            {**prepared["request"], "signature": "0x" + signature.removeprefix("0x")}
        )
        tx = svc.enqueue(
            session,
            ContractCall(POINTS, "transfer", [RECIPIENT, 70]),
            sender=Sender.signed(request, town_id=1, user_id=1),
            key="own-wallet",
        )
        session.commit()
        tx_id = tx.id
    settle(failed_once, chain)

    assert _state(failed_once, tx_id) == "confirmed"
    assert contract.functions.balanceOf(RECIPIENT).call() == before + 70
