"""The town setup plan (backend/chain/town_setup.py) as data: every step it needs comes before
it, names are unique (they are outbox keys), the founder renounces every role of every town
contract only after every other step, and the same town gives the same plan (a re-run sends
the same payloads under the same keys)."""

from __future__ import annotations

from eth_account import Account

from backend.chain.deploy import CollectionSpec, ProgrammeSpec, TownSpec
from backend.chain.role_keys import CONTRACT_ROLES, DEV_ROLE_KEYS
from backend.chain.town_setup import PLATFORM_KEYS, ContractCreation, setup_plan
from backend.shop.categories import KEYS

ROLES = {n: Account.from_key(k).address for n, k in DEV_ROLE_KEYS.items()}
PLATFORM = {k: "0x" + f"{i + 1:040x}" for i, k in enumerate(PLATFORM_KEYS)}
TOWN = TownSpec(
    "niseko",
    "Niseko Points",
    "NSK",
    programmes=(ProgrammeSpec(1, 180), ProgrammeSpec(2, 180)),
    collections=(
        CollectionSpec("ambassador", "Niseko Card", "NSKAMB", 500, "ambassador_card", votes=True),
    ),
    categories=KEYS,
)


def _plan():
    return setup_plan(
        TOWN, chain_id=31337, platform=PLATFORM, roles=ROLES, local=True,
        metadata_base_url="http://127.0.0.1:5000",
    )  # fmt: skip


def test_every_need_comes_first_and_names_are_unique():
    plan = _plan()
    names = [s.name for s in plan]
    assert len(names) == len(set(names))
    seen: set[str] = set()
    for step in plan:
        assert set(step.needs) <= seen, (step.name, set(step.needs) - seen)
        seen.add(step.name)


def test_the_founder_renounces_every_role_last():
    plan = _plan()
    renounces = [s for s in plan if s.function == "renounceRole"]
    first = plan.index(renounces[0])
    assert all(s.function == "renounceRole" for s in plan[first:])
    others = {s.name for s in plan[:first]}
    assert all(set(s.needs) >= others for s in renounces)
    kinds = {"RegionPoints", "PrimarySale", "ResidentPass", "TownPoll", "FanCollection",
             "TownTreasury"}  # fmt: skip
    assert len(renounces) == sum(len(CONTRACT_ROLES[k]) for k in kinds)
    assert {s.args[1] for s in renounces} == {ROLES["founder"]}


def test_steps_resolve_to_calls_and_creations_and_the_plan_is_stable():
    plan = _plan()
    addresses = {s.name: "0x" + f"{i + 100:040x}" for i, s in enumerate(plan) if s.creates}
    creations = [s.call(addresses) for s in plan if s.target is None]
    assert all(isinstance(c, ContractCreation) for c in creations)
    assert {c.artifact_name for c in creations} >= {"RegionPoints", "TownTreasury", "TownGovernor"}
    assert [(s.name, s.call(addresses)) for s in plan] == [
        (s.name, s.call(addresses)) for s in _plan()
    ]
