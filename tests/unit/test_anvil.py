"""The dev keys are anvil's own accounts, so tests and `make run` sign for funded addresses."""

from __future__ import annotations

from eth_account import Account

from backend.chain.anvil import DEV_KEYS, DEV_MNEMONIC


def test_dev_keys_are_the_mnemonic_accounts():
    Account.enable_unaudited_hdwallet_features()
    for i, key in enumerate(DEV_KEYS):
        derived = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
        assert derived.key.hex() == key.removeprefix("0x"), f"DEV_KEYS[{i}]"


def test_anvil_funds_every_dev_key(w3):
    accounts = w3.eth.accounts
    for i, key in enumerate(DEV_KEYS):
        assert Account.from_key(key).address == accounts[i]
