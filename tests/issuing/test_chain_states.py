"""How an issuance follows the chain: the recipient sees the points pending from the moment the
chunk is queued; a chunk the outbox gives up on (or that reverts) fails its rows and the batch
with the reason, and the page's JSON says so; and CHUNK_SIZE recipients fit one transaction
with room to spare (gas measured on anvil)."""

from __future__ import annotations

import secrets

from web3 import Web3

from backend.chain.registry import artifact
from backend.issuing.services import CHUNK_SIZE
from backend.points.programmes import THANKS
from backend.points.services import points_service
from tests.chain_admin import role_address
from tests.issuing.conftest import fail_the_issue_batch_call
from tests.merchants.conftest import run_chain

URL = "/api/towns/sarabetsu/issuances"


def _issue(world, key: str, amount: int = 400) -> int:  # type: ignore[no-untyped-def]
    staff = world.api(world.staff)
    r = staff.post(
        URL,
        {
            "rows": [{"recipient": world.customer, "amount": amount}],
            "programme_id": THANKS.programme_id,
            "reason": "Thanks",
            "idempotency_key": key,
        },
    )
    batch_id = int(r.get_json()["issuance"]["id"])
    assert staff.post(f"{URL}/{batch_id}/confirm").status_code == 200
    return batch_id


def test_points_are_pending_until_the_chain_confirms(app, world, w3):
    _issue(world, "pending-1", 400)
    with app.app_context():
        town = world.town()
        address = world.user(world.customer).addresses[0].address
        summary = points_service().summary(town, address)
        assert summary.pending_in == 400 and summary.confirmed == 0
        assert [h.pending for h in summary.history] == [True]
    run_chain(app, w3)
    with app.app_context():
        summary = points_service().summary(world.town(), address)
        assert summary.pending_in == 0 and summary.confirmed == 400


def test_a_failed_chunk_fails_its_rows_and_the_batch(app, world):
    batch_id = _issue(world, "fail-1")
    fail_the_issue_batch_call(app)
    body = world.api(world.staff).get(f"{URL}/{batch_id}").get_json()["issuance"]
    assert body["state"] == "failed"
    assert body["progress"]["failed"] == 1 and body["progress"]["percent"] == 100
    assert body["rows"][0]["status"] == "failed" and "EnforcedPause" in body["rows"][0]["error"]


def test_a_full_chunk_fits_one_transaction(app, world, w3):
    with app.app_context():
        points = world.town().points_address
    contract = w3.eth.contract(
        address=Web3.to_checksum_address(points), abi=artifact("RegionPoints").abi
    )
    recipients = [Web3.to_checksum_address("0x" + secrets.token_hex(20)) for _ in range(CHUNK_SIZE)]
    gas = contract.functions.issueBatch(
        recipients, [1000] * CHUNK_SIZE, THANKS.programme_id, THANKS.reason
    ).estimate_gas({"from": role_address("issuer")})
    block_limit = w3.eth.get_block("latest")["gasLimit"]
    print(f"issueBatch of {CHUNK_SIZE} new holders: {gas} gas (block limit {block_limit})")
    assert gas < block_limit // 2
