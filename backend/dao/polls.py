"""Advisory multi-option polls on the town's TownPoll (docs/adr/0003).

Staff create a poll (sent by the poll_creator role key through the outbox); members see their weight
(the chamber token's votes at the snapshot, the block before creation) and vote for one option
without gas: the ballot `Ballot(pollId, option, voter)` is signed by the built-in account here
or by the member's own wallet in the browser, and relayed as `castVoteBySig`. Results per option
are read from the contract; indexed PollCreated / VoteCast / PollCanceled events fill
dao_polls / dao_poll_votes. Every method that changes something commits once or raises.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from flask_babel import gettext
from sqlalchemy import select

from backend.accounts.models import User
from backend.accounts.roles import require_user
from backend.chain.api import (
    POLL_STATES,
    AuditEntry,
    ContractCall,
    Sender,
    Subject,
    for_browser,
    poll_ballot_typed_data,
)
from backend.core.errors import N_, InvalidInput, NotFound
from backend.core.idempotency import first_answer
from backend.core.numbers import ascii_int, is_ascii_digits
from backend.dao.common import (
    FAILED_TX_STATES,
    LOST,
    MAX_TITLE,
    DaoService,
    chamber_of,
    explain,
    judge_weight,
    refuse_with,
    require_own_wallet,
    text_field,
    tx_json,
    unrecorded_reason,
)
from backend.dao.errors import InvalidOption
from backend.dao.models import POLL_TOKEN_ARTIFACTS, POLL_TOKEN_KEYS, DaoPoll, DaoPollVote
from backend.regions.models import Town

MIN_OPTIONS, MAX_OPTIONS = 2, 10
MAX_OPTION = 100
MIN_DURATION, MAX_DURATION = 10, 1_000_000  # blocks
POLL = "TownPoll"
NO_SUCH_POLL = N_("This poll does not exist in this town.")


def poll_contract(town: Town) -> str:
    return f"towns.{town.slug}.TownPoll"


def token_key(town: Town, chamber: str) -> str:
    return f"towns.{town.slug}.{POLL_TOKEN_KEYS[chamber]}"


# ---------------------------------------------------------------------------- input


@dataclass(frozen=True)
class PollInput:
    chamber: str
    title_ja: str
    title_en: str
    options: list[dict[str, str]]
    duration: int


def _option_list(data: Mapping[str, Any]) -> list[dict[str, str]]:
    raw = data.get("options")
    if not isinstance(raw, list):
        raise InvalidInput(N_("Give the poll 2 to 10 options."), field="options")
    out = []
    for item in raw:
        if isinstance(item, str):
            item = {"ja": item, "en": ""}
        if not isinstance(item, dict):
            raise InvalidInput(N_("Each option needs a label."), field="options")
        ja, en = text_field(item, "ja", MAX_OPTION), text_field(item, "en", MAX_OPTION)
        if ja or en:  # blank rows of the form are left out
            out.append({"ja": ja, "en": en})
    if not MIN_OPTIONS <= len(out) <= MAX_OPTIONS:
        raise InvalidInput(N_("Give the poll 2 to 10 options."), field="options")
    return out


def parse_duration(value: object) -> int:
    if is_ascii_digits(value):
        value = ascii_int(value)  # None past MAX_DIGITS (no ValueError)
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not MIN_DURATION <= value <= MAX_DURATION
    ):
        raise InvalidInput(
            N_("The poll lasts %(min)s to %(max)s blocks."),
            field="duration_blocks",
            min=MIN_DURATION,
            max=MAX_DURATION,
        )
    return value


def parse_poll(data: Mapping[str, Any]) -> PollInput:
    chamber = chamber_of(data)
    out = PollInput(
        chamber=chamber,
        title_ja=text_field(data, "title_ja", MAX_TITLE),
        title_en=text_field(data, "title_en", MAX_TITLE),
        options=_option_list(data),
        duration=parse_duration(data.get("duration_blocks")),
    )
    if not out.title_ja and not out.title_en:
        raise InvalidInput(N_("Give the poll a title (Japanese or English)."), field="title")
    return out


def parse_option(poll: DaoPoll, value: object) -> int:
    if is_ascii_digits(value):
        value = ascii_int(value)  # None past MAX_DIGITS (no ValueError)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < len(poll.options):
        raise InvalidOption(N_("Choose one of the %(count)s options."), count=len(poll.options))
    return value


# ---------------------------------------------------------------------------- views


@dataclass
class PollView:
    state: str  # submitting | failed | active | ended | canceled
    snapshot: int | None = None
    deadline: int | None = None
    tallies: list[int] = field(default_factory=list)
    total_weight: int = 0
    total_supply: int | None = None  # voting power at the snapshot (turnout's denominator)
    head_block: int | None = None
    snapshot_at: dt.datetime | None = None  # the blocks as times (see ProposalService)
    closes_at: dt.datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name, value in out.items():  # times as ISO 8601 (UTC) in the JSON API
            if isinstance(value, dt.datetime):
                out[name] = value.isoformat()
        return out


@dataclass
class PollEligibility:
    can_vote: bool
    reason: str  # eligible | sign_in | no_wallet | processing | ended | canceled |
    #              already_voted | no_card | card_after_snapshot | no_pass | pass_after_snapshot
    weight: int = 0
    current_weight: int = 0
    snapshot: int | None = None
    address: str | None = None
    option: int | None = None
    voted_at: dt.datetime | None = None  # when their vote was sent (or seen on chain)
    # submitted | counted; failed: their ballot's transaction failed (no vote: they may vote
    # again while the poll is open; voted_at is when that ballot was sent)
    vote_state: str | None = None
    message: str = ""
    wallet: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["voted_at"] = self.voted_at.isoformat() if self.voted_at else None
        return out


def _explain(e: PollEligibility, poll: DaoPoll) -> PollEligibility:
    messages = {
        "processing": lambda: gettext("This poll is being recorded; voting opens shortly."),
        "canceled": lambda: gettext("This poll was canceled."),
        "already_voted": lambda: gettext("You already voted in this poll."),
        "card_after_snapshot": lambda: gettext(
            "You got your card after the poll was announced, so it does not count for this poll."
        ),
        "pass_after_snapshot": lambda: gettext(
            "You got your resident pass after the poll was announced."
        ),
    }
    return explain(e, poll.chamber, messages)


def poll_json(poll: DaoPoll, locale: str) -> dict[str, Any]:
    return {
        "id": poll.id,
        "chamber": poll.chamber,
        "poll_id": poll.poll_id,
        "contract": poll.poll_address,
        "token": poll.token_address,
        "title": poll.title(locale),
        "title_ja": poll.title_ja,
        "title_en": poll.title_en,
        "options": [
            {"index": i, "label": poll.option_label(i, locale), **o}
            for i, o in enumerate(poll.options)
        ],
        "duration_blocks": poll.duration_blocks,
        "snapshot_block": poll.snapshot_block,
        "deadline_block": poll.deadline_block,
        "created_at": poll.created_at.isoformat(),
    }


class PollService(DaoService):
    """A town's advisory polls, who may vote in them, and their gasless votes."""

    def list_polls(self, town: Town) -> list[DaoPoll]:
        return self.list_rows(DaoPoll, town)

    def get_poll(self, town: Town, row_id: object) -> DaoPoll:
        return self.get_row(DaoPoll, town, row_id, NO_SUCH_POLL)

    # ------------------------------------------------------------------ create

    def create_poll(
        self,
        user: User | None,
        town: Town,
        data: Mapping[str, Any],
        key_value: object,
        *,
        actor: str | None = None,
    ) -> DaoPoll:
        """Staff create a poll (TownPoll.createPoll sent by the poll_creator role key)."""
        user, key, existing = self.start_create(DaoPoll, user, town, key_value, actor)
        if existing is not None:
            return existing
        # A twin with the same key committing after the look-up above: its poll is the answer,
        # not the UNIQUE key's IntegrityError (backend/core/idempotency.py).
        return first_answer(
            self.session,
            lambda: self._create_poll(user, town, data, key, actor),
            lambda: self.existing(DaoPoll, key, town),
        )

    def _create_poll(
        self, user: User | None, town: Town, data: Mapping[str, Any], key: str, actor: str | None
    ) -> DaoPoll:
        """The writing half of create_poll (no row with `key` was found); commits."""
        inp = parse_poll(data)
        poll_address, token_address = self.addresses(
            poll_contract(town), token_key(town, inp.chamber)
        )
        title = inp.title_en or inp.title_ja
        labels = [" / ".join(x for x in (o["ja"], o["en"]) if x) for o in inp.options]
        description = f"{title}\n\n[furusato:{town.slug}:poll:{key}]"
        poll = DaoPoll(
            town_id=town.id,
            chamber=inp.chamber,
            poll_address=poll_address,
            token_address=token_address,
            idempotency_key=key,
            title_ja=inp.title_ja,
            title_en=inp.title_en,
            options=inp.options,
            duration_blocks=inp.duration,
            description=description,
            created_by=user.id if user is not None else None,
        )
        self.session.add(poll)
        self.session.flush()
        tx = self.outbox.enqueue(
            self.session,
            ContractCall(
                poll_address,
                "createPoll",
                [token_address, labels, inp.duration, description],
                artifact_name=POLL,
            ),
            sender=Sender.role(
                "poll_creator", town_id=town.id, user_id=user.id if user is not None else None
            ),
            key=f"dao.poll:{key}",
            subject=Subject("dao_poll", poll.id),
            audit=AuditEntry(
                actor=actor or f"user:{user.id}",  # type: ignore[union-attr]
                action="dao.poll_create",
                subject_type="dao_poll",
                subject_id=str(poll.id),
                reason=title,
                details={"chamber": inp.chamber, "options": len(labels), "blocks": inp.duration},
            ),
        )
        poll.create_tx_id = tx.id
        self.session.commit()
        return poll

    # ------------------------------------------------------------------ chain view

    def poll_view(self, poll: DaoPoll) -> PollView:
        if poll.poll_id is None:
            tx = self.tx(poll.create_tx_id)
            failed = tx is not None and tx.state in FAILED_TX_STATES
            return PollView(
                state="failed" if failed else "submitting", tallies=[0] * len(poll.options)
            )
        addr, pid = poll.poll_address, int(poll.poll_id)
        state = POLL_STATES[int(self.read(addr, "state", pid, artifact_name=POLL))]
        # Tallies first: a vote mined between the two reads is then in the total too (votes only
        # add), so the total shown is never below the sum of the tallies shown with it.
        tallies = [int(x) for x in self.read(addr, "results", pid, artifact_name=POLL)]
        _token, snapshot, deadline, _count, total = self.read(
            addr, "pollInfo", pid, artifact_name=POLL
        )
        view = PollView(
            state=state,
            snapshot=int(snapshot),
            deadline=int(deadline),
            tallies=tallies,
            total_weight=int(total),
        )
        view.total_supply = int(
            self.read(
                poll.token_address,
                "getPastTotalSupply",
                int(snapshot),
                artifact_name=POLL_TOKEN_ARTIFACTS[poll.chamber],
            )
        )
        clock = self.block_clock()
        if clock is not None:
            view.head_block = clock.head
            if view.snapshot is not None:
                view.snapshot_at = clock.time_of(view.snapshot)
            if view.deadline is not None:
                view.closes_at = clock.time_of(view.deadline)
        return view

    # ------------------------------------------------------------------ eligibility

    def _my_vote(self, poll: DaoPoll, address: str) -> DaoPollVote | None:
        return self.session.scalar(
            select(DaoPollVote).where(
                DaoPollVote.poll_row_id == poll.id, DaoPollVote.voter == address
            )
        )

    def poll_eligibility(
        self, user: User | None, poll: DaoPoll, view: PollView | None = None
    ) -> PollEligibility:
        """Whether `user` may vote in `poll` now, with what weight and why (nothing signed)."""
        wallet = self.voter_wallet(user)
        if isinstance(wallet, str):
            return _explain(PollEligibility(False, wallet), poll)
        address = wallet[0]
        view = view or self.poll_view(poll)
        e = PollEligibility(False, "", snapshot=view.snapshot, address=address, wallet=wallet[1])
        artifact = POLL_TOKEN_ARTIFACTS[poll.chamber]
        e.current_weight = int(
            self.read(poll.token_address, "getVotes", address, artifact_name=artifact)
        )
        if view.state in ("submitting", "failed"):
            e.reason = unrecorded_reason(view.state)
            return _explain(e, poll)
        e.weight = int(
            self.read(
                poll.token_address, "getPastVotes", address, view.snapshot, artifact_name=artifact
            )
        )
        mine = self._my_vote(poll, address)
        lost = self.lost(mine)  # its transaction failed: no vote, the voter may vote again
        pid = int(poll.poll_id or 0)
        voted = (mine is not None and not lost) or bool(
            self.read(poll.poll_address, "hasVoted", pid, address, artifact_name=POLL)
        )
        if lost and not voted and mine is not None:  # said on the page: "you may vote again"
            e.voted_at, e.vote_state = mine.created_at, LOST
        if voted:
            e.reason = "already_voted"
            if mine is not None and not lost:
                e.option, e.voted_at, e.vote_state = mine.option, mine.created_at, mine.state
        elif view.state != "active":
            e.reason = view.state  # ended | canceled
        else:
            judge_weight(e, poll.chamber)
        return _explain(e, poll)

    # ------------------------------------------------------------------ voting

    def check_poll_vote(
        self, user: User | None, town: Town, poll: DaoPoll, value: object
    ) -> tuple[int, PollEligibility]:
        """(option, eligibility) when `user` may vote in `poll` now; the refusals otherwise."""
        user = require_user() if user is None else user
        if poll.town_id != town.id:
            raise NotFound(NO_SUCH_POLL)
        option = parse_option(poll, value)
        e = self.poll_eligibility(user, poll)
        if not e.can_vote:
            refuse_with(
                e,
                already_voted=N_("You already voted in this poll."),
                closed=N_("Voting is not open for this poll."),
                not_eligible=N_("You may not vote in this poll: %(why)s"),
            )
        return option, e

    def _ballot(self, poll: DaoPoll, option: int, voter: str) -> dict[str, Any]:
        domain = self.chain.eip712_domain(poll.poll_address, artifact_name=POLL)
        return poll_ballot_typed_data(domain, int(poll.poll_id or 0), option, voter)

    def prepare_poll_ballot(
        self, user: User | None, town: Town, poll: DaoPoll, value: object
    ) -> dict[str, Any]:
        """The EIP-712 Ballot an own-wallet user signs (same checks as `cast_poll_vote`)."""
        user = require_user() if user is None else user
        option, e = self.check_poll_vote(user, town, poll, value)
        require_own_wallet(e)
        typed = self._ballot(poll, option, str(e.address))
        return {"typed_data": for_browser(typed), "voter": e.address, "option": option}

    def cast_poll_vote(
        self,
        user: User | None,
        town: Town,
        poll: DaoPoll,
        value: object,
        signature: object = None,
    ) -> DaoPollVote:
        """Queue TownPoll.castVoteBySig (gasless) for one option, signed by the built-in account
        here or (own wallet) given as `signature` over `prepare_poll_ballot`'s typed data."""
        user = require_user() if user is None else user
        option, e = self.check_poll_vote(user, town, poll, value)
        voter = str(e.address)
        typed = self._ballot(poll, option, voter)
        sig, signer, how, _ = self.sign_ballot(user, e, lambda: (typed, None), signature)
        vote = DaoPollVote(
            poll_row_id=poll.id,
            voter=voter,
            user_id=user.id,
            option=option,
            weight=Decimal(e.weight),
            state="submitted",
        )
        return self.relay_vote(
            vote,
            already_voted=N_("You already voted in this poll."),
            key=f"dao.poll_vote:{poll.id}:{voter}",
            contract=poll.poll_address,
            artifact_name=POLL,
            args=[int(poll.poll_id or 0), option, voter, sig],
            signer=signer,
            town=town,
            user=user,
            audit=AuditEntry(
                actor=f"user:{user.id}",
                action="dao.poll_vote",
                subject_type="dao_poll",
                subject_id=str(poll.id),
                reason=f"gasless poll vote ({how} signature)",
                details={"option": option, "weight": e.weight, "voter": voter},
            ),
        )

    # ------------------------------------------------------------------ results

    def poll_results(self, poll: DaoPoll, view: PollView | None = None) -> dict[str, Any]:
        view = view or self.poll_view(poll)
        return {
            "poll": poll.id,
            **view.as_dict(),
            **self.vote_counts(DaoPollVote.poll_row_id, poll.id),
            "create_tx": tx_json(self.tx(poll.create_tx_id)),
        }
