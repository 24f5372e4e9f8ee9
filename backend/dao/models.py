"""The DAO as the web shows it: proposals (with their bilingual text) and the votes cast.

The chain is the truth: proposal states and tallies are read from the governors; these rows hold
what the chain does not (titles in two languages, who asked) and a projection of the indexed
ProposalCreated / VoteCast / ProposalQueued / ProposalExecuted events (backend/dao/handlers.py).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import JSON, BigInteger, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backend.core.db import Base, utcnow
from backend.core.models import TokenAmount, register_audit_town_table

CARD = "card"  # towns.<slug>.CardChamber: 1 ambassador card = 1 vote
RESIDENT = "resident"  # towns.<slug>.ResidentChamber: 1 verified resident = 1 vote
CHAMBERS = (CARD, RESIDENT)
# A proposal put to both chambers (issue 15 §3, ADR 0021): a card-chamber row carrying the
# payout and a resident-chamber row (joint_of = the card row) approving it; it passes only when
# both chambers pass it (backend/dao/joint.py).
BOTH = "both"
CHAMBER_KEYS = {CARD: "CardChamber", RESIDENT: "ResidentChamber"}
PLATFORM = "platform"  # written by town staff on the platform (bilingual text, outbox-sent)
EXTERNAL = "external"  # created on chain by anyone else: indexed from ProposalCreated


# OpenZeppelin Governor 5.x (`_isValidDescriptionForProposer`): a description ending in
# "#proposer=0x<40 hex digits>" may only be proposed by that address, so nobody can take a
# proposal's id by proposing the same actions and text first. The platform's descriptions end so;
# on chain (and in `description`, whose hash is in the proposal id and the timelock's salt) the
# text is whole, and pages show it without the suffix.
PROPOSER_MARK = "#proposer="
_SUFFIX_LENGTH = len(PROPOSER_MARK) + 42  # the marker, "0x" and 40 hex digits
_HEX = frozenset("0123456789abcdefABCDEF")


def proposer_suffix(address: str) -> str:
    """The suffix that reserves a description for `address` (the account sending `propose`)."""
    return f"{PROPOSER_MARK}{address}"


def without_proposer(text: str) -> str:
    """`text` without a trailing "#proposer=0x..." (as the Governor reads it: the last 52
    characters exactly) and the blank lines before it; other text unchanged."""
    tail = text[-_SUFFIX_LENGTH:]
    if (
        len(tail) == _SUFFIX_LENGTH
        and tail.startswith(PROPOSER_MARK + "0x")
        and set(tail[len(PROPOSER_MARK) + 2 :]) <= _HEX
    ):
        return text[:-_SUFFIX_LENGTH].rstrip()
    return text


class DaoProposal(Base):
    """One treasury spending proposal on one chamber of a town."""

    __tablename__ = "dao_proposals"
    __table_args__ = (UniqueConstraint("governor_address", "proposal_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), index=True)
    chamber: Mapped[str] = mapped_column(String(16))
    governor_address: Mapped[str] = mapped_column(String(42))
    # uint256 as decimal text (Governor ids are hashes, too large for every SQL integer type)
    proposal_id: Mapped[str] = mapped_column(String(80))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    title_ja: Mapped[str] = mapped_column(String(200), default="")
    title_en: Mapped[str] = mapped_column(String(200), default="")
    body_ja: Mapped[str] = mapped_column(Text, default="")
    body_en: Mapped[str] = mapped_column(Text, default="")
    # The on-chain actions, exactly as proposed (needed again to queue and execute).
    description: Mapped[str] = mapped_column(Text)
    targets: Mapped[list[str]] = mapped_column(JSON)
    values: Mapped[list[str]] = mapped_column(JSON)
    calldatas: Mapped[list[str]] = mapped_column(JSON)
    # The payout this proposal asks for: `amount` of `token` ("yen" | "points") to `recipient`.
    token: Mapped[str] = mapped_column(String(16))
    token_address: Mapped[str] = mapped_column(String(42))
    recipient: Mapped[str] = mapped_column(String(42))
    amount: Mapped[Decimal] = mapped_column(TokenAmount)
    treasury_address: Mapped[str] = mapped_column(String(42))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Outbox rows of the admin calls (propose, queue, execute).
    propose_tx_id: Mapped[int | None] = mapped_column()
    queue_tx_id: Mapped[int | None] = mapped_column()
    execute_tx_id: Mapped[int | None] = mapped_column()
    # From indexed events.
    created_block: Mapped[int | None] = mapped_column()
    created_tx_hash: Mapped[str | None] = mapped_column(String(66))
    snapshot_block: Mapped[int | None] = mapped_column()
    deadline_block: Mapped[int | None] = mapped_column()
    queued_eta: Mapped[int | None] = mapped_column(BigInteger)  # unix seconds
    queued_tx_hash: Mapped[str | None] = mapped_column(String(66))
    executed_tx_hash: Mapped[str | None] = mapped_column(String(66))
    executed_block: Mapped[int | None] = mapped_column()
    canceled: Mapped[bool] = mapped_column(default=False)
    # What pages need from the governor and the indexer cannot see, recorded by the worker
    # (dao.record_proposal_facts) once it cannot change: the chamber's voting token (token(),
    # fixed at deployment) and quorum(snapshot) once the snapshot block is past. Pages decide
    # states and weights from them and the indexed events without asking the node
    # (backend/dao/projected.py, issue 16 §1).
    voting_token: Mapped[str | None] = mapped_column(String(42))
    quorum: Mapped[Decimal | None] = mapped_column(TokenAmount)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # PLATFORM or EXTERNAL; `proposer` is the ProposalCreated proposer once indexed.
    origin: Mapped[str] = mapped_column(String(16), default=PLATFORM, server_default=PLATFORM)
    proposer: Mapped[str | None] = mapped_column(String(42))
    # On the resident chamber's half of a proposal put to both chambers: the card chamber's
    # row, which carries the payout (this row's on-chain action pays nothing).
    joint_of: Mapped[int | None] = mapped_column(ForeignKey("dao_proposals.id"), index=True)

    @property
    def external(self) -> bool:
        return self.origin == EXTERNAL

    def title(self, locale: str) -> str:
        first, second = (self.title_ja, self.title_en)
        return without_proposer((first or second) if locale == "ja" else (second or first))

    def body(self, locale: str) -> str:
        """The text pages show (a proposal made elsewhere: its description, without the
        proposer suffix)."""
        first, second = (self.body_ja, self.body_en)
        return without_proposer((first or second) if locale == "ja" else (second or first))

    @property
    def proposal_id_int(self) -> int:
        return int(self.proposal_id)

    def actions(self) -> tuple[list[str], list[int], list[str]]:
        return list(self.targets), [int(v) for v in self.values], list(self.calldatas)


class DaoVote(Base):
    """One vote: submitted by us (user_id set, until the chain counts it) or indexed from a
    VoteCast event (anyone's)."""

    __tablename__ = "dao_votes"
    __table_args__ = (UniqueConstraint("proposal_row_id", "voter"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_row_id: Mapped[int] = mapped_column(ForeignKey("dao_proposals.id"), index=True)
    voter: Mapped[str] = mapped_column(String(42))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    support: Mapped[int] = mapped_column()
    weight: Mapped[Decimal] = mapped_column(TokenAmount, default=0)
    state: Mapped[str] = mapped_column(String(16), default="submitted")  # | "counted"
    nonce: Mapped[int | None] = mapped_column()
    outbox_tx_id: Mapped[int | None] = mapped_column()
    tx_hash: Mapped[str | None] = mapped_column(String(66))
    block_number: Mapped[int | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


POLL_TOKEN_KEYS = {CARD: "collections.ambassador", RESIDENT: "ResidentPass"}
POLL_TOKEN_ARTIFACTS = {CARD: "FanCollection", RESIDENT: "ResidentPass"}


class DaoPoll(Base):
    """One advisory multi-option poll on the town's TownPoll (docs/adr/0003).

    `poll_id` (TownPoll's sequential id) is known once the PollCreated event is indexed; the
    event is matched by `description`, which carries the request key."""

    __tablename__ = "dao_polls"
    __table_args__ = (UniqueConstraint("poll_address", "poll_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), index=True)
    chamber: Mapped[str] = mapped_column(String(16))
    poll_address: Mapped[str] = mapped_column(String(42))
    token_address: Mapped[str] = mapped_column(String(42))
    poll_id: Mapped[int | None] = mapped_column(BigInteger)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    title_ja: Mapped[str] = mapped_column(String(200), default="")
    title_en: Mapped[str] = mapped_column(String(200), default="")
    # [{"ja": ..., "en": ...}, ...]: option i is options[i]
    options: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    duration_blocks: Mapped[int] = mapped_column()
    description: Mapped[str] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    create_tx_id: Mapped[int | None] = mapped_column()
    # From the indexed PollCreated / PollCanceled events.
    created_block: Mapped[int | None] = mapped_column()
    created_tx_hash: Mapped[str | None] = mapped_column(String(66))
    snapshot_block: Mapped[int | None] = mapped_column()
    deadline_block: Mapped[int | None] = mapped_column()
    canceled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    def title(self, locale: str) -> str:
        first, second = (self.title_ja, self.title_en)
        return (first or second) if locale == "ja" else (second or first)

    def option_label(self, index: int, locale: str) -> str:
        o = self.options[index]
        first, second = o.get("ja", ""), o.get("en", "")
        return (first or second) if locale == "ja" else (second or first)


class DaoPollVote(Base):
    """One poll vote: submitted by us (user_id set) until indexed, or indexed (anyone's)."""

    __tablename__ = "dao_poll_votes"
    __table_args__ = (UniqueConstraint("poll_row_id", "voter"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    poll_row_id: Mapped[int] = mapped_column(ForeignKey("dao_polls.id"), index=True)
    voter: Mapped[str] = mapped_column(String(42))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    option: Mapped[int] = mapped_column()
    weight: Mapped[Decimal] = mapped_column(TokenAmount, default=0)
    state: Mapped[str] = mapped_column(String(16), default="submitted")  # | "counted"
    outbox_tx_id: Mapped[int | None] = mapped_column()
    tx_hash: Mapped[str | None] = mapped_column(String(66))
    block_number: Mapped[int | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


EXTERNAL_PROPOSAL = "external_proposal"  # a chamber got a proposal made outside the platform
PAYOUT_CANCELLED = "payout_cancelled"  # the treasury cancelled a queued operation
ALERT_KINDS = (EXTERNAL_PROPOSAL, PAYOUT_CANCELLED)


class DaoAlert(Base):
    """Something on chain that town staff must look at (shown on the town's DAO page until a
    staff member marks it seen). Written by the indexer, deleted again if a reorg drops the
    event; one row per (event tx, log index)."""

    __tablename__ = "dao_alerts"
    __table_args__ = (UniqueConstraint("tx_hash", "log_index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    proposal_row_id: Mapped[int | None] = mapped_column(ForeignKey("dao_proposals.id"))
    contract_address: Mapped[str] = mapped_column(String(42))
    actor: Mapped[str | None] = mapped_column(String(42))  # proposer / canceller when known
    details: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    tx_hash: Mapped[str] = mapped_column(String(66))
    log_index: Mapped[int] = mapped_column()
    block_number: Mapped[int] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    seen_at: Mapped[dt.datetime | None] = mapped_column()
    seen_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


# Audit rows about a proposal, a poll or an alert belong to its town (the console's audit log).
register_audit_town_table("dao_proposal", DaoProposal)
register_audit_town_table("dao_poll", DaoPoll)
register_audit_town_table("dao_alert", DaoAlert)
