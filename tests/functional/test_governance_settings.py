"""Per-town governance settings: safe defaults, short periods only on a local chain that asks."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from eth_account import Account
from web3 import Web3

from backend.chain.anvil import start_anvil
from backend.chain.dao_settings import (
    DAY,
    DaoSpec,
    GovernanceSettingsError,
    GuardianSpec,
    block_seconds,
    chamber_settings,
    demo_dao,
    validate,
)
from backend.chain.deploy import TownSpec, deploy_platform
from backend.chain.registry import artifact, load_deployments
from backend.chain.role_keys import LOCAL_ONLY_ROLES, ROLES
from backend.chain.safe import contract as safe_contract
from backend.deploy import demo_town
from tests.chain_admin import role_address

OWNERS = GuardianSpec(owners=tuple(Account.create().address for _ in range(3)), threshold=2)
NOBODY = "0x" + "00" * 20


def test_defaults_are_safe_for_a_real_chain() -> None:
    spec = DaoSpec(guardian=OWNERS)
    validate(spec, 1)  # no error
    s = chamber_settings(spec, 1, NOBODY)
    assert (s.voting_delay, s.voting_period) == (DAY // 12, 7 * DAY // 12)
    assert s.proposal_threshold == 1 and s.quorum_floor == 5 and s.quorum_numerator == 10
    assert spec.timelock_delay == 2 * DAY


@pytest.mark.parametrize(
    "change",
    [
        {"voting_period": 300},
        {"timelock_delay": 60},
        {"voting_delay": 1},
        {"proposal_threshold": 0},
        {"quorum_floor": 1},
        {"guardian": GuardianSpec(owners=OWNERS.owners, threshold=1)},
        {"guardian": GuardianSpec()},  # dev owners
    ],
)
@pytest.mark.parametrize("chain_id", [1, 137, 11155111])
def test_weak_settings_are_refused_off_a_local_chain_even_when_asked(change, chain_id) -> None:
    spec = DaoSpec(**{"guardian": OWNERS, **change, "short_periods": True})
    with pytest.raises(GovernanceSettingsError, match=f"chain {chain_id}"):
        validate(spec, chain_id, "mukawa")


def test_the_demo_settings_are_refused_on_a_real_chain() -> None:
    with pytest.raises(GovernanceSettingsError, match="only allowed on a local test chain"):
        validate(demo_dao(), 1, "sarabetsu")


@pytest.mark.parametrize("chain_id", [31337, 1337])
def test_short_periods_on_a_local_chain_only_when_the_setting_says_so(chain_id) -> None:
    validate(demo_dao(), chain_id)  # the demo asks for them
    with pytest.raises(GovernanceSettingsError, match="short_periods=True"):
        validate(DaoSpec(voting_period=300), chain_id)
    validate(DaoSpec(voting_period=300, short_periods=True), chain_id)
    validate(DaoSpec(), chain_id)  # safe values need no setting; dev guardian owners are fine


def test_block_seconds_setting_turns_days_into_blocks(monkeypatch) -> None:
    monkeypatch.setenv("CHAIN_BLOCK_SECONDS", "137:2,1:12")
    assert block_seconds(137) == 2 and block_seconds(1) == 12 and block_seconds(10) == 12
    assert block_seconds(31337) == 1
    assert chamber_settings(DaoSpec(guardian=OWNERS), 137, NOBODY).voting_period == 7 * DAY // 2
    monkeypatch.setenv("CHAIN_BLOCK_SECONDS", "137:0")
    with pytest.raises(GovernanceSettingsError):
        block_seconds(137)
    monkeypatch.setenv("CHAIN_BLOCK_SECONDS", "x")
    with pytest.raises(GovernanceSettingsError):
        block_seconds(137)


def test_nonsense_is_refused_everywhere() -> None:
    for spec in (
        DaoSpec(quorum_floor=0, short_periods=True),
        DaoSpec(quorum_percent=101, short_periods=True),
        DaoSpec(guardian=GuardianSpec(owners=OWNERS.owners, threshold=4), short_periods=True),
    ):
        with pytest.raises(GovernanceSettingsError):
            validate(spec, 31337)


def test_a_refused_town_deploys_nothing(w3, anvil, tmp_path) -> None:
    head = w3.eth.block_number
    weak = TownSpec("mukawa", "Mukawa Points", "MKW", dao=DaoSpec(voting_period=300))
    with pytest.raises(GovernanceSettingsError, match="short_periods=True"):
        deploy_platform(w3, anvil.keys[0], tmp_path, [weak])
    assert w3.eth.block_number == head and not list(tmp_path.iterdir())


def test_deployed_chambers_carry_the_town_settings(w3, anvil, tmp_path) -> None:
    town = TownSpec("mukawa", "Mukawa Points", "MKW", dao=DaoSpec())  # real-chain defaults
    d = deploy_platform(w3, anvil.keys[0], tmp_path, [town, demo_town()])
    clerk = role_address("clerk")
    gov = w3.eth.contract(
        address=d.address("towns.mukawa.ResidentChamber"), abi=artifact("TownGovernor").abi
    )
    assert gov.functions.votingPeriod().call() == 7 * DAY  # 1 s blocks on anvil
    assert gov.functions.votingDelay().call() == DAY
    assert gov.functions.proposalThreshold().call() == 1
    assert gov.functions.quorumFloor().call() == 5
    assert gov.functions.platformProposer().call() == clerk  # the clerk role key (ADR 0008)
    treasury = w3.eth.contract(
        address=d.address("towns.mukawa.TownTreasury"), abi=artifact("TownTreasury").abi
    )
    assert treasury.functions.getMinDelay().call() == 2 * DAY
    demo = w3.eth.contract(
        address=d.address("towns.sarabetsu.CardChamber"), abi=artifact("TownGovernor").abi
    )
    assert demo.functions.votingPeriod().call() == 300
    assert demo.functions.quorumFloor().call() == 2


@pytest.mark.heavy  # its own anvil (chain 1)
def test_deploy_cli_refuses_a_weak_town_on_a_real_chain(tmp_path) -> None:
    """An anvil that calls itself chain 1 stands in for a real chain: the demo town's short
    periods are refused with a clear message, and nothing is sent or written."""
    node = start_anvil(tmp_path / "anvil.log", chain_id=1)
    try:
        w3 = Web3(Web3.HTTPProvider(node.url))
        out = tmp_path / "deployments"
        env = {
            **os.environ,
            "DEPLOYER_PRIVATE_KEY": node.keys[0],
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        }
        cmd = [sys.executable, "-m", "backend.deploy", "--rpc-url", node.url, "--demo"]
        r = subprocess.run(
            [*cmd, "--deployments-dir", str(out)], capture_output=True, text=True, env=env
        )
        assert r.returncode == 2, r.stderr
        assert "refused: town 'sarabetsu': unsafe governance settings for chain 1" in r.stderr
        assert "voting_period 300s < 259200s" in r.stderr
        assert w3.eth.block_number == 0 and not out.exists()
    finally:
        node.stop()


@pytest.mark.heavy  # its own anvil (chain 1)
def test_deploy_cli_deploys_a_town_on_a_real_chain_with_its_guardians(tmp_path) -> None:
    """The operator's path on a real chain (README "Real servers"): role addresses and the
    town's guardian owners come from the environment, the safe defaults apply, and the town's
    guardian Safe is owned by exactly those people. Without owners the same command is refused."""
    node = start_anvil(tmp_path / "anvil.log", chain_id=1)
    try:
        w3 = Web3(Web3.HTTPProvider(node.url))
        owners = [Account.from_key(k).address for k in node.keys[5:8]]
        # Every role key but the local-only ones (a real chain needs them all named).
        roles = ",".join(
            f"{name}={Account.from_key(node.keys[10 + i]).address}"
            for i, name in enumerate(ROLES)
            if name not in LOCAL_ONLY_ROLES
        )
        env = {
            **os.environ,
            "DEPLOYER_PRIVATE_KEY": node.keys[0],
            "ROLE_ADDRESSES": roles,
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        }
        out = tmp_path / "deployments"
        cmd = [sys.executable, "-m", "backend.deploy", "--rpc-url", node.url]
        cmd += ["--town", "mukawa:MKW", "--deployments-dir", str(out)]
        refused = subprocess.run(cmd, capture_output=True, text=True, env=env)
        assert refused.returncode == 2, refused.stderr
        assert "guardian.owners not set" in refused.stderr

        bad = subprocess.run(
            [*cmd, "--guardian-owners", "0x1234"], capture_output=True, text=True, env=env
        )
        assert bad.returncode == 2 and "0x1234 is not an address" in bad.stderr

        ok = subprocess.run(
            [*cmd, "--guardian-owners", ",".join(owners), "--guardian-threshold", "2"],
            capture_output=True,
            text=True,
            env=env,
        )
        assert ok.returncode == 0, ok.stderr
        d = load_deployments(out, 1)
        guardian = safe_contract(w3, "SafeL2", d.address("towns.mukawa.Guardian"))
        assert sorted(guardian.functions.getOwners().call()) == sorted(owners)
        assert guardian.functions.getThreshold().call() == 2
        treasury = w3.eth.contract(
            address=d.address("towns.mukawa.TownTreasury"), abi=artifact("TownTreasury").abi
        )
        assert treasury.functions.getMinDelay().call() == 2 * DAY
    finally:
        node.stop()
