"""A town's governance settings: chamber voting rules, treasury delay and guardian multisig.

Durations are written in seconds (what people decide in: "a vote lasts 7 days") and turned into
the governor's clock units, blocks, with the chain's block time (`CHAIN_BLOCK_SECONDS`, e.g.
"1:12,137:2"; see `block_seconds`). The defaults are safe for a real chain. Anything shorter or
weaker than the minimums below is refused, except on a local test chain (31337 anvil, 1337) AND
when the town's settings ask for it (`short_periods=True`: the demo town and the tests), so a demo
configuration can never reach a real chain by mistake. See docs/adr/0006-treasury-consent.md.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

DAY = 86_400
HOUR = 3_600
LOCAL_CHAIN_IDS = frozenset({31337, 1337})
# Seconds per block when CHAIN_BLOCK_SECONDS says nothing for the chain: Ethereum's 12 s slot;
# a local anvil mines a block per transaction, so one "block" stands for one second there.
DEFAULT_BLOCK_SECONDS = 12
LOCAL_BLOCK_SECONDS = 1

# The floor of every setting on a real chain. A vote must stay open long enough for residents and
# card holders to notice it (a week by default, three days at least), the treasury must keep an
# approved payout long enough for the guardian to meet and cancel it (two days), and no single
# holder may carry a chamber (a quorum of a few votes at least, whatever the supply).
MIN_VOTING_DELAY = HOUR
MIN_VOTING_PERIOD = 3 * DAY
MIN_TIMELOCK_DELAY = 2 * DAY
MIN_PROPOSAL_THRESHOLD = 1
MIN_QUORUM_FLOOR = 3
MIN_GUARDIAN_THRESHOLD = 2


class GovernanceSettingsError(ValueError):
    """A town's governance settings are unsafe for the chain they would be deployed on."""


@dataclass(frozen=True)
class GuardianSpec:
    """The town guardian: a Safe multisig that may cancel queued treasury payouts (and nothing
    else). `owners` are addresses; empty means "the local dev owners" and is refused off a local
    chain."""

    owners: tuple[str, ...] = ()
    threshold: int = MIN_GUARDIAN_THRESHOLD


@dataclass(frozen=True)
class DaoSpec:
    """One town's governance settings (both chambers share them)."""

    voting_delay: int = DAY  # seconds between a proposal and its snapshot
    voting_period: int = 7 * DAY  # seconds a vote stays open
    timelock_delay: int = 2 * DAY  # seconds between queue and execute (the guardian's window)
    proposal_threshold: int = 1  # votes (cards / passes) needed to propose
    quorum_percent: int = 10  # of the voting token's supply at the snapshot
    quorum_floor: int = 5  # votes, whatever the supply
    short_periods: bool = False  # allow values below the minimums (local test chains only)
    guardian: GuardianSpec = field(default_factory=GuardianSpec)


def demo_dao() -> DaoSpec:
    """The demo town's settings: short enough to click through a vote in a minute on anvil (300
    one-second blocks to vote, 60 s in the treasury); refused on any other chain."""
    return DaoSpec(
        voting_delay=1,
        voting_period=300,
        timelock_delay=60,
        proposal_threshold=1,
        quorum_percent=4,
        quorum_floor=2,
        short_periods=True,
    )


def block_seconds(chain_id: int, env: dict[str, str] | None = None) -> int:
    """Seconds per block of `chain_id`, from CHAIN_BLOCK_SECONDS ("1:12,137:2") or the default."""
    raw = (os.environ if env is None else env).get("CHAIN_BLOCK_SECONDS", "")
    for part in filter(None, (p.strip() for p in raw.split(","))):
        key, _, value = part.partition(":")
        try:
            cid, secs = int(key), int(value)
        except ValueError:
            raise GovernanceSettingsError(
                f"CHAIN_BLOCK_SECONDS must look like 1:12,137:2, got {raw!r}"
            ) from None
        if secs <= 0:
            raise GovernanceSettingsError(f"CHAIN_BLOCK_SECONDS for chain {cid} must be > 0")
        if cid == chain_id:
            return secs
    return LOCAL_BLOCK_SECONDS if chain_id in LOCAL_CHAIN_IDS else DEFAULT_BLOCK_SECONDS


def to_blocks(seconds: int, secs_per_block: int) -> int:
    """Blocks that last at least `seconds` (rounded up; at least 1)."""
    return max(1, math.ceil(seconds / secs_per_block))


def weaknesses(spec: DaoSpec) -> list[str]:
    """Every setting of `spec` below the real-chain minimum, in words."""
    out = []
    checks = (
        ("voting_delay", spec.voting_delay, MIN_VOTING_DELAY, "s"),
        ("voting_period", spec.voting_period, MIN_VOTING_PERIOD, "s"),
        ("timelock_delay", spec.timelock_delay, MIN_TIMELOCK_DELAY, "s"),
        ("proposal_threshold", spec.proposal_threshold, MIN_PROPOSAL_THRESHOLD, " votes"),
        ("quorum_floor", spec.quorum_floor, MIN_QUORUM_FLOOR, " votes"),
        ("guardian.threshold", spec.guardian.threshold, MIN_GUARDIAN_THRESHOLD, " signatures"),
    )
    for name, value, minimum, unit in checks:
        if value < minimum:
            out.append(f"{name} {value}{unit} < {minimum}{unit}")
    return out


@dataclass(frozen=True)
class ChamberSettings:
    """`TownGovernor.ChamberSettings` for one chain, as the constructor takes it."""

    voting_delay: int  # blocks
    voting_period: int  # blocks
    proposal_threshold: int
    quorum_numerator: int
    quorum_floor: int
    platform_proposer: str

    def as_tuple(self) -> tuple[int, int, int, int, int, str]:
        return (
            self.voting_delay,
            self.voting_period,
            self.proposal_threshold,
            self.quorum_numerator,
            self.quorum_floor,
            self.platform_proposer,
        )


def validate(spec: DaoSpec, chain_id: int, slug: str = "") -> None:
    """Refuse `spec` on `chain_id` when any setting is below the minimum, unless the chain is a
    local test chain and the spec allows short periods. Also refuses nonsense on any chain."""
    town = f"town {slug!r}: " if slug else ""
    if spec.quorum_floor < 1 or spec.voting_period < 1 or spec.timelock_delay < 0:
        raise GovernanceSettingsError(
            f"{town}quorum_floor and voting_period must be at least 1, timelock_delay >= 0"
        )
    if not 0 <= spec.quorum_percent <= 100:
        raise GovernanceSettingsError(f"{town}quorum_percent must be 0..100")
    g = spec.guardian
    if g.owners and not 1 <= g.threshold <= len(g.owners):
        raise GovernanceSettingsError(
            f"{town}guardian threshold {g.threshold} needs 1..{len(g.owners)} owners"
        )
    weak = weaknesses(spec)
    if chain_id not in LOCAL_CHAIN_IDS and not g.owners:
        # On a local chain the guardian's owners default to anvil's dev accounts; elsewhere
        # the town names the people who hold them.
        weak.append("guardian.owners not set (dev owners are for local chains only)")
    if not weak:
        return
    if chain_id not in LOCAL_CHAIN_IDS:
        raise GovernanceSettingsError(
            f"{town}unsafe governance settings for chain {chain_id}: {'; '.join(weak)}. "
            "Short periods and dev guardians are only allowed on a local test chain "
            f"({', '.join(map(str, sorted(LOCAL_CHAIN_IDS)))})."
        )
    if not spec.short_periods:
        raise GovernanceSettingsError(
            f"{town}governance settings below the safe minimums ({'; '.join(weak)}): set "
            "short_periods=True to allow them on this local test chain."
        )


def chamber_settings(
    spec: DaoSpec, chain_id: int, platform_proposer: str, slug: str = ""
) -> ChamberSettings:
    """Validate `spec` for `chain_id` and turn it into the governor's constructor settings."""
    validate(spec, chain_id, slug)
    per_block = block_seconds(chain_id)
    return ChamberSettings(
        voting_delay=to_blocks(spec.voting_delay, per_block),
        voting_period=to_blocks(spec.voting_period, per_block),
        proposal_threshold=spec.proposal_threshold,
        quorum_numerator=spec.quorum_percent,
        quorum_floor=spec.quorum_floor,
        platform_proposer=platform_proposer,
    )
