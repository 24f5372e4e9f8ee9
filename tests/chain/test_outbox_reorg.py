"""Deep reorgs under the outbox (issue 10 §4, §5): confirmed and pending relayed transactions
taken off the chain by evm_revert of 1 to 10 blocks are sent again, no nonce gap remains and the
next request is mined; a reset chain raises an alert instead; receipts wait for the per-chain
confirmations the indexer uses."""
# ruff: noqa: F811  (pytest fixtures imported from _outbox_fixtures are used as arguments)

from __future__ import annotations

import pytest
import sqlalchemy as sa
from eth_account import Account

from backend.chain.errors import RpcError
from backend.chain.outbox import ContractCall, Sender, outbox_service
from backend.chain.outbox_models import OutboxAlert, OutboxTx, OutboxTxEvent
from backend.chain.outbox_recovery import recover_reorged
from backend.chain.registry import load_deployments
from backend.core.db import get_db
from tests.chain._outbox_fixtures import (  # noqa: F401  (fixtures)
    POINTS,
    PROGRAMME,
    chain,
    give_points,
    mine,
    node_answering,
    outbox_app,
    points,
    settle,
    user,
)
from tests.chain._reorg_helpers import drive, no_automine, nonce_gap, revert, rpc, snapshot
from tests.chain_admin import role_address, role_key

RECIPIENT = "0x000000000000000000000000000000000000c0DE"


def _deployments(app):
    with app.app_context():
        return load_deployments(
            app.extensions["settings"].deployments_dir, outbox_service().chain_id
        )


def _pay(session, signer, key, amount):
    return outbox_service().enqueue(
        session,
        ContractCall(POINTS, "transfer", [RECIPIENT, amount]),
        sender=Sender.user(signer, town_id=1, user_id=1),
        key=key,
    )


def _issue(session, key, amount):
    return outbox_service().enqueue(
        session,
        ContractCall(POINTS, "issue", [RECIPIENT, amount, PROGRAMME, "reorg test"]),
        sender=Sender.role("issuer", town_id=1),
        key=key,
    )


def _issued_and_settled(app, w3, key, amount) -> None:
    """Points issued under `key`, sent, mined and settled."""
    with app.app_context():
        session = get_db().session
        _issue(session, key, amount)
        session.commit()
    settle(app, w3)


def _one_block(app, w3) -> None:
    """Broadcast every queued row and mine them all in one block; read the receipts."""
    with no_automine(w3), app.app_context():
        svc, session = outbox_service(), get_db().session
        for sender in svc.senders_with_work(session):
            svc.send_pending(session, sender)
        mine(w3)
        svc.check_receipts(session)


def _states(app) -> dict[str, str]:
    with app.app_context():
        session = get_db().session
        out = {t.idempotency_key: t.state for t in session.scalars(sa.select(OutboxTx))}
        session.commit()
        return out


def _all_confirmed(app, keys) -> bool:
    states = _states(app)
    return all(states.get(k) == "confirmed" for k in keys)


@pytest.mark.parametrize("depth", range(1, 11))
def test_a_reorg_of_confirmed_and_pending_relayed_transactions_leaves_no_gap(
    outbox_app, chain, anvil, user, depth
):
    app = outbox_app()
    deployed = _deployments(app)
    contract = points(chain, deployed)
    give_points(chain, deployed, anvil, user.address, 10_000)
    relayer = Account.from_key(anvil.keys[7]).address
    with app.app_context():
        session = get_db().session
        _pay(session, user, "warm-up", 1)
        session.commit()
    settle(app, chain)
    base = contract.functions.balanceOf(RECIPIENT).call()
    snap = snapshot(chain)
    # `depth` blocks, each with one confirmed relayed payment (and an admin issue in the first).
    confirmed = [f"pay-{i}" for i in range(depth)]
    for i, key in enumerate(confirmed):
        with app.app_context():
            session = get_db().session
            _pay(session, user, key, 10 + i)
            if i == 0:
                _issue(session, "issue-0", 500)
            session.commit()
        _one_block(app, chain)
    assert _all_confirmed(app, [*confirmed, "issue-0"])
    head_before = chain.eth.block_number
    # Two more payments broadcast but not mined when the chain is rewound.
    pending = ["pending-0", "pending-1"]
    with no_automine(chain):
        with app.app_context():
            session = get_db().session
            for j, key in enumerate(pending):
                _pay(session, user, key, 100 + j)
            session.commit()
            svc = outbox_service()
            svc.send_pending(session, relayer)
        assert {_states(app)[k] for k in pending} == {"sent"}
        revert(chain, snap)
        assert head_before - chain.eth.block_number == depth
    assert contract.functions.balanceOf(RECIPIENT).call() == base
    assert nonce_gap(app, chain, relayer) == depth + 2

    # The beat rounds bring every transaction back on chain, each exactly once.
    everything = [*confirmed, "issue-0", *pending]
    assert drive(app, chain, lambda: _all_confirmed(app, everything))
    expected = base + sum(10 + i for i in range(depth)) + 500 + 100 + 101
    assert contract.functions.balanceOf(RECIPIENT).call() == expected
    assert nonce_gap(app, chain, relayer) == 0
    with app.app_context():
        session = get_db().session
        reasons = session.scalars(
            sa.select(OutboxTxEvent.reason).where(OutboxTxEvent.from_state == "confirmed")
        ).all()
        assert len(reasons) == depth + 1 and all("reorg" in r for r in reasons)
        assert not session.scalars(
            sa.select(OutboxAlert).where(OutboxAlert.kind == "chain_reset")
        ).all()
        # The next request is mined.
        _pay(session, user, "after", 7)
        session.commit()
    assert drive(app, chain, lambda: _all_confirmed(app, ["after"]))
    assert contract.functions.balanceOf(RECIPIENT).call() == expected + 7
    assert nonce_gap(app, chain, relayer) == 0


def test_without_recovery_the_relayer_stays_stuck(outbox_app, chain, anvil, user):
    """What 14f85a7 did: send, bump and receipts alone never close the gap."""
    app = outbox_app()
    give_points(chain, _deployments(app), anvil, user.address, 1_000)
    relayer = Account.from_key(anvil.keys[7]).address
    with app.app_context():
        _pay(get_db().session, user, "warm-up", 1)
        get_db().session.commit()
    settle(app, chain)
    snap = snapshot(chain)
    for i in range(3):
        with app.app_context():
            _pay(get_db().session, user, f"pay-{i}", 1)
            get_db().session.commit()
        settle(app, chain, rounds=1)
    revert(chain, snap)
    with app.app_context():
        _pay(get_db().session, user, "after", 1)
        get_db().session.commit()
    assert not drive(app, chain, lambda: _all_confirmed(app, ["after"]), recover=False, rounds=4)
    assert nonce_gap(app, chain, relayer) == 4
    assert drive(app, chain, lambda: _all_confirmed(app, ["after"]))
    assert nonce_gap(app, chain, relayer) == 0


def test_a_nonce_taken_on_the_new_branch_fails_its_row_and_the_rest_is_mined(
    outbox_app, chain, anvil
):
    app = outbox_app()
    issuer = role_address("issuer")
    contract = points(chain, _deployments(app))
    with app.app_context():
        _issue(get_db().session, "warm-up", 1)
        get_db().session.commit()
    settle(app, chain)
    snap = snapshot(chain)
    for i in range(3):
        with app.app_context():
            _issue(get_db().session, f"issue-{i}", 10 + i)
            get_db().session.commit()
        settle(app, chain, rounds=1)
    base_states = _states(app)
    assert {base_states[f"issue-{i}"] for i in range(3)} == {"confirmed"}
    with app.app_context():
        first = get_db().session.scalar(
            sa.select(OutboxTx.nonce).where(OutboxTx.idempotency_key == "issue-0")
        )
        get_db().session.commit()
    revert(chain, snap)
    before = contract.functions.balanceOf(RECIPIENT).call()
    # On the new branch, the issuer key (used elsewhere) spends issue-0's nonce itself.
    foreign = Account.sign_transaction(
        {"to": issuer, "value": 0, "gas": 21_000, "maxFeePerGas": 10**11,
         "maxPriorityFeePerGas": 10**9, "nonce": first, "chainId": chain.eth.chain_id},
        role_key("issuer"),
    )  # fmt: skip
    rpc(chain, "eth_sendRawTransaction", ["0x" + foreign.raw_transaction.hex()])
    mine(chain)
    assert drive(
        app,
        chain,
        lambda: _states(app)["issue-0"] == "failed" and _all_confirmed(app, ["issue-1", "issue-2"]),
    )
    assert contract.functions.balanceOf(RECIPIENT).call() == before + 11 + 12
    assert nonce_gap(app, chain, issuer) == 0


def test_a_chain_reset_raises_an_alert_and_sends_nothing(outbox_app, chain, anvil):
    app = outbox_app(outbox_max_reorg_depth=3)
    issuer = role_address("issuer")
    with app.app_context():
        _issue(get_db().session, "warm-up", 1)
        get_db().session.commit()
    settle(app, chain)
    snap = snapshot(chain)
    for i in range(5):
        with app.app_context():
            _issue(get_db().session, f"issue-{i}", 1)
            get_db().session.commit()
        settle(app, chain, rounds=1)
    revert(chain, snap)
    head = chain.eth.block_number
    with app.app_context():
        session = get_db().session
        report = recover_reorged(outbox_service(), session)
        assert report.chain_reset and report.reopened == 0 and report.rebroadcast == 0
        alerts = session.scalars(
            sa.select(OutboxAlert).where(
                OutboxAlert.kind == "chain_reset", OutboxAlert.resolved_at.is_(None)
            )
        ).all()
        assert len(alerts) == 1 and "nothing is re-sent" in alerts[0].message
        session.commit()
    assert chain.eth.block_number == head
    assert chain.eth.get_transaction_count(issuer) == chain.eth.get_transaction_count(
        issuer, "pending"
    )
    assert {_states(app)[f"issue-{i}"] for i in range(5)} == {"confirmed"}  # left for a human


def test_receipts_wait_for_the_chains_own_confirmations(outbox_app, chain, anvil):
    """CONFIRMATIONS=0 but CHAIN_CONFIRMATIONS sets 3 for this chain: the outbox waits for 3,
    exactly as the indexer does (Settings.confirmations_for)."""
    app = outbox_app(confirmations=0, chain_confirmations={chain.eth.chain_id: 3})
    with app.app_context():
        session = get_db().session
        assert app.extensions["settings"].confirmations_for(chain.eth.chain_id) == 3
        tx = _issue(session, "issue", 5)
        session.commit()
        svc = outbox_service()
        svc.send_pending(session, tx.sender_address)  # automine: mined in this block
        tx_id = tx.id
        for _ in range(2):
            svc.check_receipts(session)
            assert session.get(OutboxTx, tx_id).state == "sent"
            mine(chain)
        svc.check_receipts(session)
        assert session.get(OutboxTx, tx_id).state == "sent"  # 2 blocks on top: not yet
        mine(chain)
        svc.check_receipts(session)
        assert session.get(OutboxTx, tx_id).state == "confirmed"


def test_without_a_reorg_recovery_leaves_work_in_flight_alone(outbox_app, chain, anvil):
    """Rows in the pool above the chain's nonce are ordinary work: recovery neither re-sends
    them nor moves their sent_block (which would keep bump_stuck from ever re-pricing them)."""
    app = outbox_app()
    _issued_and_settled(app, chain, "warm-up", 1)
    with no_automine(chain), app.app_context():
        svc, session = outbox_service(), get_db().session
        tx = _issue(session, "in-flight", 2)
        session.commit()
        svc.send_pending(session, tx.sender_address)
        tx_id = tx.id
        sent_block = session.get(OutboxTx, tx_id).sent_block
        report = recover_reorged(svc, session)
        assert (report.reopened, report.rebroadcast, report.fillers) == (0, 0, 0)
        row = session.get(OutboxTx, tx_id)
        assert (row.state, row.sent_block) == ("sent", sent_block)
        session.commit()


def test_a_chain_without_the_forwarders_deployment_raises_chain_reset(
    outbox_app, chain, anvil, tmp_path
):
    """RPC_URL pointing at another chain (or a reset one where the contracts were deployed
    again elsewhere): the forwarder's recorded deployment transaction is not in its block, so
    nothing is re-sent and `chain_reset` is raised."""
    import json
    import shutil

    app = outbox_app()
    source = app.extensions["settings"].deployments_dir
    shutil.copytree(source, tmp_path / "deployments")
    path = tmp_path / "deployments" / f"{chain.eth.chain_id}.json"
    data = json.loads(path.read_text())
    data["contracts"]["FurusatoForwarder"]["tx_hash"] = "0x" + "ab" * 32
    path.write_text(json.dumps(data))
    with app.app_context():
        _issue(get_db().session, "warm-up", 1)
        get_db().session.commit()
    settle(app, chain)
    other = outbox_app(deployments_dir=tmp_path / "deployments")
    with other.app_context():
        session = get_db().session
        report = recover_reorged(outbox_service(), session)
        assert report.chain_reset and report.rebroadcast == 0
        alert = session.scalars(
            sa.select(OutboxAlert).where(OutboxAlert.kind == "chain_reset")
        ).one()
        assert "forwarder's deployment transaction" in alert.message
        session.commit()
    with app.app_context():  # the real deployments: the chain is the one they describe
        session = get_db().session
        assert not recover_reorged(outbox_service(), session).chain_reset
        alert = session.scalars(
            sa.select(OutboxAlert).where(OutboxAlert.kind == "chain_reset")
        ).one()
        assert alert.resolved_at is not None  # resolved by itself once the chain is back
        session.commit()


def test_a_confirmed_row_whose_receipt_is_not_given_is_left_confirmed(
    outbox_app, chain, anvil, any_db_url
):
    """Recovery fails a settled row ("another transaction used this nonce") only when the node
    has none of its transactions: a receipt it does not give (not readable yet, or an error)
    while the transaction is in a block leaves the row confirmed, so its call is not sent again.
    On PostgreSQL and SQLite."""
    app = outbox_app(database_url=any_db_url)
    _issued_and_settled(app, chain, "settled", 3)
    assert _states(app) == {"settled": "confirmed"}
    with app.app_context():
        svc, session = outbox_service(), get_db().session
        for answer in (None, RpcError(-32000, "upstream unavailable")):
            with node_answering(svc, {"eth_getTransactionReceipt": lambda *_, a=answer: a}):
                report = recover_reorged(svc, session)
            assert (report.failed, report.reopened) == (0, 0)
            assert _states(app) == {"settled": "confirmed"}
        # Both unanswered (an error by hash too): nothing is decided this pass either.
        error = {
            m: lambda *_: RpcError(-32000, "upstream unavailable")
            for m in ("eth_getTransactionReceipt", "eth_getTransactionByHash")
        }
        with node_answering(svc, error):
            assert recover_reorged(svc, session).failed == 0
        session.commit()
    assert _states(app) == {"settled": "confirmed"}
