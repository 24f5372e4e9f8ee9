"""Advisory multi-option polls on the town's TownPoll (docs/adr/0003).

Staff create a poll (sent by the poll_creator role key through the outbox); members see their weight
(the chamber token's votes at the snapshot, the block before creation) and vote for one option
without gas: the ballot `Ballot(pollId, option, voter)` is signed by the built-in account here
or by the member's own wallet in the browser, and relayed as `castVoteBySig`. Results per option
are read from the contract; indexed PollCreated / VoteCast / PollCanceled events fill
dao_polls / dao_poll_votes. Every function that changes something commits once or raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from flask_babel import gettext
from sqlalchemy import select

from backend.accounts.models import EXTERNAL, User
from backend.accounts.roles import STAFF, require_town_role, require_user
from backend.chain.api import (
    POLL_STATES,
    AuditEntry,
    ContractCall,
    Sender,
    Subject,
    for_browser,
    outbox_service,
    poll_ballot_typed_data,
)
from backend.core.errors import N_, InvalidInput, NotFound
from backend.core.numbers import is_ascii_digits
from backend.dao.errors import InvalidOption
from backend.dao.models import (
    CARD,
    CHAMBERS,
    POLL_TOKEN_ARTIFACTS,
    POLL_TOKEN_KEYS,
    DaoPoll,
    DaoPollVote,
)
from backend.dao.services import (
    FAILED_TX_STATES,
    MAX_TITLE,
    _addresses,
    _chain,
    _existing,
    _get_row,
    _head_block,
    _idempotency_key,
    _judge_weight,
    _list_rows,
    _read,
    _session,
    _text,
    _tx,
    _tx_json,
    _unrecorded_reason,
    _voter_wallet,
    add_vote,
    explain,
    refuse_with,
    sign_ballot,
    vote_counts,
)
from backend.regions.models import Town

MIN_OPTIONS, MAX_OPTIONS = 2, 10
MAX_OPTION = 100
MIN_DURATION, MAX_DURATION = 10, 1_000_000  # blocks
POLL = "TownPoll"


def poll_contract(town: Town) -> str:
    return f"towns.{town.slug}.TownPoll"


def token_key(town: Town, chamber: str) -> str:
    return f"towns.{town.slug}.{POLL_TOKEN_KEYS[chamber]}"


def list_polls(town: Town) -> list[DaoPoll]:
    return _list_rows(DaoPoll, town)


def get_poll(town: Town, row_id: Any) -> DaoPoll:
    return _get_row(DaoPoll, town, row_id, N_("This poll does not exist in this town."))


# ---------------------------------------------------------------------------- create


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
        ja, en = _text(item, "ja", MAX_OPTION), _text(item, "en", MAX_OPTION)
        if ja or en:  # blank rows of the form are left out
            out.append({"ja": ja, "en": en})
    if not MIN_OPTIONS <= len(out) <= MAX_OPTIONS:
        raise InvalidInput(N_("Give the poll 2 to 10 options."), field="options")
    return out


def _duration(value: Any) -> int:
    if is_ascii_digits(value):
        value = int(value.strip())
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
    chamber = data.get("chamber") or CARD
    if chamber not in CHAMBERS:
        raise InvalidInput(N_("Choose the card chamber or the resident chamber."), field="chamber")
    out = PollInput(
        chamber=chamber,
        title_ja=_text(data, "title_ja", MAX_TITLE),
        title_en=_text(data, "title_en", MAX_TITLE),
        options=_option_list(data),
        duration=_duration(data.get("duration_blocks")),
    )
    if not out.title_ja and not out.title_en:
        raise InvalidInput(N_("Give the poll a title (Japanese or English)."), field="title")
    return out


def create_poll(
    user: User | None,
    town: Town,
    data: Mapping[str, Any],
    idempotency_key: Any,
    *,
    actor: str | None = None,
) -> DaoPoll:
    """Staff create a poll (TownPoll.createPoll sent by the poll_creator role key)."""
    if actor is None:
        user = require_town_role(user, town.id, STAFF)
    key = _idempotency_key(idempotency_key)
    s = _session()
    existing = _existing(DaoPoll, key, town)
    if existing is not None:
        return existing
    inp = parse_poll(data)
    poll_address, token_address = _addresses(poll_contract(town), token_key(town, inp.chamber))
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
    s.add(poll)
    s.flush()
    tx = outbox_service().enqueue(
        s,
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
    s.commit()
    return poll


# ---------------------------------------------------------------------------- chain view


@dataclass
class PollView:
    state: str  # submitting | failed | active | ended | canceled
    snapshot: int | None = None
    deadline: int | None = None
    tallies: list[int] = field(default_factory=list)
    total_weight: int = 0
    total_supply: int | None = None  # voting power at the snapshot (turnout's denominator)
    head_block: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def poll_view(poll: DaoPoll) -> PollView:
    if poll.poll_id is None:
        tx = _tx(poll.create_tx_id)
        failed = tx is not None and tx.state in FAILED_TX_STATES
        return PollView(state="failed" if failed else "submitting", tallies=[0] * len(poll.options))
    addr, pid = poll.poll_address, int(poll.poll_id)
    state = POLL_STATES[int(_read(addr, "state", pid, artifact_name=POLL))]
    _token, snapshot, deadline, _count, total = _read(addr, "pollInfo", pid, artifact_name=POLL)
    tallies = [int(x) for x in _read(addr, "results", pid, artifact_name=POLL)]
    view = PollView(
        state=state,
        snapshot=int(snapshot),
        deadline=int(deadline),
        tallies=tallies,
        total_weight=int(total),
    )
    view.total_supply = int(
        _read(
            poll.token_address,
            "getPastTotalSupply",
            int(snapshot),
            artifact_name=POLL_TOKEN_ARTIFACTS[poll.chamber],
        )
    )
    view.head_block = _head_block()
    return view


# ---------------------------------------------------------------------------- eligibility


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
    message: str = ""
    wallet: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _my_vote(poll: DaoPoll, address: str) -> DaoPollVote | None:
    return _session().scalar(
        select(DaoPollVote).where(DaoPollVote.poll_row_id == poll.id, DaoPollVote.voter == address)
    )


def poll_eligibility(
    user: User | None, poll: DaoPoll, view: PollView | None = None
) -> PollEligibility:
    """Whether `user` may vote in `poll` now, with what weight and why (nothing signed)."""
    wallet = _voter_wallet(user)
    if isinstance(wallet, str):
        return _explain(PollEligibility(False, wallet), poll)
    address = wallet[0]
    view = view or poll_view(poll)
    e = PollEligibility(False, "", snapshot=view.snapshot, address=address, wallet=wallet[1])
    artifact = POLL_TOKEN_ARTIFACTS[poll.chamber]
    e.current_weight = int(_read(poll.token_address, "getVotes", address, artifact_name=artifact))
    if view.state in ("submitting", "failed"):
        e.reason = _unrecorded_reason(view.state)
        return _explain(e, poll)
    e.weight = int(
        _read(poll.token_address, "getPastVotes", address, view.snapshot, artifact_name=artifact)
    )
    mine = _my_vote(poll, address)
    voted = mine is not None or bool(
        _read(poll.poll_address, "hasVoted", int(poll.poll_id or 0), address, artifact_name=POLL)
    )
    if voted:
        e.reason, e.option = "already_voted", mine.option if mine else None
    elif view.state != "active":
        e.reason = view.state  # ended | canceled
    else:
        _judge_weight(e, poll.chamber)
    return _explain(e, poll)


def _explain(e: PollEligibility, poll: DaoPoll) -> PollEligibility:
    block = e.snapshot
    messages = {
        "processing": lambda: gettext("This poll is being recorded; voting opens shortly."),
        "canceled": lambda: gettext("This poll was canceled."),
        "already_voted": lambda: gettext("You already voted in this poll."),
        "card_after_snapshot": lambda: gettext(
            "You got your card after the poll was announced (block %(block)s), so it does "
            "not count for this poll.",
            block=block,
        ),
        "pass_after_snapshot": lambda: gettext(
            "You got your resident pass after the poll was announced (block %(block)s).",
            block=block,
        ),
    }
    return explain(e, poll.chamber, messages)


# ---------------------------------------------------------------------------- voting


def parse_option(poll: DaoPoll, value: Any) -> int:
    if is_ascii_digits(value):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < len(poll.options):
        raise InvalidOption(N_("Choose one of the %(count)s options."), count=len(poll.options))
    return value


def _require_can_vote(user: User, town: Town, poll: DaoPoll, value: Any) -> Any:
    if poll.town_id != town.id:
        raise NotFound(N_("This poll does not exist in this town."))
    option = parse_option(poll, value)
    e = poll_eligibility(user, poll)
    if not e.can_vote:
        refuse_with(
            e,
            already_voted=N_("You already voted in this poll."),
            closed=N_("Voting is not open for this poll."),
            not_eligible=N_("You may not vote in this poll: %(why)s"),
        )
    return option, e


def _ballot(poll: DaoPoll, option: int, voter: str) -> dict[str, Any]:
    domain = _chain().eip712_domain(poll.poll_address, artifact_name=POLL)
    return poll_ballot_typed_data(domain, int(poll.poll_id or 0), option, voter)


def prepare_poll_ballot(user: User | None, town: Town, poll: DaoPoll, value: Any) -> dict:
    """The EIP-712 Ballot an own-wallet user signs (same checks as `cast_poll_vote`)."""
    user = require_user() if user is None else user
    option, e = _require_can_vote(user, town, poll, value)
    if e.wallet != EXTERNAL:
        raise InvalidInput(N_("Your built-in account signs your vote for you; just vote."))
    typed = _ballot(poll, option, str(e.address))
    return {"typed_data": for_browser(typed), "voter": e.address, "option": option}


def cast_poll_vote(
    user: User | None, town: Town, poll: DaoPoll, value: Any, signature: Any = None
) -> DaoPollVote:
    """Queue TownPoll.castVoteBySig (gasless) for one option, signed by the built-in account
    here or (own wallet) given as `signature` over `prepare_poll_ballot`'s typed data."""
    user = require_user() if user is None else user
    option, e = _require_can_vote(user, town, poll, value)
    voter = str(e.address)
    typed = _ballot(poll, option, voter)
    sig, signer, how, _ = sign_ballot(user, e, lambda: (typed, None), signature)
    s = _session()
    vote = DaoPollVote(
        poll_row_id=poll.id,
        voter=voter,
        user_id=user.id,
        option=option,
        weight=Decimal(e.weight),
        state="submitted",
    )
    add_vote(s, vote, N_("You already voted in this poll."))
    tx = outbox_service().enqueue(
        s,
        ContractCall(
            poll.poll_address,
            "castVoteBySig",
            [int(poll.poll_id or 0), option, voter, sig],
            artifact_name=POLL,
        ),
        sender=Sender.user(signer, town_id=town.id, user_id=user.id),
        key=f"dao.poll_vote:{poll.id}:{voter}",
        subject=Subject("dao_poll_vote", vote.id),
        audit=AuditEntry(
            actor=f"user:{user.id}",
            action="dao.poll_vote",
            subject_type="dao_poll",
            subject_id=str(poll.id),
            reason=f"gasless poll vote ({how} signature)",
            details={"option": option, "weight": e.weight, "voter": voter},
        ),
    )
    vote.outbox_tx_id = tx.id
    s.commit()
    return vote


# ---------------------------------------------------------------------------- results


def poll_results(poll: DaoPoll, view: PollView | None = None) -> dict[str, Any]:
    view = view or poll_view(poll)
    return {
        "poll": poll.id,
        **view.as_dict(),
        **vote_counts(DaoPollVote.poll_row_id, poll.id),
        "create_tx": _tx_json(_tx(poll.create_tx_id)),
    }


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
