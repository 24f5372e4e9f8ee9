"""The yen stablecoin as a setting, on anvil: by default the deployed TestYenStablecoin; with
YEN_TOKEN_ADDRESS/_SYMBOL/_DECIMALS a configured token (here the same contract, said to have 2
decimals) that the DAO pays out in its own units, the shop reads in whole yen, and the faucet
never mints."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from backend.chain.api import decode_transfer, outbox_service
from backend.core.db import get_db
from backend.core.errors import NotFound
from backend.dao.errors import InsufficientTreasury
from backend.dao.proposals import ProposalService
from backend.regions.models import Town
from backend.shop.services import wallet_order_service
from tests.chain_admin import as_role, role_address
from tests.shop.shop_helpers import contract

PROPOSAL = {
    "chamber": "card",
    "token": "yen",
    "amount": 1000,
    "title_ja": "テスト",
    "title_en": "Test",
    "body_ja": "",
    "body_en": "",
}


def _town(deployed) -> Town:
    s = get_db().session
    town = Town(
        slug="toyako",
        name_ja="洞爺湖町",
        name_en="Lake Toya",
        chain_id=deployed.chain_id,
        points_address=deployed.address("towns.toyako.RegionPoints"),
    )
    s.add(town)
    s.commit()
    return town


def test_a_local_chain_uses_the_deployed_test_yen_by_default(make_app, deployed):
    app = make_app()
    with app.app_context():
        yen = app.extensions["chain"].yen_token()
    assert (yen.contract, yen.address, yen.symbol, yen.decimals, yen.test) == (
        "TestYenStablecoin",
        deployed.address("TestYenStablecoin"),
        "tJPY",
        0,
        True,
    )


def test_a_configured_yen_token_is_used_in_its_own_units(make_app, deployed, w3):
    token = deployed.address("TestYenStablecoin")
    app = make_app(yen_token_address=token, yen_token_symbol="JPYC", yen_token_decimals=2)
    treasury = deployed.address("towns.toyako.TownTreasury")
    yen_c = contract(w3, deployed, "TestYenStablecoin")
    as_role(w3, "faucet", yen_c.functions.mint(treasury, 99_999))  # 999.99 yen
    with app.app_context():
        outbox_service().auto_dispatch = False
        yen = app.extensions["chain"].yen_token()
        assert (yen.contract, yen.symbol, yen.decimals, yen.test) == (token, "JPYC", 2, False)
        shop = wallet_order_service()
        assert shop.test_yen_balance(treasury) == 999  # whole yen, rounded down
        town = _town(deployed)
        dao = ProposalService.current()
        data = {**PROPOSAL, "recipient": role_address("clerk")}
        with pytest.raises(InsufficientTreasury) as err:
            dao.create_proposal(None, town, data, "yen-token-1", actor="test")
        assert err.value.details == {"balance": 999, "amount": 1000}
        get_db().session.rollback()

    as_role(w3, "faucet", yen_c.functions.mint(treasury, 1))  # 1,000.00 yen
    with app.app_context():
        outbox_service().auto_dispatch = False
        town = get_db().session.scalar(sa.select(Town).where(Town.slug == "toyako"))
        p = ProposalService.current().create_proposal(
            None, town, {**PROPOSAL, "recipient": role_address("clerk")}, "yen-token-2", actor="t"
        )
        assert p.token == "yen" and int(p.amount) == 1000  # shown in yen
        assert [t.lower() for t in p.targets] == [token.lower()]
        assert decode_transfer(p.calldatas[0])[1] == 100_000  # paid in the token's units

        # The faucet mints test yen only: a configured token is real money.
        with pytest.raises(NotFound):
            wallet_order_service().faucet(None)
