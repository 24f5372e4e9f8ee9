"""The DAO of a town: treasury spending proposals, eligibility, gasless votes, queue and execute.

Every public function that changes something is one unit of work: it commits (business row +
outbox row + audit row together) or raises an AppError and changes nothing. The chain is the
truth for states and tallies (read live from the governors); proposal texts and the indexed
events live in backend/dao/models.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from flask import current_app
from flask_babel import gettext, ngettext
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.accounts.models import CUSTODIAL, EXTERNAL, Address, User
from backend.accounts.roles import STAFF, require_town_role, require_user
from backend.accounts.services import AccountService
from backend.chain import api as chain_api
from backend.chain.api import (
    PROPOSAL_STATES,
    AuditEntry,
    ChainUnavailable,
    ContractCall,
    OutboxTx,
    Sender,
    Subject,
    ballot_typed_data,
    description_hash,
    encode_call,
    for_browser,
    get_vault,
    hash_proposal,
    outbox_service,
    recover_typed_data_signer,
    relay_signer,
    signature_hex,
    timelock_salt,
)
from backend.core.db import get_db
from backend.core.errors import N_, InvalidInput, NotFound, ServiceUnavailable
from backend.core.numbers import is_ascii_digits
from backend.dao.errors import (
    AlreadyVoted,
    InsufficientTreasury,
    InvalidSignature,
    InvalidSupport,
    NotEligible,
    VotingClosed,
    WrongState,
)
from backend.dao.models import CARD, CHAMBER_KEYS, CHAMBERS, DaoProposal, DaoVote
from backend.regions.models import Town

AGAINST, FOR, ABSTAIN = 0, 1, 2
SUPPORT_NAMES = {"against": AGAINST, "for": FOR, "abstain": ABSTAIN}
TOKENS = ("yen", "points")
MAX_AMOUNT = 10**30
MAX_TITLE = 200
MAX_BODY = 5000
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_KEY = re.compile(r"^[A-Za-z0-9_.:-]{8,100}$")
FAILED_TX_STATES = ("reverted", "failed", "cancelled")
NODE_DOWN = N_("The blockchain node is not answering; please try again shortly.")


# ---------------------------------------------------------------------------- lookups


def _session() -> Session:
    return get_db().session()


def _chain() -> Any:
    return current_app.extensions["chain"]


def _read(contract: str, fn: str, *args: Any, artifact_name: str | None = None) -> Any:
    try:
        return _chain().read(contract, fn, *args, artifact_name=artifact_name)
    except ChainUnavailable as exc:
        raise ServiceUnavailable(NODE_DOWN) from exc


def _addresses(*keys: str) -> list[str]:
    """The deployed addresses of `keys`; 503 when the node is down, 400 before a DAO exists."""
    chain = _chain()
    try:
        return [chain.address_of(key) for key in keys]
    except ChainUnavailable as exc:
        raise ServiceUnavailable(NODE_DOWN) from exc
    except LookupError:
        raise InvalidInput(N_("This town has no DAO deployed yet.")) from None


def _head_block() -> int | None:
    """The chain's latest block for a view, or None while the node is not answering."""
    try:
        return _chain().status().head_block
    except ChainUnavailable:
        return None


def _list_rows(model: Any, town: Town) -> list[Any]:
    """A town's proposals or polls, newest first."""
    return list(
        _session().scalars(select(model).where(model.town_id == town.id).order_by(model.id.desc()))
    )


def _get_row(model: Any, town: Town, row_id: Any, missing: str) -> Any:
    """The row `row_id` of `town`; NotFound(`missing`) for another town's or an unknown one."""
    try:
        rid = int(row_id)
    except (TypeError, ValueError):
        rid = -1
    row = _session().get(model, rid) if rid > 0 else None
    if row is None or row.town_id != town.id:
        raise NotFound(missing)
    return row


def _existing(model: Any, key: str, town: Town) -> Any:
    """The row an earlier request with `key` created (a double submit), if any."""
    existing = _session().scalar(select(model).where(model.idempotency_key == key))
    if existing is not None and existing.town_id != town.id:
        raise InvalidInput(N_("This request key was used for another town."))
    return existing


def town_by_slug(slug: str) -> Town:
    town = _session().scalar(select(Town).where(Town.slug == slug))
    if town is None:
        raise NotFound(N_("This town does not exist."))
    return town


def chamber_key(town: Town, chamber: str) -> str:
    return f"towns.{town.slug}.{CHAMBER_KEYS[chamber]}"


def token_contract(town: Town, token: str) -> tuple[str, str]:
    """(deployments key, artifact) of a payout token."""
    if token == "yen":  # noqa: S105 - a token name, not a secret
        return "TestYenStablecoin", "TestYenStablecoin"
    return f"towns.{town.slug}.RegionPoints", "RegionPoints"


def list_proposals(town: Town) -> list[DaoProposal]:
    return _list_rows(DaoProposal, town)


def get_proposal(town: Town, row_id: Any) -> DaoProposal:
    """The proposal `row_id` of `town`; NotFound for another town's or an unknown one."""
    return _get_row(DaoProposal, town, row_id, N_("This proposal does not exist in this town."))


def user_wallet(user: User) -> tuple[str, str] | None:
    """(address, kind) a user votes with: the built-in account (CUSTODIAL: the platform signs
    for them), else their own wallet (EXTERNAL: they sign the ballot in the browser)."""
    rows = (
        _session()
        .scalars(select(Address).where(Address.user_id == user.id).order_by(Address.id))
        .all()
    )
    for kind in (CUSTODIAL, EXTERNAL):
        for a in rows:
            if a.kind == kind:
                return str(a.address), kind
    return None


def user_address(user: User) -> str | None:
    """The address a user votes with: the built-in account, else a linked wallet."""
    found = user_wallet(user)
    return found[0] if found else None


def _voter_wallet(user: User | None) -> tuple[str, str] | str:
    """(address, kind) `user` would vote with, or why not: "sign_in" | "no_wallet"."""
    if user is None:
        return "sign_in"
    return user_wallet(user) or "no_wallet"


# ---------------------------------------------------------------------------- chain status


@dataclass
class ChainView:
    """What the governor says about a proposal right now."""

    state: str  # one of PROPOSAL_STATES, or "submitting" / "failed" before it is on chain
    snapshot: int | None = None
    deadline: int | None = None
    votes: dict[str, int] = field(default_factory=lambda: {"for": 0, "against": 0, "abstain": 0})
    quorum: int | None = None
    eta: int | None = None
    head_block: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _tx(tx_id: int | None) -> OutboxTx | None:
    return chain_api.outbox_tx(_session(), tx_id)


def chain_view(p: DaoProposal) -> ChainView:
    gov = p.governor_address
    pid = p.proposal_id_int
    snapshot = int(_read(gov, "proposalSnapshot", pid, artifact_name="TownGovernor"))
    if snapshot == 0:
        tx = _tx(p.propose_tx_id)
        return ChainView(state="failed" if tx and tx.state in FAILED_TX_STATES else "submitting")
    state = PROPOSAL_STATES[int(_read(gov, "state", pid, artifact_name="TownGovernor"))]
    against, for_, abstain = _read(gov, "proposalVotes", pid, artifact_name="TownGovernor")
    view = ChainView(
        state=state,
        snapshot=snapshot,
        deadline=int(_read(gov, "proposalDeadline", pid, artifact_name="TownGovernor")),
        votes={"for": int(for_), "against": int(against), "abstain": int(abstain)},
        eta=int(_read(gov, "proposalEta", pid, artifact_name="TownGovernor")) or None,
    )
    if state != "pending":
        view.quorum = int(_read(gov, "quorum", snapshot, artifact_name="TownGovernor"))
    view.head_block = _head_block()
    return view


# ---------------------------------------------------------------------------- eligibility


@dataclass
class Eligibility:
    can_vote: bool
    reason: str  # eligible | sign_in | no_wallet | processing | not_started | ended |
    #              already_voted | no_card | card_after_snapshot | no_pass | pass_after_snapshot
    weight: int = 0
    current_weight: int = 0
    snapshot: int | None = None
    address: str | None = None
    support: int | None = None  # how they voted, when they did
    message: str = ""
    wallet: str | None = None  # "custodial" (built-in, signed for them) | "external" (own wallet)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pending_vote(p: DaoProposal, address: str) -> DaoVote | None:
    return _session().scalar(
        select(DaoVote).where(DaoVote.proposal_row_id == p.id, DaoVote.voter == address)
    )


def eligibility(user: User | None, p: DaoProposal, view: ChainView | None = None) -> Eligibility:
    """Whether `user` may vote on `p` now, with what weight and why (nothing is signed)."""
    wallet = _voter_wallet(user)
    if isinstance(wallet, str):
        return _explain(Eligibility(False, wallet), p)
    address = wallet[0]
    view = view or chain_view(p)
    gov = p.governor_address
    e = Eligibility(False, "", snapshot=view.snapshot, address=address, wallet=wallet[1])
    token = _read(gov, "token", artifact_name="TownGovernor")
    e.current_weight = int(_read(token, "getVotes", address, artifact_name=_token_artifact(p)))
    if view.state in ("submitting", "failed"):
        e.reason = _unrecorded_reason(view.state)
        return _explain(e, p)
    if view.state != "pending":
        e.weight = int(_read(gov, "getVotes", address, view.snapshot, artifact_name="TownGovernor"))
    mine = _pending_vote(p, address)
    voted = mine is not None or bool(
        _read(gov, "hasVoted", p.proposal_id_int, address, artifact_name="TownGovernor")
    )
    if voted:
        e.reason, e.support = "already_voted", mine.support if mine else None
    elif view.state == "pending":
        e.reason = "not_started"
    elif view.state != "active":
        e.reason = "ended"
    else:
        _judge_weight(e, p.chamber)
    return _explain(e, p)


def _unrecorded_reason(state: str) -> str:
    """Why nobody votes on a proposal or poll that is "submitting" or "failed" on chain."""
    return "processing" if state == "submitting" else "ended"


def _judge_weight(e: Any, chamber: str) -> None:
    """Set `e`'s verdict on an open vote from its weights (proposals and polls alike)."""
    if e.weight > 0:
        e.can_vote, e.reason = True, "eligible"
    elif e.current_weight > 0:
        e.reason = "card_after_snapshot" if chamber == CARD else "pass_after_snapshot"
    else:
        e.reason = "no_card" if chamber == CARD else "no_pass"


def _token_artifact(p: DaoProposal) -> str:
    return "FanCollection" if p.chamber == CARD else "ResidentPass"


def _explain(e: Eligibility, p: DaoProposal) -> Eligibility:
    block = e.snapshot
    return explain(
        e,
        p.chamber,
        {
            "processing": lambda: gettext("This proposal is being recorded; voting opens shortly."),
            "not_started": lambda: gettext("Voting has not started yet."),
            "already_voted": lambda: gettext("You already voted on this proposal."),
            "card_after_snapshot": lambda: gettext(
                "You got your card after the vote was announced (block %(block)s), so it does "
                "not count for this vote.",
                block=block,
            ),
            "pass_after_snapshot": lambda: gettext(
                "You got your resident pass after the vote was announced (block %(block)s).",
                block=block,
            ),
        },
    )


def explain(e: Any, chamber: str, own: Mapping[str, Callable[[], str]]) -> Any:
    """Set `e.message` for its reason: the messages proposals and polls share, then `own`
    (the reasons whose wording names the proposal or the poll). Returns `e`."""
    block = e.snapshot
    messages: dict[str, Callable[[], str]] = {
        "sign_in": lambda: gettext("Sign in to see whether you may vote."),
        "no_wallet": lambda: gettext("Your account has no wallet to vote with."),
        "ended": lambda: gettext("Voting has ended."),
        "no_card": lambda: gettext(
            "You hold no ambassador card at the snapshot (block %(block)s).", block=block
        ),
        "no_pass": lambda: gettext(
            "You held no resident pass at the snapshot (block %(block)s).", block=block
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


# ---------------------------------------------------------------------------- voting


def parse_support(value: Any) -> int:
    if isinstance(value, str) and value.strip().lower() in SUPPORT_NAMES:
        return SUPPORT_NAMES[value.strip().lower()]
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1, 2):
        return value
    if isinstance(value, str) and value.strip() in ("0", "1", "2"):
        return int(value.strip())
    raise InvalidSupport(N_("Choose For, Against or Abstain."))


def _account_service() -> AccountService:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return AccountService(_session(), lambda: get_vault(app))


def _require_can_vote(user: User, town: Town, p: DaoProposal, support_value: Any) -> Any:
    """(support, eligibility) when `user` may vote now; the refusals otherwise."""
    if p.town_id != town.id:
        raise NotFound(N_("This proposal does not exist in this town."))
    support = parse_support(support_value)
    e = eligibility(user, p)
    if not e.can_vote:
        refuse(e)
    return support, e


def refuse(e: Any) -> None:
    """Raise the error matching a negative eligibility on a proposal."""
    refuse_with(
        e,
        already_voted=N_("You already voted on this proposal."),
        closed=N_("Voting is not open for this proposal."),
        not_eligible=N_("You may not vote on this proposal: %(why)s"),
    )


def refuse_with(e: Any, *, already_voted: str, closed: str, not_eligible: str) -> None:
    """Raise the error matching a negative eligibility (proposals and polls alike), worded
    with the caller's messages (`not_eligible` takes %(why)s)."""
    if e.reason == "already_voted":
        raise AlreadyVoted(already_voted)
    if e.reason in ("processing", "not_started", "ended", "canceled"):
        raise VotingClosed(closed, reason=e.reason)
    if e.reason == "no_wallet":
        raise InvalidInput(N_("Your account has no wallet to vote with."))
    raise NotEligible(not_eligible, why=e.message, reason=e.reason)


def sign_ballot(
    user: User, e: Any, ballot: Callable[[], tuple[dict[str, Any], Any]], signature: Any
) -> tuple[str, Any, str, Any]:
    """(signature hex, relay signer, "wallet" | "built-in", extra) of a gasless
    vote: an own wallet's `signature` must recover to the voter over `ballot()`'s typed data;
    the built-in account's ballot is signed here. `ballot` returns (typed data, extra)."""
    voter = str(e.address)
    if e.wallet == EXTERNAL:
        typed, extra = ballot()
        if recover_typed_data_signer(typed, signature) != voter:
            raise InvalidSignature(
                N_("The signature is not your wallet's signature of this ballot; sign again.")
            )
        return signature_hex(signature), relay_signer(outbox_service(), voter), "wallet", extra
    user_signer = _account_service().custodial_signer(user)
    typed, extra = ballot()
    return signature_hex(user_signer.sign_typed_data(typed)), user_signer, "built-in", extra


def add_vote(s: Session, vote: Any, already_voted: str) -> None:
    """Insert `vote` (savepoint); AlreadyVoted(`already_voted`) when the voter has one."""
    try:
        with s.begin_nested():
            s.add(vote)
            s.flush()
    except IntegrityError:
        raise AlreadyVoted(already_voted) from None


def _next_nonce(gov: str, voter: str) -> int:
    """The voter's next governor nonce, counting their ballots not yet on chain."""
    in_flight = _session().scalar(
        select(func.count(DaoVote.id))
        .join(DaoProposal, DaoProposal.id == DaoVote.proposal_row_id)
        .where(
            DaoVote.voter == voter,
            DaoVote.state == "submitted",
            DaoProposal.governor_address == gov,
        )
    )
    return int(_read(gov, "nonces", voter, artifact_name="TownGovernor")) + int(in_flight or 0)


def _ballot(p: DaoProposal, support: int, voter: str) -> tuple[dict[str, Any], int]:
    gov = p.governor_address
    nonce = _next_nonce(gov, voter)
    domain = _chain().eip712_domain(gov, artifact_name="TownGovernor")
    return ballot_typed_data(domain, p.proposal_id_int, support, voter, nonce), nonce


def prepare_ballot(user: User | None, town: Town, p: DaoProposal, support_value: Any) -> dict:
    """The EIP-712 Ballot an own-wallet (SIWE) user signs with eth_signTypedData_v4.

    Same checks as `cast_vote`; nothing is stored. The typed data binds the chamber's domain,
    the proposal, the choice, the voter and their governor nonce."""
    user = require_user() if user is None else user
    support, e = _require_can_vote(user, town, p, support_value)
    if e.wallet != EXTERNAL:
        raise InvalidInput(N_("Your built-in account signs your vote for you; just vote."))
    typed, _nonce = _ballot(p, support, e.address)
    return {"typed_data": for_browser(typed), "voter": e.address, "support": support}


def cast_vote(
    user: User | None, town: Town, p: DaoProposal, support_value: Any, signature: Any = None
) -> DaoVote:
    """Queue castVoteBySig (gasless): the built-in account's ballot is signed here; an own
    wallet's ballot (from `prepare_ballot`) must come as `signature` and recover to it."""
    user = require_user() if user is None else user
    support, e = _require_can_vote(user, town, p, support_value)
    voter = str(e.address)
    sig, signer, how, nonce = sign_ballot(user, e, lambda: _ballot(p, support, voter), signature)
    s = _session()
    vote = DaoVote(
        proposal_row_id=p.id,
        voter=voter,
        user_id=user.id,
        support=support,
        weight=Decimal(e.weight),
        state="submitted",
        nonce=nonce,
    )
    add_vote(s, vote, N_("You already voted on this proposal."))
    tx = outbox_service().enqueue(
        s,
        ContractCall(
            p.governor_address,
            "castVoteBySig",
            [p.proposal_id_int, support, voter, sig],
            artifact_name="TownGovernor",
        ),
        sender=Sender.user(signer, town_id=town.id, user_id=user.id),
        key=f"dao.vote:{p.id}:{voter}",
        subject=Subject("dao_vote", vote.id),
        audit=AuditEntry(
            actor=f"user:{user.id}",
            action="dao.vote",
            subject_type="dao_proposal",
            subject_id=str(p.id),
            amount=None,
            reason=f"gasless vote ({how} signature)",
            details={"support": support, "weight": e.weight, "voter": voter},
        ),
    )
    vote.outbox_tx_id = tx.id
    s.commit()
    return vote


# ---------------------------------------------------------------------------- proposals


def _text(data: Mapping[str, Any], name: str, limit: int) -> str:
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


def _amount(value: Any) -> int:
    if isinstance(value, bool):
        value = None
    if is_ascii_digits(value):
        value = int(value.strip())
    if not isinstance(value, int) or value <= 0 or value >= MAX_AMOUNT:
        raise InvalidInput(N_("Enter a whole amount greater than zero."), field="amount")
    return value


@dataclass(frozen=True)
class ProposalInput:
    chamber: str
    token: str
    recipient: str
    amount: int
    title_ja: str
    title_en: str
    body_ja: str
    body_en: str


def parse_proposal(data: Mapping[str, Any]) -> ProposalInput:
    chamber = data.get("chamber") or CARD
    if chamber not in CHAMBERS:
        raise InvalidInput(N_("Choose the card chamber or the resident chamber."), field="chamber")
    token = data.get("token") or "yen"
    if token not in TOKENS:
        raise InvalidInput(N_("Choose test yen or points."), field="token")
    recipient = data.get("recipient")
    if not isinstance(recipient, str) or not _ADDRESS.match(recipient.strip()):
        raise InvalidInput(
            N_("Enter the recipient's account address (0x followed by 40 hex digits)."),
            field="recipient",
        )
    recipient = recipient.strip()
    if int(recipient, 16) == 0:
        raise InvalidInput(N_("The recipient cannot be the zero address."), field="recipient")
    out = ProposalInput(
        chamber=chamber,
        token=token,
        recipient=recipient,
        amount=_amount(data.get("amount")),
        title_ja=_text(data, "title_ja", MAX_TITLE),
        title_en=_text(data, "title_en", MAX_TITLE),
        body_ja=_text(data, "body_ja", MAX_BODY),
        body_en=_text(data, "body_en", MAX_BODY),
    )
    if not out.title_ja and not out.title_en:
        raise InvalidInput(N_("Give the proposal a title (Japanese or English)."), field="title")
    return out


def _idempotency_key(value: Any) -> str:
    if not isinstance(value, str) or not _KEY.match(value):
        raise InvalidInput(
            N_("A request key (8 to 100 letters, digits or -_.:) is required."),
            field="idempotency_key",
        )
    return value


def create_proposal(
    user: User | None,
    town: Town,
    data: Mapping[str, Any],
    idempotency_key: Any,
    *,
    check_treasury: bool = True,
    actor: str | None = None,
) -> DaoProposal:
    """Staff propose a treasury payout on a chamber (sent on chain by the clerk role key)."""
    if actor is None:
        user = require_town_role(user, town.id, STAFF)
    key = _idempotency_key(idempotency_key)
    s = _session()
    existing = _existing(DaoProposal, key, town)
    if existing is not None:
        return existing
    inp = parse_proposal(data)
    token_key, token_artifact = token_contract(town, inp.token)
    gov, token_address, treasury = _addresses(
        chamber_key(town, inp.chamber), token_key, f"towns.{town.slug}.TownTreasury"
    )
    if check_treasury:
        balance = int(_read(token_address, "balanceOf", treasury, artifact_name=token_artifact))
        if balance < inp.amount:
            raise InsufficientTreasury(
                N_("The treasury holds only %(balance)s; the proposal asks for %(amount)s."),
                balance=balance,
                amount=inp.amount,
            )
    calldata = encode_call(token_artifact, "transfer", [inp.recipient, inp.amount])
    title = inp.title_en or inp.title_ja
    parts = [f"# {title}", inp.title_ja, inp.body_en, inp.body_ja]
    description = "\n\n".join(x for x in parts if x) + f"\n\n[furusato:{town.slug}:{key}]"
    targets, values, calldatas = [token_address], [0], [calldata]
    pid = hash_proposal(targets, values, calldatas, description)
    p = DaoProposal(
        town_id=town.id,
        chamber=inp.chamber,
        governor_address=gov,
        proposal_id=str(pid),
        idempotency_key=key,
        title_ja=inp.title_ja,
        title_en=inp.title_en,
        body_ja=inp.body_ja,
        body_en=inp.body_en,
        description=description,
        targets=targets,
        values=[str(v) for v in values],
        calldatas=calldatas,
        token=inp.token,
        token_address=token_address,
        recipient=inp.recipient,
        amount=Decimal(inp.amount),
        treasury_address=treasury,
        created_by=user.id if user is not None else None,
    )
    s.add(p)
    s.flush()
    who = actor or f"user:{user.id}"  # type: ignore[union-attr]
    tx = outbox_service().enqueue(
        s,
        ContractCall(
            gov, "propose", [targets, values, calldatas, description], artifact_name="TownGovernor"
        ),
        sender=Sender.role("clerk", town_id=town.id, user_id=user.id if user is not None else None),
        key=f"dao.propose:{key}",
        subject=Subject("dao_proposal", p.id),
        audit=AuditEntry(
            actor=who,
            action="dao.propose",
            subject_type="dao_proposal",
            subject_id=str(p.id),
            amount=inp.amount,
            reason=title,
            details={"token": inp.token, "recipient": inp.recipient, "chamber": inp.chamber},
        ),
    )
    p.propose_tx_id = tx.id
    s.commit()
    return p


def _retry_key(tx_id: int | None) -> int:
    tx = _tx(tx_id)
    return tx.id if tx is not None else 0


def queue_proposal(user: User | None, town: Town, p: DaoProposal) -> OutboxTx:
    """Staff queue a succeeded proposal in the treasury timelock."""
    user = require_town_role(user, town.id, STAFF)
    if p.town_id != town.id:
        raise NotFound(N_("This proposal does not exist in this town."))
    current = _tx(p.queue_tx_id)
    if current is not None and current.state not in FAILED_TX_STATES:
        return current
    state = chain_view(p).state
    if state != "succeeded":
        raise WrongState(
            N_("Only a proposal that passed can be queued (it is %(state)s)."), state=state
        )
    return _admin_call(user, town, p, "queue", _retry_key(p.queue_tx_id))


def execute_proposal(user: User | None, town: Town, p: DaoProposal) -> OutboxTx:
    """Staff execute a queued proposal once the timelock delay has passed (pays out)."""
    user = require_town_role(user, town.id, STAFF)
    if p.town_id != town.id:
        raise NotFound(N_("This proposal does not exist in this town."))
    current = _tx(p.execute_tx_id)
    if current is not None and current.state not in FAILED_TX_STATES:
        return current
    state = chain_view(p).state
    if state != "queued":
        raise WrongState(
            N_("Only a queued proposal can be executed (it is %(state)s)."), state=state
        )
    targets, values, calldatas = p.actions()
    op = _read(
        p.treasury_address,
        "hashOperationBatch",
        targets,
        values,
        [bytes.fromhex(c.removeprefix("0x")) for c in calldatas],
        b"\x00" * 32,
        bytes.fromhex(timelock_salt(p.governor_address, p.description)[2:]),
        artifact_name="TownTreasury",
    )
    if not _read(p.treasury_address, "isOperationReady", op, artifact_name="TownTreasury"):
        raise WrongState(
            N_("The waiting time after queueing has not passed yet; try again shortly."),
            state="queued",
        )
    return _admin_call(user, town, p, "execute", _retry_key(p.execute_tx_id))


def _admin_call(user: User, town: Town, p: DaoProposal, fn: str, attempt: int) -> OutboxTx:
    s = _session()
    targets, values, calldatas = p.actions()
    tx = outbox_service().enqueue(
        s,
        ContractCall(
            p.governor_address,
            fn,
            [targets, values, calldatas, description_hash(p.description)],
            artifact_name="TownGovernor",
        ),
        sender=Sender.role("clerk", town_id=town.id, user_id=user.id),
        key=f"dao.{fn}:{p.id}:{attempt}",
        subject=Subject("dao_proposal", p.id),
        audit=AuditEntry(
            actor=f"user:{user.id}",
            action=f"dao.{fn}",
            subject_type="dao_proposal",
            subject_id=str(p.id),
            amount=int(p.amount) if fn == "execute" else None,
            reason=p.title_en or p.title_ja,
            details={"token": p.token, "recipient": p.recipient},
        ),
    )
    if fn == "queue":
        p.queue_tx_id = tx.id
    else:
        p.execute_tx_id = tx.id
    s.commit()
    return tx


# ---------------------------------------------------------------------------- results


def vote_counts(row_column: Any, row_id: int) -> dict[str, int]:
    """voters_counted / votes_processing of a proposal's or a poll's votes (`row_column` is
    the vote table's column naming the proposal or poll)."""
    model = row_column.class_
    found = _session().execute(
        select(model.state, func.count(model.id)).where(row_column == row_id).group_by(model.state)
    )
    rows = {str(state): int(n) for state, n in found.all()}
    return {
        "voters_counted": int(rows.get("counted", 0)),
        "votes_processing": int(rows.get("submitted", 0)),
    }


def _tx_json(tx: OutboxTx | None) -> dict[str, Any] | None:
    if tx is None:
        return None
    return {"state": tx.state, "tx_hash": tx.tx_hash}


def payouts(p: DaoProposal) -> list[dict[str, Any]]:
    """The treasury's token transfers in the indexed execute transaction."""
    if not p.executed_tx_hash:
        return []
    rows = chain_api.events_of_tx(_session(), p.executed_tx_hash, "Transfer")
    out = []
    for r in rows:
        args = r.args or {}
        if str(args.get("from", "")).lower() != p.treasury_address.lower():
            continue
        out.append(
            {
                "token": p.token if r.contract_address.lower() == p.token_address.lower() else "",
                "token_address": r.contract_address,
                "to": args.get("to"),
                "amount": str(args.get("value")),
                "tx_hash": r.tx_hash,
                "block_number": r.block_number,
            }
        )
    return out


def results(p: DaoProposal, view: ChainView | None = None) -> dict[str, Any]:
    view = view or chain_view(p)
    return {
        "proposal": p.id,
        **view.as_dict(),
        **vote_counts(DaoVote.proposal_row_id, p.id),
        "propose_tx": _tx_json(_tx(p.propose_tx_id)),
        "queue_tx": _tx_json(_tx(p.queue_tx_id)),
        "execute_tx": _tx_json(_tx(p.execute_tx_id)),
        "executed_tx_hash": p.executed_tx_hash,
        "payouts": payouts(p),
    }


def proposal_json(p: DaoProposal, locale: str) -> dict[str, Any]:
    return {
        "id": p.id,
        "chamber": p.chamber,
        "proposal_id": p.proposal_id,
        "governor": p.governor_address,
        "title": p.title(locale),
        "title_ja": p.title_ja,
        "title_en": p.title_en,
        "body_ja": p.body_ja,
        "body_en": p.body_en,
        "token": p.token,
        "token_address": p.token_address,
        "recipient": p.recipient,
        "amount": str(int(p.amount)),
        "treasury": p.treasury_address,
        "origin": p.origin,  # "platform" | "external" (made on chain outside the platform)
        "proposer": p.proposer,
        "created_at": p.created_at.isoformat(),
    }
