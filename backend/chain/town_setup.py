"""A town's contracts as a plan of outbox steps, sent by the `founder` role key (ADR 0013).

`python -m backend.deploy` (deploy.py) deploys a town synchronously with the deployer key; a
town onboarded from the platform (`flask --app backend towns create`, /operator/towns/new) is
set up through the outbox instead, one row per transaction, so that the setup survives a killed
process and never sends a step twice. This module knows no domain and no database: it turns a
`TownSpec` into the same contracts and the same role hand-over as `_deploy_town` +
`_assign_roles`, as data: a list of `SetupStep`s whose arguments may name the address another
step created (`Ref`). The caller (backend/onboarding) keeps one row per step, enqueues a step
once the steps it needs are confirmed, reads each created address from its receipt
(`OutboxService.created_address`) and records it in the deployments file
(`record_deployment`), so the app resolves `towns.<slug>.*` exactly as for a deployed town.

The hand-over (ADR 0008): the role keys get their operational roles, each contract's
DEFAULT_ADMIN_ROLE goes to the town's timelock, and the founder key renounces every role of
every town contract (renouncing a role one does not hold is a no-op in OpenZeppelin 5), after
every other step is confirmed.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3

from backend.chain.dao_settings import DaoSpec, chamber_settings
from backend.chain.deploy import (
    DEV_GUARDIAN_KEYS,
    ZERO_ADDRESS,
    CollectionSpec,
    ProgrammeSpec,
    TownSpec,
    chamber_name,
    collection_config,
    guardian_salt,
    resident_pass_args,
)
from backend.chain.outbox.enqueue import ContractCall, ContractCreation
from backend.chain.registry import (
    DeployedContract,
    Deployments,
    RegistryError,
    artifact,
    load_deployments,
    save_deployments,
)
from backend.chain.role_keys import CONTRACT_ROLES, grants_for, role_id
from backend.chain.safe import setup_data

__all__ = [
    "CollectionSpec",
    "DaoSpec",
    "ProgrammeSpec",
    "Ref",
    "SetupStep",
    "TownSpec",
    "platform_addresses",
    "record_deployment",
    "setup_plan",
]

PLATFORM_KEYS = (
    "FurusatoForwarder",
    "FanCollectionFactory",
    "SafeL2",
    "SafeProxyFactory",
    "CompatibilityFallbackHandler",
)
FOUNDER = "founder"


@dataclass(frozen=True)
class Ref:
    """The address created by the step `step` (resolved once that step is confirmed)."""

    step: str


@dataclass(frozen=True)
class SaltOf:
    """The guardian Safe's CREATE2 salt for `key`, made from the address `treasury` created
    (as deploy.py makes it: one Safe per treasury, so a town set up afresh gets a new one)."""

    key: str
    treasury: Ref


@dataclass(frozen=True)
class SetupStep:
    """One transaction of a town's setup.

    `target` is None for a contract creation (of `artifact`), else the contract called (an
    address or a `Ref`); `record` the deployments key suffix the created contract is recorded
    under ("RegionPoints", "collections.ambassador", "Guardian"), and `event` how its address
    is read when a factory made it ((artifact, event, argument); None: the receipt's
    contractAddress). `needs` are the steps that must be confirmed before this one is sent.
    """

    name: str
    artifact: str
    function: str
    args: tuple[Any, ...] = ()
    target: str | Ref | None = None
    record: str | None = None
    record_artifact: str | None = None
    event: tuple[str, str, str] | None = None
    after: tuple[str, ...] = field(default=())

    @property
    def needs(self) -> tuple[str, ...]:
        refs = [r.step for r in _refs((self.target, self.args))]
        return tuple(dict.fromkeys([*refs, *self.after]))

    @property
    def creates(self) -> bool:
        return self.record is not None

    def call(self, addresses: Mapping[str, str]) -> ContractCall | ContractCreation:
        """The outbox call of this step, with every `Ref` replaced by its step's address.
        Raises KeyError when a step it needs has no address yet."""
        args = tuple(_resolve(a, addresses) for a in self.args)
        if self.target is None:
            return ContractCreation(self.artifact, args)
        target = _resolve(self.target, addresses)
        return ContractCall(target, self.function, args, artifact_name=self.artifact)


def _refs(value: Any) -> Iterator[Ref]:
    if isinstance(value, Ref):
        yield value
    elif isinstance(value, SaltOf):
        yield value.treasury
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _refs(v)


def _resolve(value: Any, addresses: Mapping[str, str]) -> Any:
    if isinstance(value, Ref):
        return addresses[value.step]
    if isinstance(value, SaltOf):
        return guardian_salt(value.key, addresses[value.treasury.step])
    if isinstance(value, tuple):
        return tuple(_resolve(v, addresses) for v in value)
    if isinstance(value, list):
        return [_resolve(v, addresses) for v in value]
    return value


def setup_plan(
    town: TownSpec,
    *,
    chain_id: int,
    platform: Mapping[str, str],
    roles: Mapping[str, str],
    local: bool,
    metadata_base_url: str,
) -> list[SetupStep]:
    """Every step of setting `town` up from the `founder` role key, in sending order.

    `platform` holds the addresses of PLATFORM_KEYS; `roles` every role key's address (the
    founder's and the clerk's among them: the clerk is the chambers' platform proposer).
    Raises GovernanceSettingsError for unsafe governance settings and ValueError for a
    collection category that is not in `town.categories`.
    """
    me = roles[FOUNDER]
    fwd = platform["FurusatoForwarder"]
    dao = town.dao or DaoSpec()
    settings = chamber_settings(dao, chain_id, roles["clerk"], town.slug).as_tuple()
    steps: list[SetupStep] = []
    treasury = Ref("TownTreasury")
    points = Ref("RegionPoints")

    def create(name: str, contract: str, *args: Any, record: str | None = None) -> Ref:
        steps.append(SetupStep(name, contract, "constructor", args, record=record or name))
        return Ref(name)

    def call(name: str, target: Ref | str, contract: str, fn: str, *args: Any, **kw: Any) -> None:
        steps.append(SetupStep(name, contract, fn, args, target=target, **kw))

    create("RegionPoints", "RegionPoints", town.points_name, town.points_symbol, me, fwd)
    create("TownTreasury", "TownTreasury", dao.timelock_delay, [], [ZERO_ADDRESS], me)
    create(
        "ResidentPass",
        "ResidentPass",
        *resident_pass_args(town, metadata_base_url, me, fwd),
    )
    create("TownPoll", "TownPoll", me, fwd)
    # The founder sets the first programmes itself (SETTINGS_ROLE, ADR 0012); it renounces
    # the role with every other at the end.
    if town.programmes:
        call("RegionPoints.SETTINGS_ROLE.founder", points, "RegionPoints", "grantRole",
             role_id("SETTINGS_ROLE"), me)  # fmt: skip
    for prog in town.programmes:
        call(
            f"programme.{prog.programme_id}",
            points,
            "RegionPoints",
            "setProgramme",
            prog.programme_id,
            prog.expiry_days,
            True,
            after=("RegionPoints.SETTINGS_ROLE.founder",),
        )
    sale = create("PrimarySale", "PrimarySale", me, treasury, fwd)
    voting: Ref | None = None
    for spec in town.collections:
        name = f"collections.{spec.slug}"
        config = collection_config(town, spec, metadata_base_url, me, treasury)
        call(
            name,
            platform["FanCollectionFactory"],
            "FanCollectionFactory",
            "createCollection",
            config,
            record=name,
            record_artifact="FanCollection",
            event=("FanCollectionFactory", "CollectionCreated", "collection"),
        )
        coll = Ref(name)
        minter = role_id("MINTER_ROLE")
        call(f"{name}.minter", coll, "FanCollection", "grantRole", minter, sale)
        for perk_id, uses, valid_until in spec.perks:
            call(f"{name}.perk.{perk_id}", coll, "FanCollection", "setPerk", perk_id, uses,
                 valid_until)  # fmt: skip
        if spec.votes and voting is None:
            voting = coll
    chambers: list[Ref] = []
    if voting is not None:
        chambers.append(
            create(
                "CardChamber",
                "TownGovernor",
                chamber_name(town, "Card Chamber"),
                voting,
                treasury,
                settings,
                fwd,
                record="CardChamber",
            )
        )
    chambers.append(
        create(
            "ResidentChamber",
            "TownGovernor",
            chamber_name(town, "Resident Chamber"),
            Ref("ResidentPass"),
            treasury,
            settings,
            fwd,
            record="ResidentChamber",
        )
    )
    for chamber in chambers:
        for role in ("PROPOSER_ROLE", "CANCELLER_ROLE"):
            call(f"TownTreasury.{role}.{chamber.step}", treasury, "TownTreasury", "grantRole",
                 role_id(role), chamber)  # fmt: skip
    # The guardian Safe may cancel a queued payout during the treasury's delay (ADR 0006).
    owners = dao.guardian.owners or tuple(Account.from_key(k).address for k in DEV_GUARDIAN_KEYS)
    init = "0x" + setup_data(Web3(), owners, dao.guardian.threshold,
                             platform["CompatibilityFallbackHandler"]).hex()  # fmt: skip
    call(
        "Guardian",
        platform["SafeProxyFactory"],
        "SafeProxyFactory",
        "createProxyWithNonce",
        platform["SafeL2"],
        init,
        SaltOf(f"towns.{town.slug}.Guardian", treasury),
        record="Guardian",
        record_artifact="SafeL2",
        event=("SafeProxyFactory", "ProxyCreation", "proxy"),
    )
    call("TownTreasury.CANCELLER_ROLE.Guardian", treasury, "TownTreasury", "grantRole",
         role_id("CANCELLER_ROLE"), Ref("Guardian"))  # fmt: skip
    # The hand-over: role keys and the timelock first ...
    kinds = {
        "RegionPoints": "RegionPoints",
        "PrimarySale": "PrimarySale",
        "ResidentPass": "ResidentPass",
        "TownPoll": "TownPoll",
        **{f"collections.{c.slug}": "FanCollection" for c in town.collections},
    }
    for step_name, kind in kinds.items():
        target = Ref(step_name)
        for grant in grants_for(kind, local=local):
            call(f"{step_name}.{grant.role}", target, kind, "grantRole", role_id(grant.role),
                 roles[grant.holder])  # fmt: skip
        call(f"{step_name}.DEFAULT_ADMIN_ROLE", target, kind, "grantRole",
             role_id("DEFAULT_ADMIN_ROLE"), treasury)  # fmt: skip
    # ... then the founder renounces everything, once every other step is confirmed.
    before = tuple(s.name for s in steps)
    for step_name, kind in {**kinds, "TownTreasury": "TownTreasury"}.items():
        for role in CONTRACT_ROLES[kind]:
            steps.append(
                SetupStep(
                    f"{step_name}.renounce.{role}",
                    kind,
                    "renounceRole",
                    (role_id(role), me),
                    target=Ref(step_name),
                    after=before,
                )
            )
    return steps


def platform_addresses(deployments_dir: Path, chain_id: int) -> dict[str, str]:
    """The platform contracts a town hangs off (PLATFORM_KEYS). Raises RegistryError when the
    platform is not deployed on this chain (`python -m backend.deploy` first)."""
    deployed = load_deployments(deployments_dir, chain_id)
    return {k: deployed.address(k) for k in PLATFORM_KEYS}


@contextmanager
def _locked(deployments_dir: Path) -> Iterator[None]:
    path = Path(deployments_dir)
    path.mkdir(parents=True, exist_ok=True)
    with open(path / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def record_deployment(
    deployments_dir: Path,
    chain_id: int,
    *,
    key: str,
    artifact_name: str,
    address: str,
    block_number: int,
    tx_hash: str,
) -> None:
    """Add one contract to deployments/<chain_id>.json (under a file lock: the worker and the
    command may record steps at once); the same key and address again changes nothing."""
    with _locked(deployments_dir):
        try:
            contracts = dict(load_deployments(deployments_dir, chain_id).contracts)
        except RegistryError:
            contracts = {}
        old = contracts.get(key)
        if old is not None and old.address.lower() == address.lower():
            return
        contracts[key] = DeployedContract(
            key=key,
            contract=artifact_name,
            address=Web3.to_checksum_address(address),
            block_number=block_number,
            tx_hash=tx_hash,
            code_hash=artifact(artifact_name).code_hash,
        )
        save_deployments(deployments_dir, Deployments(chain_id, contracts))
