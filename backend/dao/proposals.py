"""Treasury spending proposals of a town's DAO: create, eligibility, gasless votes, results.

The chain is the truth for states and tallies (read live from the governors); proposal texts
and the indexed events live in backend/dao/models.py. Queueing and executing a passed proposal
is backend/dao/treasury.py; what proposals and polls share is backend/dao/common.py.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from typing import Any

from flask_babel import gettext
from sqlalchemy import select

from backend.accounts.models import User
from backend.accounts.roles import require_user
from backend.chain import api as chain_api
from backend.chain.api import (
    PROPOSAL_STATES,
    AuditEntry,
    ContractCall,
    Sender,
    Subject,
    YenTokenUnavailable,
    ballot_typed_data,
    encode_call,
    for_browser,
    hash_proposal,
)
from backend.core.errors import N_, InvalidInput, NotFound
from backend.core.idempotency import first_answer
from backend.core.numbers import ascii_int, is_ascii_digits
from backend.dao import joint, projected
from backend.dao.common import (
    FAILED_TX_STATES,
    LOST,
    MAX_TITLE,
    Chain,
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
from backend.dao.errors import InsufficientTreasury, InvalidSupport
from backend.dao.models import (
    BOTH,
    CARD,
    CHAMBER_KEYS,
    RESIDENT,
    DaoProposal,
    DaoVote,
    proposer_suffix,
)
from backend.dao.recipients import Recipient, describe
from backend.issuing.services import issuing_service
from backend.merchants.services import merchant_service
from backend.regions.models import Town

AGAINST, FOR, ABSTAIN = 0, 1, 2
SUPPORT_NAMES = {"against": AGAINST, "for": FOR, "abstain": ABSTAIN}
TOKENS = ("yen", "points")
MAX_AMOUNT = 10**30
MAX_BODY = 5000
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
GOVERNOR = "TownGovernor"
PROPOSER_ROLE = "clerk"  # the role key that sends `propose` (each chamber's platformProposer)
NO_SUCH_PROPOSAL = N_("This proposal does not exist in this town.")


def chamber_key(town: Town, chamber: str) -> str:
    return f"towns.{town.slug}.{CHAMBER_KEYS[chamber]}"


YEN_OFF = N_("Yen payouts are not available on this platform: choose points.")


def token_contract(town: Town, token: str, chain: Chain) -> tuple[str, str, int]:
    """(deployments key or address, artifact, units per yen or point) of a payout token: the
    town's points, or the chain's yen stablecoin (InvalidInput when the chain has none)."""
    if token == "yen":  # noqa: S105 - a token name, not a secret
        try:
            yen = chain.yen_token()
        except YenTokenUnavailable:
            raise InvalidInput(YEN_OFF, code="yen_token_off", field="token") from None
        return yen.contract, yen.artifact_name, 10**yen.decimals
    return f"towns.{town.slug}.RegionPoints", "RegionPoints", 1


def _token_artifact(p: DaoProposal) -> str:
    return "FanCollection" if p.chamber == CARD else "ResidentPass"


# ---------------------------------------------------------------------------- input


def parse_support(value: object) -> int:
    if isinstance(value, str) and value.strip().lower() in SUPPORT_NAMES:
        return SUPPORT_NAMES[value.strip().lower()]
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1, 2):
        return value
    if isinstance(value, str) and value.strip() in ("0", "1", "2"):
        return int(value.strip())
    raise InvalidSupport(N_("Choose For, Against or Abstain."))


def parse_amount(value: object) -> int:
    if isinstance(value, bool):
        value = None
    if is_ascii_digits(value):
        value = ascii_int(value)  # None past MAX_DIGITS (no ValueError)
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


def parse_proposal(
    data: Mapping[str, Any], resolve: Callable[[object], str] | None = None
) -> ProposalInput:
    """The proposal's fields, checked. `resolve` turns the recipient as staff named it (a person
    or a shop, backend/issuing/recipients.py) into its address; without it the recipient must
    be an address."""
    chamber = chamber_of(data)
    token = data.get("token") or "yen"
    if token not in TOKENS:
        raise InvalidInput(N_("Choose test yen or points."), field="token")
    recipient = data.get("recipient")
    if resolve is not None:
        recipient = resolve(recipient)
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
        amount=parse_amount(data.get("amount")),
        title_ja=text_field(data, "title_ja", MAX_TITLE),
        title_en=text_field(data, "title_en", MAX_TITLE),
        body_ja=text_field(data, "body_ja", MAX_BODY),
        body_en=text_field(data, "body_en", MAX_BODY),
    )
    if not out.title_ja and not out.title_en:
        raise InvalidInput(N_("Give the proposal a title (Japanese or English)."), field="title")
    return out


@dataclass(frozen=True)
class _Filing:
    """What each chamber's row of one proposal shares."""

    town: Town
    user: User | None
    who: str
    inp: ProposalInput
    token_address: str
    treasury: str


# ---------------------------------------------------------------------------- views


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
    # The blocks above as times (Japan time on pages), estimated from the pace of blocks.
    snapshot_at: dt.datetime | None = None
    closes_at: dt.datetime | None = None
    # When a queued payout may be executed (the timelock's eta) and whether that time has come
    # by the chain's clock: staff see "execute" only then.
    executable_at: dt.datetime | None = None
    can_execute: bool = False

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name, value in out.items():  # times as ISO 8601 (UTC) in the JSON API
            if isinstance(value, dt.datetime):
                out[name] = value.isoformat()
        return out


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
    voted_at: dt.datetime | None = None  # when their vote was sent (or seen on chain)
    # submitted | counted; failed: their ballot's transaction failed (backend/dao/vote_state.py):
    # no vote, they may vote again while voting is open (voted_at: when that ballot was sent)
    vote_state: str | None = None
    message: str = ""
    wallet: str | None = None  # "custodial" (built-in, signed for them) | "external" (own wallet)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["voted_at"] = self.voted_at.isoformat() if self.voted_at else None
        return out


def _explain(e: Eligibility, p: DaoProposal) -> Eligibility:
    return explain(
        e,
        p.chamber,
        {
            "processing": lambda: gettext("This proposal is being recorded; voting opens shortly."),
            "not_started": lambda: gettext("Voting has not started yet."),
            "already_voted": lambda: gettext("You already voted on this proposal."),
            "card_after_snapshot": lambda: gettext(
                "You got your card after the vote was announced, so it does not count for this "
                "vote.",
            ),
            "pass_after_snapshot": lambda: gettext(
                "You got your resident pass after the vote was announced.",
            ),
        },
    )


def refuse(e: Eligibility) -> None:
    """Raise the error matching a negative eligibility on a proposal."""
    refuse_with(
        e,
        already_voted=N_("You already voted on this proposal."),
        closed=N_("Voting is not open for this proposal."),
        not_eligible=N_("You may not vote on this proposal: %(why)s"),
    )


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
        "joint_of": p.joint_of,
        "proposer": p.proposer,
        "created_at": p.created_at.isoformat(),
    }


class ProposalService(DaoService):
    """A town's treasury proposals, who may vote on them, and their gasless votes.

    With `from_projection` (pages: `for_pages()`) the chain view and eligibility are read from
    the projection (backend/dao/projected.py) and the node is not asked; otherwise (what
    changes something) from the governors themselves."""

    from_projection = False

    @classmethod
    def for_pages(cls) -> ProposalService:
        """This service for a page of the current request: reads the projection only."""
        svc = cls.current()
        svc.from_projection = True
        return svc

    def gov(self, contract: str, fn: str, *args: Any) -> Any:
        """A view call on a governor (a chamber)."""
        return self.read(contract, fn, *args, artifact_name=GOVERNOR)

    # ------------------------------------------------------------------ look-ups

    def list_proposals(self, town: Town) -> list[DaoProposal]:
        return self.list_rows(DaoProposal, town)

    def get_proposal(self, town: Town, row_id: object) -> DaoProposal:
        """The proposal `row_id` of `town`; NotFound for another town's or an unknown one."""
        return self.get_row(DaoProposal, town, row_id, NO_SUCH_PROPOSAL)

    def user_address(self, user: User) -> str | None:
        """The address a user votes with: the built-in account, else a linked wallet."""
        found = self.user_wallet(user)
        return found[0] if found else None

    # ------------------------------------------------------------------ chain status

    def chain_view(self, p: DaoProposal) -> ChainView:
        if self.from_projection:
            return self.indexed_view(p)
        gov, pid = p.governor_address, p.proposal_id_int
        snapshot = int(self.gov(gov, "proposalSnapshot", pid))
        if snapshot == 0:
            tx = self.tx(p.propose_tx_id)
            failed = tx is not None and tx.state in FAILED_TX_STATES
            return ChainView(state="failed" if failed else "submitting")
        state = PROPOSAL_STATES[int(self.gov(gov, "state", pid))]
        against, for_, abstain = self.gov(gov, "proposalVotes", pid)
        view = ChainView(
            state=state,
            snapshot=snapshot,
            deadline=int(self.gov(gov, "proposalDeadline", pid)),
            votes={"for": int(for_), "against": int(against), "abstain": int(abstain)},
            eta=int(self.gov(gov, "proposalEta", pid)) or None,
        )
        if state != "pending":
            view.quorum = int(self.gov(gov, "quorum", snapshot))
        clock = self.block_clock()
        if clock is not None:
            view.head_block = clock.head
            view.snapshot_at = clock.time_of(snapshot)
            view.closes_at = clock.time_of(view.deadline or snapshot)
            if view.eta:
                view.executable_at = dt.datetime.fromtimestamp(view.eta, tz=dt.UTC)
                view.can_execute = view.eta <= clock.now_time
        return view

    def indexed_view(self, p: DaoProposal) -> ChainView:
        """chain_view from the projection (backend/dao/projected.py): no call to the node once
        the worker has recorded the proposal's facts."""
        if p.snapshot_block is None or p.deadline_block is None:
            tx = self.tx(p.propose_tx_id)
            failed = tx is not None and tx.state in FAILED_TX_STATES
            return ChainView(state="failed" if failed else "submitting")
        chain_id = projected.chain_id_of(self.session, p)
        clock = projected.indexed_clock(self.session, self.chain, chain_id, p.governor_address)
        head = clock.head if clock is not None else p.snapshot_block
        votes = projected.tallies(self.session, p)
        view = ChainView(
            state=projected.proposal_state(
                self.session, p, head, votes, lambda: projected.quorum_of(self, p)
            ),
            snapshot=p.snapshot_block,
            deadline=p.deadline_block,
            votes=votes,
            eta=p.queued_eta or None,
        )
        if p.snapshot_block < head:  # quorum(snapshot) exists once the snapshot is past
            view.quorum = projected.quorum_of(self, p)
        if clock is not None:
            view.head_block = clock.head
            view.snapshot_at = clock.time_of(p.snapshot_block)
            view.closes_at = clock.time_of(p.deadline_block)
            if view.eta:
                view.executable_at = dt.datetime.fromtimestamp(view.eta, tz=dt.UTC)
                view.can_execute = view.eta <= clock.now_time
        return view

    # ------------------------------------------------------------------ eligibility

    def _pending_vote(self, p: DaoProposal, address: str) -> DaoVote | None:
        return self.session.scalar(
            select(DaoVote).where(DaoVote.proposal_row_id == p.id, DaoVote.voter == address)
        )

    def eligibility(
        self, user: User | None, p: DaoProposal, view: ChainView | None = None
    ) -> Eligibility:
        """Whether `user` may vote on `p` now, with what weight and why (nothing is signed)."""
        wallet = self.voter_wallet(user)
        if isinstance(wallet, str):
            return _explain(Eligibility(False, wallet), p)
        address = wallet[0]
        view = view or self.chain_view(p)
        gov = p.governor_address
        e = Eligibility(False, "", snapshot=view.snapshot, address=address, wallet=wallet[1])
        if self.from_projection:
            token, chain_id = (
                projected.voting_token(self, p),
                projected.chain_id_of(self.session, p),
            )
            e.current_weight = chain_api.votes_of(self.session, chain_id, token, address)
        else:
            token = self.gov(gov, "token")
            e.current_weight = int(
                self.read(token, "getVotes", address, artifact_name=_token_artifact(p))
            )
        if view.state in ("submitting", "failed"):
            e.reason = unrecorded_reason(view.state)
            return _explain(e, p)
        if view.state != "pending" and self.from_projection:
            e.weight = chain_api.votes_of(self.session, chain_id, token, address, view.snapshot)
        elif view.state != "pending":
            e.weight = int(self.gov(gov, "getVotes", address, view.snapshot))
        mine = self._pending_vote(p, address)
        lost = self.lost(mine)  # its transaction failed: no vote, the voter may vote again
        # From the projection, an indexed VoteCast is a counted row of dao_votes (hasVoted).
        # What changes something asks the chain too: a vote the chain holds always stands.
        voted = (mine is not None and not lost) or (
            not self.from_projection and bool(self.gov(gov, "hasVoted", p.proposal_id_int, address))
        )
        if lost and not voted and mine is not None:  # said on the page: "you may vote again"
            e.voted_at, e.vote_state = mine.created_at, LOST
        if voted:
            e.reason = "already_voted"
            if mine is not None and not lost:
                e.support, e.voted_at, e.vote_state = mine.support, mine.created_at, mine.state
        elif view.state == "pending":
            e.reason = "not_started"
        elif view.state != "active":
            e.reason = "ended"
        else:
            judge_weight(e, p.chamber)
        return _explain(e, p)

    # ------------------------------------------------------------------ voting

    def check_vote(
        self, user: User | None, town: Town, p: DaoProposal, support_value: object
    ) -> tuple[int, Eligibility]:
        """(support, eligibility) when `user` may vote now; the refusals otherwise (what the
        confirmation page shows before anything is signed)."""
        user = require_user() if user is None else user
        if p.town_id != town.id:
            raise NotFound(NO_SUCH_PROPOSAL)
        support = parse_support(support_value)
        e = self.eligibility(user, p)
        if not e.can_vote:
            refuse(e)
        return support, e

    def _next_nonce(self, gov: str, voter: str) -> int:
        """The voter's next governor nonce: the chain's, or past the last of their ballots
        still on their way. A ballot the chain has taken but the indexer not yet counted
        (it waits for confirmations) is both in the chain's nonce and "submitted" here, so
        the in-flight ballots' own nonces are compared, never added to the chain's; a ballot
        whose transaction failed used no nonce."""
        rows = self.session.execute(
            select(DaoVote.nonce, DaoVote.outbox_tx_id)
            .join(DaoProposal, DaoProposal.id == DaoVote.proposal_row_id)
            .where(
                DaoVote.voter == voter,
                DaoVote.state == "submitted",
                DaoVote.nonce.is_not(None),
                DaoProposal.governor_address == gov,
            )
        ).all()
        failed = chain_api.outbox_states(
            self.session,
            (tx for _n, tx in rows if tx is not None),
            only=FAILED_TX_STATES,
        )
        in_flight = [int(n) + 1 for n, tx in rows if n is not None and tx not in failed]
        return max([int(self.gov(gov, "nonces", voter)), *in_flight])

    def _ballot(self, p: DaoProposal, support: int, voter: str) -> tuple[dict[str, Any], int]:
        gov = p.governor_address
        nonce = self._next_nonce(gov, voter)
        domain = self.chain.eip712_domain(gov, artifact_name=GOVERNOR)
        return ballot_typed_data(domain, p.proposal_id_int, support, voter, nonce), nonce

    def prepare_ballot(
        self, user: User | None, town: Town, p: DaoProposal, support_value: object
    ) -> dict[str, Any]:
        """The EIP-712 Ballot an own-wallet (SIWE) user signs with eth_signTypedData_v4.

        Same checks as `cast_vote`; nothing is stored. The typed data binds the chamber's
        domain, the proposal, the choice, the voter and their governor nonce."""
        user = require_user() if user is None else user
        support, e = self.check_vote(user, town, p, support_value)
        require_own_wallet(e)
        typed, _nonce = self._ballot(p, support, str(e.address))
        return {"typed_data": for_browser(typed), "voter": e.address, "support": support}

    def cast_vote(
        self,
        user: User | None,
        town: Town,
        p: DaoProposal,
        support_value: object,
        signature: object = None,
    ) -> DaoVote:
        """Queue castVoteBySig (gasless): the built-in account's ballot is signed here; an own
        wallet's ballot (from `prepare_ballot`) must come as `signature` and recover to it. A
        voter whose earlier ballot's transaction failed votes again (common.py `add_vote`)."""
        user = require_user() if user is None else user
        support, e = self.check_vote(user, town, p, support_value)
        voter = str(e.address)
        self.lock_voter(voter)  # the nonce read below counts every ballot committed before
        sig, signer, how, nonce = self.sign_ballot(
            user, e, lambda: self._ballot(p, support, voter), signature
        )
        vote = DaoVote(
            proposal_row_id=p.id,
            voter=voter,
            user_id=user.id,
            support=support,
            weight=Decimal(e.weight),
            state="submitted",
            nonce=nonce,
        )
        return self.relay_vote(
            vote,
            already_voted=N_("You already voted on this proposal."),
            key=f"dao.vote:{p.id}:{voter}",
            contract=p.governor_address,
            artifact_name=GOVERNOR,
            args=[p.proposal_id_int, support, voter, sig],
            signer=signer,
            town=town,
            user=user,
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

    # ------------------------------------------------------------------ proposing

    def create_proposal(
        self,
        user: User | None,
        town: Town,
        data: Mapping[str, Any],
        key_value: object,
        *,
        check_treasury: bool = True,
        actor: str | None = None,
    ) -> DaoProposal:
        """Staff propose a treasury payout on a chamber (sent on chain by the clerk role key),
        or on both (chamber "both": a card-chamber row with the payout and a resident-chamber
        row approving it, one commit; backend/dao/joint.py). With `actor` (the demo data) no
        user is needed."""
        user, key, existing = self.start_create(DaoProposal, user, town, key_value, actor)
        if existing is not None:
            return existing
        # A twin with the same key committing after the look-up above: its proposal is the
        # answer, not the UNIQUE key's IntegrityError (backend/core/idempotency.py).
        return first_answer(
            self.session,
            lambda: self._propose(user, town, data, key, check_treasury, actor),
            lambda: self.existing(DaoProposal, key, town),
        )

    def _propose(
        self,
        user: User | None,
        town: Town,
        data: Mapping[str, Any],
        key: str,
        check_treasury: bool,
        actor: str | None,
    ) -> DaoProposal:
        """The writing half of create_proposal (no row with `key` was found); commits."""
        both = data.get("chamber") == BOTH
        if both and self.existing(DaoProposal, f"{key}:resident", town) is not None:
            # The resident half's key is taken: by a twin of this request (its answer), or by
            # another proposal filed under that very key (refused, not a UNIQUE key's 500).
            twin = self.existing(DaoProposal, key, town)
            if twin is not None:
                return twin
            raise InvalidInput(
                N_("This request key was used for another proposal; send the form again."),
                field="idempotency_key",
            )
        inp = parse_proposal(
            {**data, "chamber": CARD} if both else data,
            lambda named: self.recipient_address(town, named),
        )
        token_key, token_artifact, scale = token_contract(town, inp.token, self.chain)
        gov, token_address, treasury = self.addresses(
            chamber_key(town, inp.chamber), token_key, f"towns.{town.slug}.TownTreasury"
        )
        if check_treasury:
            balance = int(
                self.read(token_address, "balanceOf", treasury, artifact_name=token_artifact)
            )
            if balance < inp.amount * scale:
                raise InsufficientTreasury(
                    N_("The treasury holds only %(balance)s; the proposal asks for %(amount)s."),
                    balance=balance // scale,
                    amount=inp.amount,
                )
        # On chain the payout is in the token's units (10**decimals to the yen).
        calldata = encode_call(token_artifact, "transfer", [inp.recipient, inp.amount * scale])
        who = actor or f"user:{user.id}"  # type: ignore[union-attr]
        filing = _Filing(town, user, who, inp, token_address, treasury)
        p = self._file(filing, gov, key, [calldata])
        if both:
            # The resident chamber's half: the same text, an action that pays nothing (a read
            # of the treasury's balance), so the payout exists once, on the card chamber's row.
            approval = encode_call(token_artifact, "balanceOf", [treasury])
            (resident_gov,) = self.addresses(chamber_key(town, RESIDENT))
            half = replace(inp, chamber=RESIDENT)
            self._file(replace(filing, inp=half), resident_gov, f"{key}:resident", [approval], p.id)
        self.session.commit()
        return p

    def _file(
        self,
        f: _Filing,
        gov: str,
        key: str,
        calldatas: list[str],
        joint_of: int | None = None,
    ) -> DaoProposal:
        """Add one chamber's proposal row and queue its `propose` (no commit)."""
        inp, town, user = f.inp, f.town, f.user
        title = inp.title_en or inp.title_ja
        parts = [f"# {title}", inp.title_ja, inp.body_en, inp.body_ja]
        # Ends with the proposer suffix of the key that sends `propose` (its msg.sender): the
        # governor refuses this text from anyone else, so nobody takes the proposal's id first.
        proposer = self.outbox.keys.role(PROPOSER_ROLE)
        parts += [f"[furusato:{town.slug}:{key}]", proposer_suffix(proposer)]
        description = "\n\n".join(x for x in parts if x)
        targets, values = [f.token_address], [0]
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
            token_address=f.token_address,
            recipient=inp.recipient,
            amount=Decimal(inp.amount),
            treasury_address=f.treasury,
            created_by=user.id if user is not None else None,
            joint_of=joint_of,
        )
        self.session.add(p)
        self.session.flush()
        tx = self.outbox.enqueue(
            self.session,
            ContractCall(
                gov, "propose", [targets, values, calldatas, description], artifact_name=GOVERNOR
            ),
            sender=Sender.role(
                PROPOSER_ROLE, town_id=town.id, user_id=user.id if user is not None else None
            ),
            key=f"dao.propose:{key}",
            subject=Subject("dao_proposal", p.id),
            audit=AuditEntry(
                actor=f.who,
                action="dao.propose",
                subject_type="dao_proposal",
                subject_id=str(p.id),
                amount=inp.amount,
                reason=title,
                details={
                    "token": inp.token,
                    "recipient": inp.recipient,
                    "chamber": inp.chamber,
                    "joint_of": joint_of,
                },
            ),
        )
        p.propose_tx_id = tx.id
        return p

    # ------------------------------------------------------------------ results

    def payouts(self, p: DaoProposal) -> list[dict[str, Any]]:
        """The treasury's token transfers in the indexed execute transaction."""
        if not p.executed_tx_hash:
            return []
        rows = chain_api.events_of_tx(self.session, p.executed_tx_hash, "Transfer")
        out = []
        for r in rows:
            args = r.args or {}
            if str(args.get("from", "")).lower() != p.treasury_address.lower():
                continue
            ours = r.contract_address.lower() == p.token_address.lower()
            out.append(
                {
                    "token": p.token if ours else "",
                    "token_address": r.contract_address,
                    "to": args.get("to"),
                    "amount": str(args.get("value")),
                    "tx_hash": r.tx_hash,
                    "block_number": r.block_number,
                }
            )
        return out

    def recipient_address(self, town: Town, named: object) -> str:
        """The address of the person or shop staff named as a payout's recipient: an e-mail,
        a customer code, a card code, a shop's name or an address (InvalidInput otherwise)."""
        return issuing_service().resolve_recipient(town, named, shops=True).address

    def recipients(self, p: DaoProposal, payouts: list[dict[str, Any]]) -> dict[str, Recipient]:
        """Who the proposal pays and who its payouts went to, in words (backend/dao/recipients.py),
        keyed by address."""
        town = self.session.get(Town, p.town_id)
        assert town is not None  # noqa: S101 - a proposal belongs to a town
        addresses = [p.recipient, *(str(pay.get("to") or "") for pay in payouts)]
        return describe(self.session, merchant_service(), town, addresses)

    def results(self, p: DaoProposal, view: ChainView | None = None) -> dict[str, Any]:
        view = view or self.chain_view(p)
        return {
            "proposal": p.id,
            **view.as_dict(),
            **self.vote_counts(DaoVote.proposal_row_id, p.id),
            "propose_tx": tx_json(self.tx(p.propose_tx_id)),
            "queue_tx": tx_json(self.tx(p.queue_tx_id)),
            "execute_tx": tx_json(self.tx(p.execute_tx_id)),
            "executed_tx_hash": p.executed_tx_hash,
            "payouts": self.payouts(p),
            "joint": joint.joint_view(self, p),
        }
