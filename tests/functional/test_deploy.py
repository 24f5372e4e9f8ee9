"""The deploy script: writes deployments/<chain_id>.json, is additive, renews stale contracts."""

from __future__ import annotations

import json

from backend.chain.deploy import deploy_platform
from backend.chain.registry import artifact, load_deployments
from backend.chain.role_keys import role_id
from backend.deploy import demo_town, demo_towns


def test_deploy_writes_the_file_and_a_second_run_deploys_nothing(w3, anvil, tmp_path):
    first = deploy_platform(w3, anvil.keys[0], tmp_path, [demo_town()])
    assert set(first.contracts) == {
        "FurusatoForwarder",
        "FanCollectionFactory",
        "TestYenStablecoin",
        "SafeL2",
        "SafeProxyFactory",
        "CompatibilityFallbackHandler",
        "towns.sarabetsu.Guardian",
        "towns.sarabetsu.RegionPoints",
        "towns.sarabetsu.TownTreasury",
        "towns.sarabetsu.PrimarySale",
        "towns.sarabetsu.ResidentPass",
        "towns.sarabetsu.CardChamber",
        "towns.sarabetsu.ResidentChamber",
        "towns.sarabetsu.TownPoll",
        "towns.sarabetsu.collections.ambassador",
        "towns.sarabetsu.collections.ticket",
        "towns.sarabetsu.collections.experience",
        "towns.sarabetsu.collections.supporter",
    }
    assert load_deployments(tmp_path, 31337) == first
    head = w3.eth.block_number
    second = deploy_platform(w3, anvil.keys[0], tmp_path, [demo_town()])
    assert second == first and w3.eth.block_number == head  # no transaction sent

    points = w3.eth.contract(
        address=first.address("towns.sarabetsu.RegionPoints"), abi=artifact("RegionPoints").abi
    )
    assert points.functions.decimals().call() == 0
    assert points.functions.isTrustedForwarder(first.address("FurusatoForwarder")).call()
    coll = w3.eth.contract(
        address=first.address("towns.sarabetsu.collections.ambassador"),
        abi=artifact("FanCollection").abi,
    )
    assert coll.functions.name().call() == "Sarabetsu Ambassador Card"
    sale = first.address("towns.sarabetsu.PrimarySale")
    assert coll.functions.hasRole(coll.functions.MINTER_ROLE().call(), sale).call()
    treasury = w3.eth.contract(
        address=first.address("towns.sarabetsu.TownTreasury"), abi=artifact("TownTreasury").abi
    )
    proposer = treasury.functions.PROPOSER_ROLE().call()
    for chamber in ("CardChamber", "ResidentChamber"):
        assert treasury.functions.hasRole(
            proposer, first.address(f"towns.sarabetsu.{chamber}")
        ).call()
    # Only the chambers' votes move treasury funds: the deployer kept no admin role.
    admin_role = treasury.functions.DEFAULT_ADMIN_ROLE().call()
    deployer = w3.eth.accounts[0]
    assert not treasury.functions.hasRole(admin_role, deployer).call()
    card_chamber = w3.eth.contract(
        address=first.address("towns.sarabetsu.CardChamber"), abi=artifact("TownGovernor").abi
    )
    assert card_chamber.functions.token().call() == coll.address


def test_a_contract_built_from_changed_sources_is_deployed_afresh(w3, anvil, tmp_path):
    first = deploy_platform(w3, anvil.keys[0], tmp_path, [demo_town()])
    path = tmp_path / "31337.json"
    data = json.loads(path.read_text())
    data["contracts"]["towns.sarabetsu.RegionPoints"]["code_hash"] = "old"
    path.write_text(json.dumps(data))
    again = deploy_platform(w3, anvil.keys[0], tmp_path, [demo_town()])
    assert again.address("towns.sarabetsu.RegionPoints") != first.address(
        "towns.sarabetsu.RegionPoints"
    )
    assert again.address("FanCollectionFactory") == first.address("FanCollectionFactory")
    # The town is renewed as one set, so nothing points at the replaced contract.
    assert again.address("towns.sarabetsu.PrimarySale") != first.address(
        "towns.sarabetsu.PrimarySale"
    )


def test_a_lost_chain_state_means_a_full_redeploy(w3, anvil, tmp_path):
    first = deploy_platform(w3, anvil.keys[0], tmp_path, [demo_town()])
    path = tmp_path / "31337.json"
    data = json.loads(path.read_text())
    # An address without code (the chain was reset) is not trusted.
    data["contracts"]["FurusatoForwarder"]["address"] = "0x" + "11" * 20
    path.write_text(json.dumps(data))
    again = deploy_platform(w3, anvil.keys[0], tmp_path, [demo_town()])
    assert set(again.contracts) == set(first.contracts)
    assert again.address("FurusatoForwarder") != "0x" + "11" * 20
    assert again.address("towns.sarabetsu.RegionPoints") != first.address(
        "towns.sarabetsu.RegionPoints"
    )


def test_the_demo_towns_are_deployed_as_partners_and_handed_over(w3, anvil, tmp_path):
    """`python -m backend.deploy --demo` (make run): each town's points declare the other while
    the deployer still holds SETTINGS_ROLE, then the deployer holds no role on either."""
    deployed = deploy_platform(w3, anvil.keys[0], tmp_path, demo_towns())
    srb, tya = (
        w3.eth.contract(
            address=deployed.address(f"towns.{slug}.RegionPoints"), abi=artifact("RegionPoints").abi
        )
        for slug in ("sarabetsu", "toyako")
    )
    assert srb.functions.isPartner(tya.address).call()
    assert tya.functions.isPartner(srb.address).call()
    deployer = w3.eth.account.from_key(anvil.keys[0]).address
    for points in (srb, tya):
        for role in ("SETTINGS_ROLE", "DEFAULT_ADMIN_ROLE"):
            assert not points.functions.hasRole(role_id(role), deployer).call()
    head = w3.eth.block_number
    assert deploy_platform(w3, anvil.keys[0], tmp_path, demo_towns()) == deployed
    assert w3.eth.block_number == head  # a second run declares nothing again
