"""The platform's role keys, and which on-chain role each one holds on which contract.

One key per operational role (docs/adr/0008-role-keys.md), so that a leaked key does only its
own job: the issuer key issues points but cannot mint voting cards, issue resident passes,
move sale proceeds or grant roles. No role key is an admin: each town contract's
DEFAULT_ADMIN_ROLE is held by the town's TimelockController (TownTreasury), i.e. by the
chambers' votes, and the deployer renounces every role it had once a town is set up.

    issuer          RegionPoints  ISSUER_ROLE          points issuing (welcome grants, sales)
    merchant_admin  RegionPoints  MERCHANT_ADMIN_ROLE  registers / suspends shops
    expirer         RegionPoints  EXPIRER_ROLE         burns expired points lots (tidying)
    minter          PrimarySale   MINTER_ROLE          mints a card paid off chain (by card)
    registrar       ResidentPass  REGISTRAR_ROLE       issues / revokes resident passes
    poll_creator    TownPoll      POLL_CREATOR_ROLE    creates / cancels non-binding polls
    verifier        FanCollection VERIFIER_ROLE        marks perk uses at a venue
    clerk           TownGovernor  platformProposer     proposes, queues and executes for staff
    catalogue       PrimarySale   LISTING_ADMIN_ROLE   local chains only (see below)
    town_settings   RegionPoints  SETTINGS_ROLE        programmes, transfer policy, partner
                                                       towns: the staff console, no vote
                                                       (docs/adr/0012-town-settings-role.md)
    founder         FanCollectionFactory DEPLOYER_ROLE sets a new town up through the outbox
                    (backend/chain/town_setup.py): deploys its contracts, hands every role
                    over and renounces all it held on them (docs/adr/0013-town-setup.md)
    faucet          TestYen...    MINTER_ROLE          local chains only: test yen
    collections     Factory       DEPLOYER_ROLE        creates a town's collection from the console
                    FanCollection PERK_ADMIN_ROLE      sets perks (uses, valid until)
    voucher_signer  PrimarySale   SIGNER_ROLE          signs allowlist vouchers (EIP-712)

`collections` is admin of a collection it creates only for the set-up transactions (minter,
verifier, perk admin, first perks), then hands DEFAULT_ADMIN_ROLE to the town's timelock and
renounces it (docs/adr/0014-console-collections.md): a collection it makes carries no votes.

`catalogue` is local-only because a listing admin chooses the lister, its share and the price:
it could list the voting cards at 0 to itself. On a real chain listings are created by the
timelock (a vote), or by a LISTING_ADMIN_ROLE the timelock grants to a multisig.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils import keccak

from backend.chain.anvil import DEV_KEYS

ROLES = (
    "issuer",
    "merchant_admin",
    "verifier",
    "minter",
    "poll_creator",
    "clerk",
    "registrar",
    "expirer",
    "faucet",
    "catalogue",
    "town_settings",
    "founder",
    "collections",
    "voucher_signer",
)
LOCAL_ONLY_ROLES = frozenset({"faucet", "catalogue"})
# The one key that held every role before ADR 0008; refused wherever it is configured.
RETIRED_ROLES = frozenset({"admin", "deployer"})
# anvil accounts 10-25, one per role (10 + its index in ROLES), on a local chain (make run, tests).
DEV_ROLE_KEYS: dict[str, str] = {name: DEV_KEYS[10 + i] for i, name in enumerate(ROLES)}


@dataclass(frozen=True)
class RoleGrant:
    contract: str  # the contract's artifact name ("RegionPoints", "FanCollection", ...)
    role: str  # the role constant's name on that contract ("ISSUER_ROLE")
    holder: str  # a role key name (ROLES)

    @property
    def local_only(self) -> bool:
        return self.holder in LOCAL_ONLY_ROLES


# Granted to the role keys on every town at deploy (FanCollection: on each collection).
TOWN_GRANTS = (
    RoleGrant("RegionPoints", "ISSUER_ROLE", "issuer"),
    RoleGrant("RegionPoints", "MERCHANT_ADMIN_ROLE", "merchant_admin"),
    RoleGrant("RegionPoints", "EXPIRER_ROLE", "expirer"),
    RoleGrant("RegionPoints", "SETTINGS_ROLE", "town_settings"),
    RoleGrant("PrimarySale", "MINTER_ROLE", "minter"),
    RoleGrant("PrimarySale", "LISTING_ADMIN_ROLE", "catalogue"),
    RoleGrant("ResidentPass", "REGISTRAR_ROLE", "registrar"),
    RoleGrant("TownPoll", "POLL_CREATOR_ROLE", "poll_creator"),
    RoleGrant("PrimarySale", "SIGNER_ROLE", "voucher_signer"),
    RoleGrant("FanCollection", "VERIFIER_ROLE", "verifier"),
    RoleGrant("FanCollection", "PERK_ADMIN_ROLE", "collections"),
)
# Platform contracts (one per chain).
PLATFORM_GRANTS = (
    RoleGrant("TestYenStablecoin", "MINTER_ROLE", "faucet"),
    RoleGrant("FanCollectionFactory", "DEPLOYER_ROLE", "founder"),
    RoleGrant("FanCollectionFactory", "DEPLOYER_ROLE", "collections"),
)

# Every role each AccessControl contract defines (what `roles check` reads), DEFAULT_ADMIN first.
CONTRACT_ROLES: dict[str, tuple[str, ...]] = {
    "RegionPoints": (
        "DEFAULT_ADMIN_ROLE",
        "ISSUER_ROLE",
        "PAUSER_ROLE",
        "MERCHANT_ADMIN_ROLE",
        "EXPIRER_ROLE",
        "SETTINGS_ROLE",
    ),
    "PrimarySale": ("DEFAULT_ADMIN_ROLE", "LISTING_ADMIN_ROLE", "SIGNER_ROLE", "MINTER_ROLE"),
    "ResidentPass": ("DEFAULT_ADMIN_ROLE", "REGISTRAR_ROLE"),
    "TownPoll": ("DEFAULT_ADMIN_ROLE", "POLL_CREATOR_ROLE"),
    "FanCollection": ("DEFAULT_ADMIN_ROLE", "MINTER_ROLE", "VERIFIER_ROLE", "PERK_ADMIN_ROLE"),
    "TownTreasury": (
        "DEFAULT_ADMIN_ROLE",
        "PROPOSER_ROLE",
        "EXECUTOR_ROLE",
        "CANCELLER_ROLE",
    ),
}


def grants_for(contract: str, *, local: bool) -> list[RoleGrant]:
    """The role-key grants of one contract kind (local-only ones only on a local chain)."""
    return [
        g
        for g in (*TOWN_GRANTS, *PLATFORM_GRANTS)
        if g.contract == contract and (local or not g.local_only)
    ]


def role_id(name: str) -> bytes:
    """A role constant's value: OpenZeppelin's keccak256("NAME"), and 0 for DEFAULT_ADMIN_ROLE."""
    return b"\x00" * 32 if name == "DEFAULT_ADMIN_ROLE" else keccak(text=name)
