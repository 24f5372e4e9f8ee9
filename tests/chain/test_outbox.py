"""The outbox state machine, idempotency, and the send / receipt / bump / cancel paths on anvil."""
# ruff: noqa: F811  (pytest fixtures imported from _outbox_fixtures are used as arguments)

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from backend.chain.outbox import (
    TRANSITIONS,
    AuditEntry,
    ContractCall,
    ErrorKind,
    IdempotencyConflict,
    IllegalTransition,
    Sender,
    Subject,
    TxState,
    classify_error,
    decode_revert,
    outbox_service,
    transition,
)
from backend.chain.outbox_models import OutboxTx, OutboxTxEvent
from backend.core.db import Base, get_db, utcnow
from backend.core.models import AuditLog
from tests.chain._outbox_fixtures import (  # noqa: F401  (fixtures)
    POINTS,
    PROGRAMME,
    chain,
    forwarder,
    give_points,
    mine,
    outbox_app,
    points,
    settle,
    user,
)
from tests.chain_admin import role_address

RECIPIENT = "0x000000000000000000000000000000000000bEEF"


# ---------------------------------------------------------------- the state machine


@pytest.fixture(scope="module")
def memory_session():
    engine = sa.create_engine("sqlite://")
    names = ("outbox_txs", "outbox_attempts", "outbox_tx_events")
    Base.metadata.create_all(engine, tables=[Base.metadata.tables[n] for n in names])
    with Session(engine) as session:
        yield session
    engine.dispose()


def _row(session: Session, state: TxState) -> OutboxTx:
    tx = OutboxTx(
        idempotency_key=f"k-{utcnow().timestamp()}-{state}",
        payload_hash="0x",
        state=state.value,
        sender_kind="issuer",
        sender_address="0x" + "00" * 20,
        contract=POINTS,
        function="issue",
        args=[],
        call_data="0x",
        value=0,
    )
    session.add(tx)
    session.flush()
    return tx


@pytest.mark.parametrize(
    ("old", "new"), list(itertools.product(TxState, TxState)), ids=lambda s: str(s)
)
def test_every_transition_is_allowed_or_refused_by_the_table(memory_session, old, new):
    tx = _row(memory_session, old)
    if new in TRANSITIONS[old]:
        transition(tx, new, "test")
        memory_session.flush()
        assert tx.state == new
        ev = memory_session.scalars(
            sa.select(OutboxTxEvent).where(OutboxTxEvent.tx_id == tx.id)
        ).one()
        assert (ev.from_state, ev.to_state, ev.reason) == (old.value, new.value, "test")
    else:
        with pytest.raises(IllegalTransition):
            transition(tx, new, "test")
        assert tx.state == old


def test_terminal_states_have_no_way_out_and_every_state_is_reachable():
    terminal = {s for s, nxt in TRANSITIONS.items() if not nxt}
    assert terminal == {
        TxState.CONFIRMED,
        TxState.REVERTED,
        TxState.CANCELLED,
        TxState.FAILED,
    }
    reachable = {TxState.QUEUED} | set().union(*TRANSITIONS.values())
    assert reachable == set(TxState)


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("already known", ErrorKind.ALREADY_KNOWN),
        ("transaction already imported", ErrorKind.ALREADY_KNOWN),
        ("nonce too low", ErrorKind.NONCE_TOO_LOW),
        ("nonce too low: next nonce 5, tx nonce 3", ErrorKind.NONCE_TOO_LOW),
        ("replacement transaction underpriced", ErrorKind.REPLACEMENT_UNDERPRICED),
        ("Insufficient funds for gas * price + value", ErrorKind.INSUFFICIENT_FUNDS),
        ("execution reverted: custom error 0xe450d38c", ErrorKind.REVERTED),
        ("header not found", ErrorKind.OTHER),
    ],
)
def test_node_errors_are_classified(message, kind):
    assert classify_error(message) is kind


def test_custom_errors_are_decoded_by_selector():
    assert decode_revert("0x" + "c2a9adb0".ljust(8, "0")) != ""
    data = "0xe450d38c" + "00" * 12 + "11" * 20 + hex(5)[2:].rjust(64, "0") + "0" * 63 + "9"
    assert decode_revert(data).startswith("ERC20InsufficientBalance(0x1111")
    assert decode_revert("0xdeadbeef") == "unknown error 0xdeadbeef"


# ---------------------------------------------------------------- enqueue


def _issue(svc, session, key="issue-1", amount=100, to=RECIPIENT, **kw: Any):
    return svc.enqueue(
        session,
        ContractCall(POINTS, "issue", [to, amount, PROGRAMME, "welcome"]),
        sender=Sender.role("issuer", town_id=1),
        key=key,
        **kw,
    )


def test_enqueue_is_idempotent_and_a_different_payload_is_a_conflict(outbox_app, chain):
    app = outbox_app()
    with app.app_context():
        svc, session = outbox_service(), get_db().session
        audit = AuditEntry("staff:1", "points.issue", "user", "42", 100, "welcome")
        first = _issue(svc, session, audit=audit)
        session.commit()
        again = _issue(svc, session, audit=audit)
        session.commit()
        assert again.id == first.id
        with pytest.raises(IdempotencyConflict):
            _issue(svc, session, amount=101)
        session.rollback()
        assert session.scalar(sa.select(sa.func.count()).select_from(OutboxTx)) == 1
        log = session.scalars(sa.select(AuditLog)).one()
        assert log.details["outbox_tx_id"] == first.id and int(log.amount) == 100
        events = session.scalars(sa.select(OutboxTxEvent.to_state)).all()
        assert events == ["queued"]


def test_enqueue_stores_the_business_row_that_sent_it(outbox_app, chain):
    app = outbox_app()
    with app.app_context():
        svc, session = outbox_service(), get_db().session
        with_subject = _issue(svc, session, key="subject-1", subject=Subject("charge", 42))
        without = _issue(svc, session, key="subject-2")
        session.commit()
        row = session.get(OutboxTx, with_subject.id)
        assert (row.subject_kind, row.subject_id) == ("charge", 42)
        row = session.get(OutboxTx, without.id)
        assert (row.subject_kind, row.subject_id) == (None, None)


def test_admin_call_goes_queued_sent_confirmed_with_history_and_town_gas(outbox_app, chain):
    app = outbox_app()
    contract = points(chain, _deployed(app))
    before = contract.functions.balanceOf(RECIPIENT).call()
    with app.app_context():
        svc, session = outbox_service(), get_db().session
        tx = _issue(svc, session)
        session.commit()
        tx_id = tx.id
    settle(app, chain)
    assert contract.functions.balanceOf(RECIPIENT).call() == before + 100
    with app.app_context():
        session = get_db().session
        tx = session.get(OutboxTx, tx_id)
        assert tx.state == "confirmed" and tx.fee_paid > 0 and tx.nonce is not None
        hist = session.scalars(
            sa.select(OutboxTxEvent.to_state)
            .where(OutboxTxEvent.tx_id == tx_id)
            .order_by(OutboxTxEvent.id)
        ).all()
        assert hist == ["queued", "sent", "confirmed"]
        assert outbox_service().gas_spent(session, "town", 1) == int(tx.fee_paid)


def _deployed(app):
    from backend.chain.registry import load_deployments

    s = app.extensions["settings"]
    with app.app_context():
        return load_deployments(s.deployments_dir, outbox_service().chain_id)


def test_a_call_that_would_revert_fails_before_sending_with_the_decoded_error(outbox_app, chain):
    app = outbox_app()
    with app.app_context():
        svc, session = outbox_service(), get_db().session
        tx = _issue(svc, session, amount=0)
        session.commit()
        svc.send_pending(session, tx.sender_address)
        session.refresh(tx)
        assert tx.state == "failed" and tx.nonce is None
        assert tx.error == "RegionPointsZeroAmount()"


def test_forwarded_user_request_runs_as_the_user_and_records_user_gas(
    outbox_app, chain, anvil, user
):
    app = outbox_app()
    deployed = _deployed(app)
    give_points(chain, deployed, anvil, user.address, 1_000)
    contract = points(chain, deployed)
    with app.app_context():
        svc, session = outbox_service(), get_db().session
        tx = svc.enqueue(
            session,
            ContractCall(POINTS, "transfer", [RECIPIENT, 250]),
            sender=Sender.user(user, town_id=1, user_id=7),
            key="pay-1",
        )
        session.commit()
        assert tx.sender_address == chain.eth.account.from_key(anvil.keys[7]).address
        assert tx.forward_request["nonce"] == 0
    assert chain.eth.get_balance(user.address) == 0  # the user never needs gas
    settle(app, chain)
    assert contract.functions.balanceOf(user.address).call() == 750
    assert contract.functions.balanceOf(RECIPIENT).call() >= 250
    assert forwarder(chain, deployed).functions.nonces(user.address).call() == 1
    with app.app_context():
        session = get_db().session
        tx = session.get(OutboxTx, tx.id)
        assert tx.state == "confirmed"
        assert outbox_service().gas_spent(session, "user", 7) == int(tx.fee_paid) > 0


def test_a_reverted_forwarded_request_is_decoded_from_the_target(outbox_app, chain, user):
    app = outbox_app()
    with app.app_context():
        svc, session = outbox_service(), get_db().session
        tx = svc.enqueue(
            session,
            ContractCall(POINTS, "transfer", [RECIPIENT, 5]),
            sender=Sender.user(user),
            key="pay-too-much",
        )
        session.commit()
    settle(app, chain)
    with app.app_context():
        tx = get_db().session.get(OutboxTx, tx.id)
        assert tx.state == "reverted"
        assert tx.error.startswith("ERC20InsufficientBalance(")


def test_a_stuck_transaction_is_repriced_and_mined_once(outbox_app, chain, anvil):
    app = outbox_app()
    contract = points(chain, _deployed(app))
    before = contract.functions.balanceOf(RECIPIENT).call()
    chain.provider.make_request("evm_setAutomine", [False])
    try:
        with app.app_context():
            svc, session = outbox_service(), get_db().session
            tx = _issue(svc, session, key="stuck")
            session.commit()
            svc.send_pending(session, tx.sender_address)
            first_fee = int(tx.max_fee_per_gas)
            assert svc.bump_stuck(session, stuck_blocks=0) == 1
            session.refresh(tx)
            assert tx.state == "replaced" and len(tx.attempts) == 2
            assert int(tx.max_fee_per_gas) * 8 >= first_fee * 9  # at least +12.5%
            assert tx.attempts[1].nonce == tx.attempts[0].nonce
        mine(chain)
        settle(app, chain, rounds=1)
    finally:
        chain.provider.make_request("evm_setAutomine", [True])
    assert contract.functions.balanceOf(RECIPIENT).call() == before + 100
    with app.app_context():
        tx = get_db().session.get(OutboxTx, tx.id)
        assert tx.state == "confirmed" and tx.tx_hash == tx.attempts[1].tx_hash


def test_past_its_deadline_a_sent_tx_is_cancelled_with_a_noop(outbox_app, chain, anvil):
    app = outbox_app()
    contract = points(chain, _deployed(app))
    before = contract.functions.balanceOf(RECIPIENT).call()
    relayer = role_address("issuer")
    chain.provider.make_request("evm_setAutomine", [False])
    try:
        with app.app_context():
            svc, session = outbox_service(), get_db().session
            tx = _issue(svc, session, key="late", deadline_seconds=3600)
            session.commit()
            svc.send_pending(session, tx.sender_address)
            tx.deadline_at = utcnow() - dt.timedelta(seconds=1)
            session.commit()
            svc.bump_stuck(session, stuck_blocks=0)
            assert [a.kind for a in tx.attempts] == ["call", "cancel"]
        mine(chain)
        settle(app, chain, rounds=1)
    finally:
        chain.provider.make_request("evm_setAutomine", [True])
    assert contract.functions.balanceOf(RECIPIENT).call() == before  # no effect
    with app.app_context():
        session = get_db().session
        tx = session.get(OutboxTx, tx.id)
        assert tx.state == "cancelled"
        assert chain.eth.get_transaction_count(relayer) == tx.nonce + 1  # nonce used, no gap


def test_a_queued_tx_past_its_deadline_is_cancelled_without_a_nonce(outbox_app, chain):
    app = outbox_app()
    with app.app_context():
        svc, session = outbox_service(), get_db().session
        tx = _issue(svc, session, key="expired", deadline_seconds=0)
        session.commit()
        report = svc.send_pending(session, tx.sender_address)
        assert report.cancelled == 1 and tx.state == "cancelled" and tx.nonce is None


def test_nonce_used_elsewhere_is_reconciled_without_a_gap(outbox_app, chain, anvil):
    app = outbox_app()
    issuer = role_address("issuer")
    with app.app_context():
        svc, session = outbox_service(), get_db().session
        _issue(svc, session, key="a")
        session.commit()
        svc.send_pending(session, issuer)  # the sender row now knows the chain's nonce
        # Someone uses the key outside the outbox: our next nonce is stale.
        chain.eth.send_transaction({"from": issuer, "to": issuer, "value": 0})
        mine(chain)
        _issue(svc, session, key="b")
        session.commit()
    settle(app, chain)
    with app.app_context():
        session = get_db().session
        rows = session.scalars(sa.select(OutboxTx).order_by(OutboxTx.id)).all()
        assert [r.state for r in rows] == ["confirmed", "confirmed"]
        assert rows[1].nonce == rows[0].nonce + 2
        assert chain.eth.get_transaction_count(issuer) == rows[1].nonce + 1


# ---------------------------------------------------------------------------- fast signing


def test_forward_request_digest_signing_matches_eth_account_typed_data():
    """sign_request's digest path (LocalSigner) gives eth_account's EIP-712 signature."""
    import random

    from eth_account import Account
    from eth_account.messages import encode_typed_data

    from backend.chain.forwarder import (
        ForwardRequest,
        LocalSigner,
        recover_signer,
        sign_request,
        typed_data,
    )

    rng = random.Random(7)
    for _ in range(25):
        account = Account.from_key(rng.randbytes(32))
        req = ForwardRequest(
            from_address=account.address,
            to=Account.from_key(rng.randbytes(32)).address,
            value=rng.randrange(2**64),
            gas=rng.randrange(10**7),
            nonce=rng.randrange(10**6),
            deadline=rng.randrange(2**48),
            data="0x" + rng.randbytes(rng.randrange(0, 200)).hex(),
        )
        chain_id, fwd = rng.choice([1, 31337, 2**40]), Account.from_key(rng.randbytes(32)).address
        full = typed_data(req, chain_id, fwd)
        expected = "0x" + bytes(account.sign_typed_data(full_message=full).signature).hex()
        signed = sign_request(LocalSigner(account.key), req, chain_id, fwd)
        assert signed.signature == expected
        assert recover_signer(signed, chain_id, fwd) == account.address
        message = encode_typed_data(full_message=full)
        assert Account.recover_message(message, signature=signed.signature) == account.address
    with pytest.raises(ValueError):
        recover_signer(ForwardRequest(**{**signed.to_json(), "signature": "0x1234"}), 1, fwd)


def test_fast_transaction_signing_matches_eth_account():
    import random

    import coincurve
    from eth_account import Account

    from backend.chain.outbox import sign_dynamic_fee_tx

    rng = random.Random(11)
    for data_len in (0, 1, 55, 56, 300, 70_000):
        account = Account.from_key(rng.randbytes(32))
        fields = {
            "chain_id": rng.choice([1, 31337, 2**40]),
            "nonce": rng.choice([0, 1, 127, 128, 2**20]),
            "to": Account.from_key(rng.randbytes(32)).address,
            "value": rng.choice([0, 1, 10**18]),
            "data": "0x" + (b"\x01" if data_len == 1 else rng.randbytes(data_len)).hex(),
            "gas": rng.choice([21_000, 10**6]),
            "max_fee": rng.randrange(1, 10**12),
            "tip": rng.randrange(0, 10**9),
        }
        raw, tx_hash = sign_dynamic_fee_tx(coincurve.PrivateKey(bytes(account.key)), **fields)
        ref = account.sign_transaction(
            {
                "type": 2,
                "chainId": fields["chain_id"],
                "nonce": fields["nonce"],
                "to": fields["to"],
                "value": fields["value"],
                "data": fields["data"],
                "gas": fields["gas"],
                "maxFeePerGas": fields["max_fee"],
                "maxPriorityFeePerGas": fields["tip"],
            }
        )
        assert raw == bytes(ref.raw_transaction)
        assert tx_hash == bytes(ref.hash)
