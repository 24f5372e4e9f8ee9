"""`flask --app backend towns create` against a fresh chain and database: the town's contracts
go out through the outbox from the founder key, a welcome grant of the new town confirms on
chain (its programmes are active), the role hand-over leaves the founder with no role and the
timelock as admin (`roles check` passes), and a run interrupted after some steps continues on
the next run with the same addresses and no step sent twice."""

from __future__ import annotations

import re
import time

import sqlalchemy as sa
from eth_account import Account
from web3 import Web3

from backend.accounts.models import User
from backend.chain.outbox_models import OutboxAttempt, OutboxTx
from backend.chain.registry import artifact, load_deployments
from backend.chain.role_keys import DEV_ROLE_KEYS, role_id
from backend.chain.roles_check import check, configured_role_addresses
from backend.core.db import get_db
from backend.onboarding.models import LIVE, TownInvite, TownSetup, TownSetupStep
from backend.points.services import points_service
from backend.regions.models import Town
from backend.shop.models import Collection
from tests.onboarding.conftest import signup, worker_and_beat

ARGS = [
    "towns", "create", "--slug", "niseko", "--name-ja", "ニセコ町", "--name-en", "Niseko",
    "--symbol", "NSK", "--prefecture-ja", "北海道", "--prefecture-en", "Hokkaido",
    "--admin-email", "mayor@niseko.example", "--poll", "0.2",
]  # fmt: skip
FOUNDER = Account.from_key(DEV_ROLE_KEYS["founder"]).address


def _steps(app) -> dict[str, tuple[str, str | None]]:
    with app.app_context():
        rows = get_db().session.scalars(sa.select(TownSetupStep).order_by(TownSetupStep.position))
        return {r.name: (r.state, r.address) for r in rows}


def test_towns_create_interrupted_then_continued(app, w3):
    runner = app.test_cli_runner()
    # First run: stopped after 6 confirmed steps (as if killed); the worker stops too.
    with worker_and_beat(app):
        first = runner.invoke(args=[*ARGS, "--stop-after", "6"])
    assert first.exit_code == 3, first.output
    assert "run the same command again" in first.output
    before = _steps(app)
    confirmed = {n: a for n, (s, a) in before.items() if s == "confirmed"}
    assert len(confirmed) >= 6 and len(confirmed) < len(before)
    with app.app_context():
        assert get_db().session.scalar(sa.select(Town).where(Town.slug == "niseko")) is None

    # Second run, same arguments: continues to the end.
    with worker_and_beat(app):
        second = runner.invoke(args=ARGS)
    assert second.exit_code == 0, second.output
    assert "town niseko is live" in second.output
    n = len(before)
    assert re.search(
        rf"step \d+/{n} RegionPoints\.renounce\.DEFAULT_ADMIN_ROLE: confirmed", second.output
    )
    after = _steps(app)
    assert all(s == "confirmed" for s, _ in after.values())
    for name, address in confirmed.items():  # what was deployed before the stop stays
        assert after[name][1] == address

    with app.app_context():
        s = get_db().session
        # No step sent twice: one outbox row per step, each broadcast once, all from the founder.
        rows = list(
            s.scalars(
                sa.select(OutboxTx).where(OutboxTx.idempotency_key.like("town-setup:niseko:%"))
            )
        )
        assert len(rows) == n
        assert {r.sender_address for r in rows} == {FOUNDER}
        assert all(r.state == "confirmed" for r in rows)
        attempts = s.scalar(
            sa.select(sa.func.count())
            .select_from(OutboxAttempt)
            .where(OutboxAttempt.tx_id.in_([r.id for r in rows]))
        )
        assert attempts == n
        assert w3.eth.get_transaction_count(FOUNDER) == n

        setup = s.scalar(sa.select(TownSetup).where(TownSetup.slug == "niseko"))
        assert setup.state == LIVE
        town = s.scalar(sa.select(Town).where(Town.slug == "niseko"))
        assert (town.name_ja, town.points_symbol, town.prefecture_en) == (
            "ニセコ町",
            "NSK",
            "Hokkaido",
        )
        settings = app.extensions["settings"]
        deployments = load_deployments(settings.deployments_dir, w3.eth.chain_id)
        assert town.points_address == deployments.address("towns.niseko.RegionPoints")
        coll = s.scalar(sa.select(Collection).where(Collection.town_id == town.id))
        assert coll.contract_address == deployments.address("towns.niseko.collections.ambassador")
        for key in (
            "TownTreasury",
            "PrimarySale",
            "ResidentPass",
            "ResidentChamber",
            "CardChamber",
            "TownPoll",
            "Guardian",
        ):
            assert len(w3.eth.get_code(deployments.address(f"towns.niseko.{key}"))) > 0, key
        # The first admin was invited (mail + printed link), stored hashed.
        assert "one-time sign-in link" in second.output
        invite = s.scalar(sa.select(TownInvite).where(TownInvite.town_id == town.id))
        assert invite.email == "mayor@niseko.example" and invite.used_at is None
        link = re.search(r"(http\S+/invite/(\S+))", second.output).group(2)
        assert invite.token_hash != link

        # The hand-over (ADR 0008): the timelock administers, the founder holds nothing.
        timelock = deployments.address("towns.niseko.TownTreasury")
        points = w3.eth.contract(address=town.points_address, abi=artifact("RegionPoints").abi)
        admin = role_id("DEFAULT_ADMIN_ROLE")
        assert points.functions.hasRole(admin, timelock).call()
        assert not points.functions.hasRole(admin, FOUNDER).call()
        assert not points.functions.hasRole(role_id("ISSUER_ROLE"), FOUNDER).call()
        lines: list[str] = []
        roles = configured_role_addresses(settings, w3.eth.chain_id)
        assert check(w3, deployments, "niseko", roles, echo=lines.append), "\n".join(lines)

    # A welcome grant of the new town confirms on chain: its programmes are active.
    user_id = signup(app, "visitor@example.com")
    with worker_and_beat(app), app.app_context():
        s = get_db().session
        town = s.scalar(sa.select(Town).where(Town.slug == "niseko"))
        grant = points_service().grant_welcome_points(s.get(User, user_id), town)
        tx_id = grant.outbox_tx_id
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait for the state, polling
            s.commit()
            state = s.scalar(sa.select(OutboxTx.state).where(OutboxTx.id == tx_id))
            if state not in ("queued", "sent"):
                break
            time.sleep(0.1)
        assert state == "confirmed", s.get(OutboxTx, tx_id).error
        address = Web3.to_checksum_address(s.get(OutboxTx, tx_id).args[0])
        assert points.functions.balanceOf(address).call() == 500
