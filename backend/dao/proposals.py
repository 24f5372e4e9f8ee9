"""Treasury spending proposals of a town's DAO: create, eligibility, gasless votes, results.

The chain is the truth for states and tallies (read live from the governors); proposal texts
and the indexed events live in backend/dao/models.py. Queueing and executing a passed proposal
is backend/dao/treasury.py; what proposals and polls share is backend/dao/common.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from flask_babel import gettext
from sqlalchemy import func, select

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
from backend.core.numbers import is_ascii_digits
from backend.dao.common import (
    FAILED_TX_STATES,
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
from backend.dao.models import CARD, CHAMBER_KEYS, DaoProposal, DaoVote
from backend.regions.models import Town

AGAINST, FOR, ABSTAIN = 0, 1, 2
SUPPORT_NAMES = {"against": AGAINST, "for": FOR, "abstain": ABSTAIN}
TOKENS = ("yen", "points")
MAX_AMOUNT = 10**30
MAX_BODY = 5000
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
GOVERNOR = "TownGovernor"
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
        value = int(str(value).strip())
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
    chamber = chamber_of(data)
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
        amount=parse_amount(data.get("amount")),
        title_ja=text_field(data, "title_ja", MAX_TITLE),
        title_en=text_field(data, "title_en", MAX_TITLE),
        body_ja=text_field(data, "body_ja", MAX_BODY),
        body_en=text_field(data, "body_en", MAX_BODY),
    )
    if not out.title_ja and not out.title_en:
        raise InvalidInput(N_("Give the proposal a title (Japanese or English)."), field="title")
    return out


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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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
        "proposer": p.proposer,
        "created_at": p.created_at.isoformat(),
    }


class ProposalService(DaoService):
    """A town's treasury proposals, who may vote on them, and their gasless votes."""

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
        view.head_block = self.head_block()
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
        token = self.gov(gov, "token")
        e.current_weight = int(
            self.read(token, "getVotes", address, artifact_name=_token_artifact(p))
        )
        if view.state in ("submitting", "failed"):
            e.reason = unrecorded_reason(view.state)
            return _explain(e, p)
        if view.state != "pending":
            e.weight = int(self.gov(gov, "getVotes", address, view.snapshot))
        mine = self._pending_vote(p, address)
        voted = mine is not None or bool(self.gov(gov, "hasVoted", p.proposal_id_int, address))
        if voted:
            e.reason, e.support = "already_voted", mine.support if mine else None
        elif view.state == "pending":
            e.reason = "not_started"
        elif view.state != "active":
            e.reason = "ended"
        else:
            judge_weight(e, p.chamber)
        return _explain(e, p)

    # ------------------------------------------------------------------ voting

    def _require_can_vote(
        self, user: User, town: Town, p: DaoProposal, support_value: object
    ) -> tuple[int, Eligibility]:
        """(support, eligibility) when `user` may vote now; the refusals otherwise."""
        if p.town_id != town.id:
            raise NotFound(NO_SUCH_PROPOSAL)
        support = parse_support(support_value)
        e = self.eligibility(user, p)
        if not e.can_vote:
            refuse(e)
        return support, e

    def _next_nonce(self, gov: str, voter: str) -> int:
        """The voter's next governor nonce, counting their ballots not yet on chain."""
        in_flight = self.session.scalar(
            select(func.count(DaoVote.id))
            .join(DaoProposal, DaoProposal.id == DaoVote.proposal_row_id)
            .where(
                DaoVote.voter == voter,
                DaoVote.state == "submitted",
                DaoProposal.governor_address == gov,
            )
        )
        return int(self.gov(gov, "nonces", voter)) + int(in_flight or 0)

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
        support, e = self._require_can_vote(user, town, p, support_value)
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
        wallet's ballot (from `prepare_ballot`) must come as `signature` and recover to it."""
        user = require_user() if user is None else user
        support, e = self._require_can_vote(user, town, p, support_value)
        voter = str(e.address)
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
        self.relay_vote(
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
        return vote

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
        """Staff propose a treasury payout on a chamber (sent on chain by the clerk role key).
        With `actor` (the demo data) no user is needed."""
        user, key, existing = self.start_create(DaoProposal, user, town, key_value, actor)
        if existing is not None:
            return existing
        inp = parse_proposal(data)
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
        self.session.add(p)
        self.session.flush()
        who = actor or f"user:{user.id}"  # type: ignore[union-attr]
        tx = self.outbox.enqueue(
            self.session,
            ContractCall(
                gov, "propose", [targets, values, calldatas, description], artifact_name=GOVERNOR
            ),
            sender=Sender.role(
                "clerk", town_id=town.id, user_id=user.id if user is not None else None
            ),
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
        self.session.commit()
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
        }
