"""Issue 10 §2, one online key ruled everything: now one key per role (ADR 0008).

After deploy, every town contract's admin is the town's timelock, each operational role is held
by its own role key, and the deployer holds nothing. A leaked web-host key (the issuer or the
merchant_admin key) cannot mint voting cards, issue resident passes, redirect sale proceeds or
grant roles. `roles check` reads the whole map from the chain and fails on a stray holder.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from eth_account import Account
from web3 import Web3
from web3.exceptions import ContractLogicError

from backend import create_app
from backend.chain.keyring import KeyRing
from backend.chain.registry import artifact
from backend.chain.role_keys import CONTRACT_ROLES, ROLES, role_id
from backend.config import SettingsError
from backend.core.errors import AppError
from tests.chain_admin import ROLE_ADDRESSES, as_timelock, role_address, role_key

TOWN = "towns.sarabetsu."
STRAY = Web3.to_checksum_address("0x" + "5a" * 20)


def _contract(w3, deployed, key):
    c = deployed.contracts[key]
    return w3.eth.contract(
        address=Web3.to_checksum_address(c.address), abi=artifact(c.contract).abi
    )


def _town_contracts(deployed):
    return {
        k: c
        for k, c in deployed.contracts.items()
        if k.startswith(TOWN) and c.contract in CONTRACT_ROLES
    }


def test_the_deployer_holds_no_role_and_the_timelock_administers_every_town_contract(
    w3, deployed, anvil
):
    deployer = Account.from_key(anvil.keys[0]).address
    timelock = deployed.address(TOWN + "TownTreasury")
    kinds = set()
    for key, c in _town_contracts(deployed).items():
        contract = _contract(w3, deployed, key)
        kinds.add(c.contract)
        for role in CONTRACT_ROLES[c.contract]:
            assert not contract.functions.hasRole(role_id(role), deployer).call(), (key, role)
        assert contract.functions.hasRole(role_id("DEFAULT_ADMIN_ROLE"), timelock).call(), key
    assert kinds == set(CONTRACT_ROLES)  # every kind of town contract was looked at


def test_each_role_key_holds_its_own_role_only(w3, deployed):
    points = _contract(w3, deployed, TOWN + "RegionPoints")
    sale = _contract(w3, deployed, TOWN + "PrimarySale")
    passes = _contract(w3, deployed, TOWN + "ResidentPass")
    cards = _contract(w3, deployed, TOWN + "collections.ambassador")
    assert points.functions.hasRole(role_id("ISSUER_ROLE"), role_address("issuer")).call()
    assert points.functions.hasRole(
        role_id("MERCHANT_ADMIN_ROLE"), role_address("merchant_admin")
    ).call()
    assert points.functions.hasRole(role_id("EXPIRER_ROLE"), role_address("expirer")).call()
    assert points.functions.hasRole(role_id("SETTINGS_ROLE"), role_address("town_settings")).call()
    assert sale.functions.hasRole(role_id("MINTER_ROLE"), role_address("minter")).call()
    assert passes.functions.hasRole(role_id("REGISTRAR_ROLE"), role_address("registrar")).call()
    assert cards.functions.hasRole(role_id("VERIFIER_ROLE"), role_address("verifier")).call()
    # The issuer key may not do the minter's or the registrar's job.
    issuer = role_address("issuer")
    assert not sale.functions.hasRole(role_id("MINTER_ROLE"), issuer).call()
    assert not passes.functions.hasRole(role_id("REGISTRAR_ROLE"), issuer).call()
    assert not points.functions.hasRole(role_id("SETTINGS_ROLE"), issuer).call()


@pytest.mark.parametrize("role", ["issuer", "merchant_admin"])
def test_a_leaked_web_host_key_cannot_mint_cards_issue_passes_move_proceeds_or_grant_roles(
    w3, deployed, base_settings, role
):
    """The key the platform signs points issuing (or shop registration) with, as the app's own
    settings name it, is tried against every power that matters; the chain refuses each."""
    leaked = KeyRing.from_settings(base_settings).role(role)
    cards = _contract(w3, deployed, TOWN + "collections.ambassador")
    sale = _contract(w3, deployed, TOWN + "PrimarySale")
    passes = _contract(w3, deployed, TOWN + "ResidentPass")
    points = _contract(w3, deployed, TOWN + "RegionPoints")
    attempts = {
        "mint a voting card": cards.functions.mint(leaked),
        "mint a card paid off chain": sale.functions.mintPaidOffChain(0, leaked, 1, b"\x01" * 32),
        "issue a resident pass": passes.functions.issue(leaked, b"\x02" * 32),
        "redirect sale proceeds": sale.functions.setTreasury(leaked),
        "grant itself MINTER_ROLE": cards.functions.grantRole(role_id("MINTER_ROLE"), leaked),
        "grant a registrar": passes.functions.grantRole(role_id("REGISTRAR_ROLE"), leaked),
        "grant an issuer": points.functions.grantRole(role_id("ISSUER_ROLE"), STRAY),
        "end person-to-person transfers": points.functions.setTransferPolicy(1),
        "open a programme of its own": points.functions.setProgramme(999, 0, True),
        "create a listing": sale.functions.createListing(
            (
                cards.address,
                10_000,
                0,
                2**40 - 1,
                deployed.address("TestYenStablecoin"),
                1_000,
                1_000,
                0,
                leaked,
                False,
                False,
                0,
            )
        ),  # fmt: skip
    }
    for what, fn in attempts.items():
        with pytest.raises(ContractLogicError):
            fn.estimate_gas({"from": leaked})
            pytest.fail(f"the leaked {role} key could {what}")


def test_the_town_settings_key_changes_settings_only(w3, deployed):
    """ADR 0012: the console's settings key sets programmes and the transfer policy without a
    vote, but cannot issue points, grant roles or keep itself once the timelock revokes it."""
    points = _contract(w3, deployed, TOWN + "RegionPoints")
    key = role_address("town_settings")
    points.functions.setProgramme(999, 30, True).estimate_gas({"from": key})
    points.functions.setTransferPolicy(1).estimate_gas({"from": key})
    for fn in (
        points.functions.issue(key, 1, 1, "x"),
        points.functions.grantRole(role_id("SETTINGS_ROLE"), STRAY),
        points.functions.grantRole(role_id("ISSUER_ROLE"), key),
        points.functions.addMerchant(STRAY),
    ):
        with pytest.raises(ContractLogicError):
            fn.estimate_gas({"from": key})
    as_timelock(w3, deployed, points.functions.revokeRole(role_id("SETTINGS_ROLE"), key))
    with pytest.raises(ContractLogicError):
        points.functions.setProgramme(999, 30, True).estimate_gas({"from": key})


def test_admin_changes_go_through_the_timelock(w3, deployed):
    sale = _contract(w3, deployed, TOWN + "PrimarySale")
    as_timelock(w3, deployed, sale.functions.setTreasury(Web3.to_checksum_address(STRAY)))
    assert sale.functions.treasury().call() == Web3.to_checksum_address(STRAY)


def test_the_retired_admin_key_is_refused_at_startup(base_settings):
    with pytest.raises(SettingsError, match="retired"):
        create_app(replace(base_settings, role_private_keys=f"admin={role_key('issuer')}"))
    with pytest.raises(SettingsError, match="unknown role"):
        create_app(replace(base_settings, role_addresses=f"boss={role_address('issuer')}"))
    with pytest.raises(SettingsError, match="ROLE_ADDRESSES gives issuer"):
        create_app(replace(base_settings, role_addresses=f"issuer={role_address('minter')}"))


def test_the_web_process_knows_role_addresses_but_holds_no_key(base_settings):
    web = KeyRing.from_settings(
        replace(base_settings, role_private_keys=None, role_addresses=ROLE_ADDRESSES)
    )
    assert set(web.role_addresses) == set(ROLES)
    assert web.role("issuer") == role_address("issuer")
    with pytest.raises(AppError) as err:
        web.account(role_address("issuer"))
    assert err.value.code == "no_key"


def test_the_web_process_picks_relayers_by_address_and_holds_no_relayer_key(base_settings):
    """RELAYER_ADDRESSES (docs/deploy-multi-host.md): a web host picks each user's relayer as
    the worker does, from the addresses alone, and cannot sign with it."""
    keys = [Account.create().key.hex() for _ in range(3)]
    worker = KeyRing.from_settings(replace(base_settings, relayer_private_keys=",".join(keys)))
    addresses = ",".join(worker.relayer_addresses)
    web = KeyRing.from_settings(
        replace(base_settings, relayer_private_keys=None, relayer_addresses=addresses)
    )
    users = [Account.create().address for _ in range(12)]
    assert [web.relayer_for(u) for u in users] == [worker.relayer_for(u) for u in users]
    assert len({web.relayer_for(u) for u in users}) > 1
    with pytest.raises(AppError) as err:
        web.account(web.relayer_addresses[0])
    assert err.value.code == "no_key"
    both = replace(base_settings, relayer_private_keys=",".join(keys), relayer_addresses=addresses)
    assert KeyRing.from_settings(both).relayer_addresses == worker.relayer_addresses
    swapped = ",".join(reversed(worker.relayer_addresses))
    with pytest.raises(SettingsError, match="RELAYER_ADDRESSES"):
        KeyRing.from_settings(replace(both, relayer_addresses=swapped))
    with pytest.raises(SettingsError, match="not an address"):
        KeyRing.from_settings(replace(base_settings, relayer_addresses="0x1234"))


def _roles_check(app):
    return app.test_cli_runner().invoke(args=["roles", "check", "--town", "sarabetsu"])


def test_roles_check_passes_on_the_demo_town_and_fails_on_a_stray_holder(make_app, w3, deployed):
    app = make_app()
    ok = _roles_check(app)
    assert ok.exit_code == 0, ok.output
    assert "roles check: ok" in ok.output
    assert f"issuer key {role_address('issuer')}" in ok.output
    assert "timelock (TownTreasury)" in ok.output and "guardian Safe" in ok.output
    points = _contract(w3, deployed, TOWN + "RegionPoints")
    stray = Web3.to_checksum_address(STRAY)
    as_timelock(w3, deployed, points.functions.grantRole(role_id("ISSUER_ROLE"), stray))
    bad = _roles_check(app)
    assert bad.exit_code == 1, bad.output
    assert f"unexpected holder: {stray}" in bad.output
    assert "roles check: FAILED" in bad.output


def test_roles_check_fails_when_an_expected_holder_lost_its_role(make_app, w3, deployed):
    app = make_app()
    passes = _contract(w3, deployed, TOWN + "ResidentPass")
    registrar = role_address("registrar")
    as_timelock(w3, deployed, passes.functions.revokeRole(role_id("REGISTRAR_ROLE"), registrar))
    bad = _roles_check(app)
    assert bad.exit_code == 1
    assert f"missing holder: registrar key {registrar}" in bad.output
