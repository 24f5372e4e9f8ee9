"""DAO fixtures: the town, staff and members with cards, and a synchronous "worker" (settle)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from web3 import Web3

from backend.accounts.models import CUSTODIAL, Address, User
from backend.accounts.roles import STAFF, grant_town_role
from backend.chain.indexer_tasks import index_blocks
from backend.chain.outbox import outbox_service
from backend.chain.outbox_models import OutboxTx
from backend.chain.registry import Deployments, artifact
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.dao.models import DaoVote
from backend.regions.models import Town
from tests.accounts.conftest import PASSWORD, Api
from tests.anvil_pool import outbox_round
from tests.chain_admin import as_timelock, role_key

SLUG = "sarabetsu"


class DaoChain:
    """Chain helpers on the session's anvil (reverted after each test by `w3`). `admin` is a test
    key that the town's timelock makes a card minter; test yen comes from the faucet role key."""

    def __init__(self, w3: Web3, deployed: Deployments, admin_key: str) -> None:
        self.w3 = w3
        self.deployed = deployed
        self.admin = w3.eth.account.from_key(admin_key)
        self.faucet = w3.eth.account.from_key(role_key("faucet"))

    def contract(self, key: str, name: str) -> Any:
        return self.w3.eth.contract(address=self.deployed.address(key), abi=artifact(name).abi)

    @property
    def cards(self) -> Any:
        return self.contract(f"towns.{SLUG}.collections.ambassador", "FanCollection")

    @property
    def yen(self) -> Any:
        return self.contract("TestYenStablecoin", "TestYenStablecoin")

    @property
    def treasury(self) -> str:
        return self.deployed.address(f"towns.{SLUG}.TownTreasury")

    @property
    def card_chamber(self) -> Any:
        return self.contract(f"towns.{SLUG}.CardChamber", "TownGovernor")

    def send(self, fn: Any, sender: Any = None) -> Any:
        sender = sender or self.admin
        tx = fn.build_transaction(
            {
                "from": sender.address,
                "gas": 600_000,  # estimates of the first votes checkpoint can come out short
                "nonce": self.w3.eth.get_transaction_count(sender.address, "pending"),
            }
        )
        signed = sender.sign_transaction(tx)
        h = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        rcpt = self.w3.eth.wait_for_transaction_receipt(h)
        if rcpt.status != 1:
            fn.call({"from": sender.address}, rcpt.blockNumber - 1)  # raises the reason
        assert rcpt.status == 1, tx
        return rcpt

    def mint_cards(self, to: str, n: int) -> None:
        role = self.cards.functions.MINTER_ROLE().call()
        if not self.cards.functions.hasRole(role, self.admin.address).call():
            grant = self.cards.functions.grantRole(role, self.admin.address)
            as_timelock(self.w3, self.deployed, grant)
        for _ in range(n):
            self.send(self.cards.functions.mint(Web3.to_checksum_address(to)))

    def fund_treasury(self, amount: int) -> None:
        self.send(self.yen.functions.mint(self.treasury, amount), self.faucet)

    def yen_balance(self, who: str) -> int:
        return int(self.yen.functions.balanceOf(Web3.to_checksum_address(who)).call())

    def mine(self, blocks: int = 1) -> None:
        self.w3.provider.make_request("anvil_mine", [hex(blocks)])

    def increase_time(self, seconds: int) -> None:
        self.w3.provider.make_request("evm_increaseTime", [seconds])
        self.mine(1)


@pytest.fixture
def dao_chain(w3: Web3, deployed: Deployments, anvil: Any) -> DaoChain:
    return DaoChain(w3, deployed, anvil.keys[0])


@pytest.fixture
def town(app: Flask, deployed: Deployments) -> Town:
    with app.app_context():
        s = get_db().session
        t = Town(
            slug=SLUG,
            name_ja="更別村",
            name_en="Sarabetsu",
            chain_id=deployed.chain_id,
            points_address=deployed.address(f"towns.{SLUG}.RegionPoints"),
            points_symbol="SRB",
        )
        s.add(t)
        s.commit()
        s.refresh(t)
        s.expunge(t)
        return t


@pytest.fixture
def manual_outbox(app: Flask) -> Flask:
    """The outbox sends nothing by itself: tests call `settle`."""
    with app.app_context():
        outbox_service().auto_dispatch = False
    return app


def settle(app: Flask, dao_chain: DaoChain, rounds: int = 2) -> None:
    """What the worker's beat does: send queued rows, read receipts, index the chain."""
    with app.app_context():
        svc = outbox_service()
        session = get_db().session
        for _ in range(rounds):
            outbox_round(svc, session, dao_chain.w3, mine=False)
            index_blocks(max_seconds=20)
            session.expire_all()


def new_api(app: Flask) -> Api:
    return Api(app.test_client())


def signup(app: Flask, email: str | None = None) -> tuple[Api, int, str]:
    """A signed-in member: (api client, user id, built-in account address)."""
    api = new_api(app)
    email = email or f"m{uuid.uuid4().hex[:8]}@example.com"
    resp = api.signup(email, PASSWORD)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    user = resp.get_json()["user"]
    address = next(a["address"] for a in user["addresses"] if a["kind"] == CUSTODIAL)
    return api, user["id"], address


def make_staff(app: Flask, town: Town, user_id: int) -> None:
    with app.app_context():
        s = get_db().session
        grant_town_role(s.get(User, user_id), town.id, STAFF)
        s.commit()


def counts(app: Flask) -> dict[str, int]:
    from backend.dao.models import DaoProposal

    with app.app_context():
        s = get_db().session
        return {
            m.__tablename__: s.scalar(sa.select(sa.func.count()).select_from(m))
            for m in (OutboxTx, AuditLog, DaoVote, DaoProposal, Address)
        }


def wallet_signin(app: Flask, account: Any) -> Api:
    """A member signed in with their own wallet (SIWE): no built-in account, an external one."""
    from eth_account.messages import encode_defunct

    api = new_api(app)
    body = api.client.get(f"/api/auth/siwe/nonce?address={account.address}").get_json()
    sig = account.sign_message(encode_defunct(text=body["message"])).signature.hex()
    resp = api.post(
        "/api/auth/siwe/verify",
        {"message": body["message"], "signature": "0x" + sig.removeprefix("0x")},
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)
    api.refresh_token()
    return api


def sign_typed(account: Any, typed: dict[str, Any]) -> str:
    """What eth_signTypedData_v4 returns for the browser-shaped typed data."""
    sig = account.sign_typed_data(full_message=typed).signature.hex()
    return "0x" + sig.removeprefix("0x")


def poll_counts(app: Flask) -> dict[str, int]:
    from backend.dao.models import DaoPoll, DaoPollVote

    with app.app_context():
        s = get_db().session
        out = counts(app)
        for m in (DaoPoll, DaoPollVote):
            out[m.__tablename__] = s.scalar(sa.select(sa.func.count()).select_from(m))
        return out
