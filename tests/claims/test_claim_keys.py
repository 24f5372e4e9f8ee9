"""A claim wallet's key is sealed by the vault like a user's, and `keys rotate` re-wraps it:
after rotation the old master key can go and the wallet still signs (its transfer to the
owner is signed with it)."""

from __future__ import annotations

import sqlalchemy as sa
from eth_account import Account
from eth_account.messages import encode_defunct

from backend.chain.api import get_vault
from backend.claims.models import ClaimWallet
from backend.claims.services import claim_service
from backend.core.db import get_db
from tests.accounts.conftest import MASTER_KEY
from tests.accounts.test_custody import NEW_MASTER_KEY


def test_rotation_rewraps_claim_wallets(make_app, deployed):
    old = make_app(master_key=MASTER_KEY)
    with old.app_context():
        address = claim_service().wallets_for(["held@example.com"])["held@example.com"]
        get_db().session.commit()
    rotating = make_app(master_key=NEW_MASTER_KEY, retired_master_keys=MASTER_KEY)
    done = rotating.test_cli_runner().invoke(args=["keys", "rotate"])
    assert done.exit_code == 0, done.output
    assert "claims.claim_wallets" in done.stdout
    new_only = make_app(master_key=NEW_MASTER_KEY)
    with new_only.app_context():
        wallet = get_db().session.scalar(sa.select(ClaimWallet))
        assert wallet is not None and wallet.master_key_id == "mk-test-2"
        signed = get_vault(new_only).signer(wallet.sealed_key()).sign_message("hello")
    recovered = Account.recover_message(encode_defunct(text="hello"), signature=signed.signature)
    assert recovered == address
