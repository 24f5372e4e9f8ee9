"""What the DAO's services share: the base service (session, chain, outbox, accounts), the
look-ups, and the eligibility and gasless-ballot steps that proposals and polls both take.

Proposals (backend/dao/proposals.py), their treasury steps (treasury.py) and polls (polls.py)
are services over one DB session built with `DaoService.current()` for a request or task.
Every public method that changes something is one unit of work: it commits (business row +
outbox row + audit row together) or raises an AppError and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol, Self, TypeVar

from flask import current_app
from flask_babel import gettext, ngettext
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

from backend.accounts.models import CUSTODIAL, EXTERNAL, Address, User
from backend.accounts.roles import STAFF, require_town_role
from backend.accounts.services import AccountService, account_service
from backend.chain import api as chain_api
from backend.chain.api import (
    FAILED_CALL_STATES,
    AuditEntry,
    ChainStatus,
    ChainUnavailable,
    ContractCall,
    Eip712Domain,
    OutboxService,
    OutboxTx,
    Sender,
    Signer,
    Subject,
    YenToken,
    outbox_service,
    recover_typed_data_signer,
    relay_signer,
    signature_hex,
)
from backend.core.db import get_db, utcnow
from backend.core.errors import N_, InvalidInput, NotFound, ServiceUnavailable
from backend.core.upsert import lock_row
from backend.dao.errors import AlreadyVoted, InvalidSignature, NotEligible, VotingClosed
from backend.dao.models import CARD, CHAMBERS, DaoPoll, DaoPollVote, DaoProposal, DaoVote
from backend.regions.models import Town

MAX_TITLE = 200
_KEY = re.compile(r"^[A-Za-z0-9_.:-]{8,100}$")
FAILED_TX_STATES = FAILED_CALL_STATES  # the outbox's: the call was never executed
# A vote of ours is "submitted" until its VoteCast is indexed ("counted"); "failed" when its
# transaction failed (backend/dao/vote_state.py): then it is no vote, and its voter may vote again.
SUBMITTED, COUNTED, LOST = "submitted", "counted", "failed"
# What a new ballot of the same voter writes over a lost vote's row (the other columns name the
# proposal or poll and the voter, or are the chain's once it counts the vote).
_BALLOT_COLUMNS = ("user_id", "support", "option", "weight", "nonce")
NODE_DOWN = N_("The blockchain node is not answering; please try again shortly.")

Row = TypeVar("Row", DaoProposal, DaoPoll)
Vote = DaoVote | DaoPollVote
VoteT = TypeVar("VoteT", DaoVote, DaoPollVote)
T = TypeVar("T")


class Chain(Protocol):
    """The chain gateway as the DAO uses it (backend.chain.gateway.Web3Gateway)."""

    def status(self) -> ChainStatus: ...

    def read(
        self, contract: str, function: str, *args: Any, artifact_name: str | None = None
    ) -> Any: ...

    def address_of(self, contract: str) -> str: ...

    def eip712_domain(self, contract: str, artifact_name: str | None = None) -> Eip712Domain: ...

    def yen_token(self) -> YenToken: ...

    def block_timestamp(self, number: int | str, block_hash: str | None = None) -> int: ...

    def chain_now(self) -> int: ...


@dataclass(frozen=True)
class BlockClock:
    """The chain's head and its time, to say when a block number comes (the governors count
    votes in blocks). A block ahead is estimated from the recent pace of blocks, so pages say
    "about" such a time; a block behind is estimated the same way (one read, not one per
    block)."""

    head: int
    head_time: int  # Unix seconds of the head block
    seconds_per_block: float
    now_time: int  # the chain's clock (the next block's time): what a timelock checks

    def time_of(self, block: int) -> dt.datetime:
        seconds = self.head_time + (block - self.head) * self.seconds_per_block
        return dt.datetime.fromtimestamp(round(seconds), tz=dt.UTC)

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.now_time, tz=dt.UTC)


PACE_BLOCKS = 100  # blocks looked back to measure the pace
DEFAULT_BLOCK_SECONDS = 12.0  # when the chain is too young to measure (Ethereum's pace)


class Verdict(Protocol):
    """An eligibility (a proposal's or a poll's) as the shared steps read and set it."""

    can_vote: bool
    reason: str
    weight: int
    current_weight: int
    snapshot: int | None
    address: str | None
    message: str
    wallet: str | None


V = TypeVar("V", bound=Verdict)


# ---------------------------------------------------------------------------- input


def text_field(data: Mapping[str, Any], name: str, limit: int) -> str:
    """`data[name]` stripped ("" when absent); InvalidInput when not text or too long."""
    value = data.get(name, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput(N_("%(field)s must be text."), field=name)
    value = value.strip()
    if len(value) > limit:
        raise InvalidInput(
            N_("%(field)s is too long (at most %(limit)s characters)."), field=name, limit=limit
        )
    return value


def idempotency_key(value: object) -> str:
    if not isinstance(value, str) or not _KEY.match(value):
        raise InvalidInput(
            N_("A request key (8 to 100 letters, digits or -_.:) is required."),
            field="idempotency_key",
        )
    return value


def chamber_of(data: Mapping[str, Any]) -> str:
    """The chamber a new proposal or poll is put to (the card chamber unless given)."""
    chamber = data.get("chamber") or CARD
    if chamber not in CHAMBERS:
        raise InvalidInput(N_("Choose the card chamber or the resident chamber."), field="chamber")
    return str(chamber)


# ---------------------------------------------------------------------------- eligibility


def unrecorded_reason(state: str) -> str:
    """Why nobody votes on a proposal or poll that is "submitting" or "failed" on chain."""
    return "processing" if state == "submitting" else "ended"


def judge_weight(e: Verdict, chamber: str) -> None:
    """Set `e`'s verdict on an open vote from its weights (proposals and polls alike)."""
    if e.weight > 0:
        e.can_vote, e.reason = True, "eligible"
    elif e.current_weight > 0:
        e.reason = "card_after_snapshot" if chamber == CARD else "pass_after_snapshot"
    else:
        e.reason = "no_card" if chamber == CARD else "no_pass"


def explain(e: V, chamber: str, own: Mapping[str, Callable[[], str]]) -> V:
    """Set `e.message` for its reason: the messages proposals and polls share, then `own`
    (the reasons whose wording names the proposal or the poll). Returns `e`."""
    messages: dict[str, Callable[[], str]] = {
        "sign_in": lambda: gettext("Sign in to see whether you may vote."),
        "no_wallet": lambda: gettext("Your account has no wallet to vote with."),
        "ended": lambda: gettext("Voting has ended."),
        "no_card": lambda: gettext(
            "You hold no ambassador card at the snapshot (when the vote was announced)."
        ),
        "no_pass": lambda: gettext(
            "You held no resident pass at the snapshot (when the vote was announced)."
        ),
        **own,
    }
    if e.reason == "eligible":
        e.message = (
            ngettext(
                "You may vote, weight %(num)d, because you hold %(num)d ambassador card.",
                "You may vote, weight %(num)d, because you hold %(num)d ambassador cards.",
                e.weight,
            )
            if chamber == CARD
            else gettext("You may vote, weight 1, because you hold a resident pass.")
        )
    elif e.reason in messages:
        e.message = messages[e.reason]()
    return e


def refuse_with(e: Verdict, *, already_voted: str, closed: str, not_eligible: str) -> None:
    """Raise the error matching a negative eligibility (proposals and polls alike), worded
    with the caller's messages (`not_eligible` takes %(why)s)."""
    if e.reason == "already_voted":
        raise AlreadyVoted(already_voted)
    if e.reason in ("processing", "not_started", "ended", "canceled"):
        raise VotingClosed(closed, reason=e.reason)
    if e.reason == "no_wallet":
        raise InvalidInput(N_("Your account has no wallet to vote with."))
    raise NotEligible(not_eligible, why=e.message, reason=e.reason)


def require_own_wallet(e: Verdict) -> None:
    """A ballot to sign in the browser is only for an own wallet's voter."""
    if e.wallet != EXTERNAL:
        raise InvalidInput(N_("Your built-in account signs your vote for you; just vote."))


def tx_json(tx: OutboxTx | None) -> dict[str, Any] | None:
    if tx is None:
        return None
    return {"state": tx.state, "tx_hash": tx.tx_hash}


# ---------------------------------------------------------------------------- the base service


class DaoService:
    """Base of the DAO's services over one DB session. `chain` reads the governors, polls and
    tokens; `outbox` and `accounts` are callables (built on first use: the outbox sends what
    changes on chain, the accounts sign ballots with a member's built-in account)."""

    def __init__(
        self,
        session: Session,
        chain: Chain,
        *,
        outbox: Callable[[], OutboxService],
        accounts: Callable[[], AccountService],
    ) -> None:
        self.session = session
        self.chain = chain
        self._outbox = outbox
        self._accounts = accounts

    @classmethod
    def current(cls) -> Self:
        """This service for the current app and request (or task)."""
        return cls(
            get_db().session(),
            current_app.extensions["chain"],
            outbox=outbox_service,
            accounts=account_service,
        )

    @property
    def outbox(self) -> OutboxService:
        return self._outbox()

    # ------------------------------------------------------------------ chain

    def read(self, contract: str, fn: str, *args: Any, artifact_name: str | None = None) -> Any:
        """A view call; ServiceUnavailable (503) while the node is not answering."""
        try:
            return self.chain.read(contract, fn, *args, artifact_name=artifact_name)
        except ChainUnavailable as exc:
            raise ServiceUnavailable(NODE_DOWN) from exc

    def addresses(self, *keys: str) -> list[str]:
        """The deployed addresses of `keys`; 503 when the node is down, 400 before a DAO exists."""
        try:
            return [self.chain.address_of(key) for key in keys]
        except ChainUnavailable as exc:
            raise ServiceUnavailable(NODE_DOWN) from exc
        except LookupError:
            raise InvalidInput(N_("This town has no DAO deployed yet.")) from None

    def block_clock(self) -> BlockClock | None:
        """The head block, its time and the pace of blocks; None while the node is away."""
        try:
            head = self.chain.status().head_block
            head_time = self.chain.block_timestamp(head)
            back = max(0, head - PACE_BLOCKS)
            pace = DEFAULT_BLOCK_SECONDS
            if head > back:
                # A chain that mines on demand (a test chain) may put many blocks in one
                # second: never less than one second per block.
                pace = max(1.0, (head_time - self.chain.block_timestamp(back)) / (head - back))
            now = self.chain.chain_now()
        except ChainUnavailable:
            return None
        return BlockClock(head, head_time, pace, max(now, head_time))

    def head_block(self) -> int | None:
        """The chain's latest block for a view, or None while the node is not answering."""
        try:
            return self.chain.status().head_block
        except ChainUnavailable:
            return None

    # ------------------------------------------------------------------ rows

    def town_by_slug(self, slug: str) -> Town:
        town = self.session.scalar(select(Town).where(Town.slug == slug))
        if town is None:
            raise NotFound(N_("This town does not exist."))
        return town

    def tx(self, tx_id: int | None) -> OutboxTx | None:
        return chain_api.outbox_tx(self.session, tx_id)

    def list_rows(self, model: type[Row], town: Town) -> list[Row]:
        """A town's proposals or polls, newest first."""
        return list(
            self.session.scalars(
                select(model).where(model.town_id == town.id).order_by(model.id.desc())
            )
        )

    def get_row(self, model: type[Row], town: Town, row_id: object, missing: str) -> Row:
        """The row `row_id` of `town`; NotFound(`missing`) for another town's or an unknown one."""
        try:
            rid = int(row_id)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            rid = -1
        row = self.session.get(model, rid) if rid > 0 else None
        if row is None or row.town_id != town.id:
            raise NotFound(missing)
        return row

    def existing(self, model: type[Row], key: str, town: Town) -> Row | None:
        """The row an earlier request with `key` created (a double submit), if any."""
        found = self.session.scalar(select(model).where(model.idempotency_key == key))
        if found is not None and found.town_id != town.id:
            raise InvalidInput(N_("This request key was used for another town."))
        return found

    def start_create(
        self, model: type[Row], user: User | None, town: Town, key_value: object, actor: str | None
    ) -> tuple[User | None, str, Row | None]:
        """The common start of creating a proposal or poll: (the staff member, unless an
        `actor` such as the demo data acts; the request key; the row a double submit of that key
        already created, if any)."""
        if actor is None:
            user = require_town_role(user, town.id, STAFF)
        key = idempotency_key(key_value)
        return user, key, self.existing(model, key, town)

    # ------------------------------------------------------------------ voters

    def user_wallet(self, user: User) -> tuple[str, str] | None:
        """(address, kind) a user votes with: the built-in account (CUSTODIAL: the platform
        signs for them), else their own wallet (EXTERNAL: they sign the ballot in the browser)."""
        rows = self.session.scalars(
            select(Address).where(Address.user_id == user.id).order_by(Address.id)
        ).all()
        for kind in (CUSTODIAL, EXTERNAL):
            for a in rows:
                if a.kind == kind:
                    return str(a.address), kind
        return None

    def voter_wallet(self, user: User | None) -> tuple[str, str] | str:
        """(address, kind) `user` would vote with, or why not: "sign_in" | "no_wallet"."""
        if user is None:
            return "sign_in"
        return self.user_wallet(user) or "no_wallet"

    def lock_voter(self, voter: str) -> None:
        """Serialise the ballots of `voter` until this transaction ends (ONE UPDATE that changes
        nothing: a row lock on PostgreSQL, the write lock on SQLite). A governor ballot carries
        the voter's next nonce, which counts their ballots still in flight: two ballots signed
        at once would otherwise take the same nonce, and the chain refuses the second."""
        lock_row(self.session, Address.kind, Address.address == voter)

    def sign_ballot(
        self,
        user: User,
        e: Verdict,
        ballot: Callable[[], tuple[dict[str, Any], T]],
        signature: object,
    ) -> tuple[str, Signer, str, T]:
        """(signature hex, relay signer, "wallet" | "built-in", extra) of a gasless
        vote: an own wallet's `signature` must recover to the voter over `ballot()`'s typed
        data; the built-in account's ballot is signed here. `ballot` returns (typed data, extra)."""
        voter = str(e.address)
        if e.wallet == EXTERNAL:
            typed, extra = ballot()
            if recover_typed_data_signer(typed, signature) != voter:
                raise InvalidSignature(
                    N_("The signature is not your wallet's signature of this ballot; sign again.")
                )
            return signature_hex(signature), relay_signer(self.outbox, voter), "wallet", extra
        user_signer = self._accounts().custodial_signer(user)
        typed, extra = ballot()
        return signature_hex(user_signer.sign_typed_data(typed)), user_signer, "built-in", extra

    def lost(self, vote: Vote | None) -> bool:
        """Whether `vote` is a ballot of ours whose transaction failed (reverted, failed or
        cancelled: the chain never counted it). It is no vote: while voting is open its voter
        may cast a new ballot. Marked "failed" by the beat (vote_state.py), and seen as lost
        here from the moment the outbox says so. A counted vote is never lost."""
        if vote is None or vote.outbox_tx_id is None or vote.state == COUNTED:
            return False
        if vote.state == LOST:
            return True
        failed = chain_api.outbox_states(self.session, [vote.outbox_tx_id], only=FAILED_TX_STATES)
        return bool(failed)

    def add_vote(self, vote: VoteT, already_voted: str) -> tuple[VoteT, int | None]:
        """Record `vote`: (the row, the failed outbox row it replaces or None).

        A voter has one row per proposal or poll (UNIQUE, the indexer finds it by voter). A
        first ballot inserts it (savepoint); a ballot after a lost one takes the lost row over
        with ONE guarded UPDATE (still lost, still naming the failed transaction), so of
        ballots sent at once after a failure exactly one wins, on PostgreSQL and SQLite alike.
        AlreadyVoted(`already_voted`) for the others and for a voter whose vote stands."""
        model = type(vote)
        same_row = (
            DaoVote.proposal_row_id == vote.proposal_row_id
            if isinstance(vote, DaoVote)
            else DaoPollVote.poll_row_id == vote.poll_row_id
        )
        old = self.session.scalar(
            select(model)
            .where(same_row, model.voter == vote.voter)
            .execution_options(populate_existing=True)
        )
        if old is None:
            try:
                with self.session.begin_nested():
                    self.session.add(vote)
                    self.session.flush()
            except IntegrityError:
                raise AlreadyVoted(already_voted) from None
            return vote, None
        failed_tx = old.outbox_tx_id
        if not self.lost(old):
            raise AlreadyVoted(already_voted)
        taken = self.session.execute(
            update(model)
            .where(
                model.id == old.id,
                model.state.in_((SUBMITTED, LOST)),
                model.outbox_tx_id == failed_tx,
            )
            .values(
                {
                    **{c: getattr(vote, c) for c in _BALLOT_COLUMNS if hasattr(model, c)},
                    "state": SUBMITTED,
                    "tx_hash": None,
                    "block_number": None,
                    "created_at": utcnow(),
                }
            )
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]  # another ballot took it over
            raise AlreadyVoted(already_voted)
        self.session.refresh(old)
        return old, failed_tx

    def relay_vote(
        self,
        vote: VoteT,
        *,
        already_voted: str,
        key: str,
        contract: str,
        artifact_name: str,
        args: list[Any],
        signer: Signer,
        town: Town,
        user: User,
        audit: AuditEntry,
    ) -> VoteT:
        """Record `vote` and queue its castVoteBySig through the relayer (gasless); commits.
        The outbox row's subject is the vote (`dao_vote` or `dao_poll_vote`). A ballot after a
        lost one is a new outbox row: its key names the failed row it replaces (the first key
        still answers the failed row, and a new signature under it would be a conflict)."""
        vote, failed_tx = self.add_vote(vote, already_voted)
        if failed_tx is not None:
            key = f"{key}:after:{failed_tx}"
            audit = replace(audit, details={**audit.details, "replaces_tx": failed_tx})
        kind = "dao_vote" if isinstance(vote, DaoVote) else "dao_poll_vote"
        tx = self.outbox.enqueue(
            self.session,
            ContractCall(contract, "castVoteBySig", args, artifact_name=artifact_name),
            sender=Sender.user(signer, town_id=town.id, user_id=user.id),
            key=key,
            subject=Subject(kind, vote.id),
            audit=audit,
        )
        vote.outbox_tx_id = tx.id
        self.session.commit()
        return vote

    def vote_counts(self, row_column: InstrumentedAttribute[int], row_id: int) -> dict[str, int]:
        """voters_counted / votes_processing of a proposal's or a poll's votes (`row_column`
        is the vote table's column naming the proposal or poll)."""
        model = row_column.class_
        found = self.session.execute(
            select(model.state, func.count(model.id))
            .where(row_column == row_id)
            .group_by(model.state)
        )
        rows = {str(state): int(n) for state, n in found.all()}
        return {
            "voters_counted": int(rows.get("counted", 0)),
            "votes_processing": int(rows.get("submitted", 0)),
        }
