"""Claims (issue 14 §3, ADR 0017): points issued to an e-mail address that has no verified
account wait in a claim wallet reserved for that address, and go to the account that verifies
it.

- **Holding** (`wallets_for`, `hold`): issuing resolves such an address to its claim wallet (one
  custodial key per address waiting, reused by every issuance and every town) and issues there
  on chain, so the chain holds the real lot and expiry runs from the issue. When the issuance
  is queued, `hold` records a claim per row, with an audit row "points.claim.create", in the
  issuing transaction.
- **Taking** (`take`): once an account's owner has verified the address (the mailed link, a
  password reset or an e-mail change: each proves the mailbox), ONE conditional UPDATE gives
  the waiting wallet to that account, so of any number of requests at once exactly one wins;
  an account that has not verified the address gets nothing. Audit row "points.claim.take" per
  claim. `take_verified` (the beat) does the same for any verified account the pages missed.
- **Moving** (`move_claimed`, the beat): a claimed wallet's points of each town are sent to the
  account's built-in wallet by a relayed `transfer` signed with the claim wallet's key (one
  outbox row, key claims.move:<wallet>:<town>:<n>, audit row "points.claim.move"). The chain
  moves the consumed lots with their expiry, so the person sees the original expiry. It waits
  while an issuance to the wallet is still on its way, and while the town's points go to shops
  only (such a transfer would revert); unclaimed points simply expire on chain. A transfer
  that failed is followed by another; after MAX_FAILED_MOVES failures of one wallet and town
  the mover stops, with an audit row, an operator alert and the people concerned shown to the
  town's staff (transfers.py).

Every public method commits what it changed (except `wallets_for` and `hold`, which work in the
issuing caller's transaction).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from celery import current_app as celery_app
from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.accounts.models import User
from backend.accounts.roles import STAFF, require_town_role
from backend.accounts.services import custodial_addresses, users_by_email
from backend.chain import api as chain
from backend.chain.api import (
    AuditEntry,
    ChainError,
    ContractCall,
    KeyVault,
    ModelKeyStore,
    OutboxService,
    Sender,
    Subject,
)
from backend.claims import transfers as moves
from backend.claims.models import (
    HELD,
    LAPSED,
    LIVE,
    MOVED,
    QUEUED,
    TAKEN,
    ClaimTransfer,
    ClaimWallet,
    PointsClaim,
)
from backend.core.broker import publish
from backend.core.db import get_db, utcnow
from backend.core.errors import N_, AppError
from backend.core.models import AuditLog
from backend.points.services import PointsService
from backend.points.town_settings import MERCHANTS_ONLY, policy_on_chain
from backend.regions.models import Town

log = logging.getLogger(__name__)

SOURCE_ISSUANCE_ROW = "issuance_row"
MAX_FAILED_MOVES = moves.MAX_FAILED_MOVES

# Shown on an issuance row held in a claim wallet (preview and progress).
HELD_FOR = N_("Will be held for %(email)s until they sign up and confirm this address.")
# The row cannot be held: the town's points may only be paid to shops.
NOT_HELD_MERCHANTS_ONLY = N_(
    "No account has confirmed this email address, and this town's points can only go to "
    "shops, so they cannot be held for it. Ask them to sign up and confirm it first."
)
NOT_HELD_NO_CUSTODY = N_(
    "No account has confirmed this email address, and points cannot be held for it right now "
    "(no wallet can be made). Ask them to sign up and confirm it first."
)


class ClaimsUnavailable(AppError):
    status = 503
    code = "claims_unavailable"


@dataclass(frozen=True)
class HeldRow:
    """An issuance row whose points go to a claim wallet (for `hold`)."""

    row_id: int
    address: str  # the claim wallet
    amount: int


@dataclass(frozen=True)
class Waiting:
    """What a town holds for people who have not claimed it yet."""

    claims: int
    people: int
    points: int
    lapsed_points: int = 0  # held for addresses nobody claimed, expired (or never issued)
    # Claimed, but the mover gave up after MAX_FAILED_MOVES failed transfers (transfers.py).
    stuck_people: int = 0
    stuck_points: int = 0


@dataclass(frozen=True)
class Arriving:
    """Points of a town claimed by a person and not yet in their wallet."""

    town: Town
    points: int


class ClaimService:
    """Claims over one DB session; `vault` and `outbox` are callables (built when needed)."""

    def __init__(
        self,
        session: Session,
        *,
        vault: Callable[[], KeyVault],
        outbox: Callable[[], OutboxService],
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.session = session
        self._vault = vault
        self._outbox = outbox
        self._now = now

    # ------------------------------------------------------------------ holding

    def wallets_for(self, emails: Iterable[str]) -> dict[str, str]:
        """The claim wallet address waiting for each of `emails` (lower-cased), reserving a new
        one (a new custodial key) for an address with none. In the caller's transaction; two
        callers reserving for one address at once end up with the same wallet (the partial
        UNIQUE index decides). ClaimsUnavailable when no key can be made."""
        wanted = sorted({e.strip().lower() for e in emails})
        found = self._waiting(wanted)
        for email in wanted:
            if email in found:
                continue
            try:
                sealed = self._vault().create_key()
            except ChainError as exc:  # CustodyNotConfigured, KeyVaultError
                log.error("no claim wallet can be made: %s", type(exc).__name__)
                raise ClaimsUnavailable(NOT_HELD_NO_CUSTODY) from None
            try:
                with self.session.begin_nested():
                    self.session.add(
                        ClaimWallet(email=email, created_at=self._now(), **sealed.columns())
                    )
            except IntegrityError:  # another issuance reserved one for this address meanwhile
                pass
            found.update(self._waiting([email]))
        return found

    def _waiting(self, emails: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for i in range(0, len(emails), 500):
            rows = self.session.execute(
                select(ClaimWallet.email, ClaimWallet.address).where(
                    ClaimWallet.email.in_(emails[i : i + 500]), ClaimWallet.claimed_by.is_(None)
                )
            )
            out.update({str(e): str(a) for e, a in rows})
        return out

    def hold(
        self,
        *,
        town_id: int,
        programme_id: int,
        batch_id: int,
        rows: Sequence[HeldRow],
        actor: str,
        reason: str,
    ) -> list[PointsClaim]:
        """One claim per row issued to a claim wallet, with its audit row, in the caller's
        transaction (the one that queues the issuance). A wallet already claimed (its owner
        verified between preview and confirm) gets a claim that is taken at once, so the
        points go on to its owner when they arrive."""
        if not rows:
            return []
        wallets = {
            w.address: w
            for w in self.session.scalars(
                select(ClaimWallet).where(ClaimWallet.address.in_({r.address for r in rows}))
            )
        }
        now = self._now()
        out = []
        for r in rows:
            wallet = wallets.get(r.address)
            if wallet is None:
                raise ValueError(f"{r.address} is not a claim wallet")
            taken = wallet.claimed_by is not None
            claim = PointsClaim(
                wallet_id=wallet.id,
                town_id=town_id,
                programme_id=programme_id,
                amount=Decimal(r.amount),
                source=SOURCE_ISSUANCE_ROW,
                source_id=r.row_id,
                batch_id=batch_id,
                state=TAKEN if taken else HELD,
                created_by=actor,
                created_at=now,
                taken_by=wallet.claimed_by,
                taken_at=now if taken else None,
            )
            self.session.add(claim)
            out.append(claim)
        self.session.flush()
        for claim, r in zip(out, rows, strict=True):
            self.session.add(
                AuditLog(
                    actor=actor,
                    action="points.claim.create",
                    subject_type="points_claim",
                    subject_id=str(claim.id),
                    amount=Decimal(r.amount),
                    reason=reason,
                    details={
                        "town_id": town_id,
                        "programme_id": programme_id,
                        "issuance_batch": batch_id,
                        "wallet": r.address,
                    },
                )
            )
        return out

    # ------------------------------------------------------------------ taking

    def take(self, user: User) -> int:
        """Give the wallet waiting for the user's address to the user, if they verified it
        (commits). Returns how many claims they took (0: nothing waiting, not verified, or
        another request took it first). Safe to call any number of times at once."""
        email = user.email
        if not email or user.email_verified_at is None:
            return 0
        now = self._now()
        wallet_id = self.session.scalar(
            select(ClaimWallet.id).where(
                ClaimWallet.email == email, ClaimWallet.claimed_by.is_(None)
            )
        )
        if wallet_id is None:
            return 0
        # The one decision: only one request can set claimed_by, whatever the interleaving.
        won = self.session.execute(
            update(ClaimWallet)
            .where(ClaimWallet.id == wallet_id, ClaimWallet.claimed_by.is_(None))
            .values(claimed_by=user.id, claimed_at=now)
            .execution_options(synchronize_session=False)
        )
        if won.rowcount != 1:  # type: ignore[attr-defined]
            self.session.rollback()
            return 0
        try:
            claims = list(
                self.session.scalars(
                    select(PointsClaim)
                    # Lapsed ones too: whatever reaches the wallet late is the owner's as well.
                    .where(
                        PointsClaim.wallet_id == wallet_id,
                        PointsClaim.state.in_((HELD, LAPSED)),
                    )
                    .order_by(PointsClaim.id)
                )
            )
            for claim in claims:
                claim.state, claim.taken_by, claim.taken_at = TAKEN, user.id, now
                self.session.add(
                    AuditLog(
                        actor=f"user:{user.id}",
                        action="points.claim.take",
                        subject_type="points_claim",
                        subject_id=str(claim.id),
                        amount=claim.amount,
                        reason="claimed by the verified owner of the address",
                        details={"town_id": claim.town_id, "wallet_id": wallet_id},
                    )
                )
            self.session.commit()
        except Exception:
            self.session.rollback()
            raise
        log.info("user %s took %d claims (wallet %s)", user.id, len(claims), wallet_id)
        publish(celery_app, "claims.move_claimed", [])
        return len(claims)

    def take_verified(self) -> int:
        """Take every waiting wallet whose address a verified account holds (the beat: the
        pages call `take` at once, this catches what they missed). Returns claims taken."""
        waiting = list(
            self.session.scalars(
                select(ClaimWallet.email)
                .join(PointsClaim, PointsClaim.wallet_id == ClaimWallet.id)
                .where(ClaimWallet.claimed_by.is_(None), PointsClaim.state == HELD)
                .distinct()
            )
        )
        owners = users_by_email(self.session, waiting, verified_only=True)
        self.session.rollback()
        taken = 0
        for user_id in owners.values():
            user = self.session.get(User, user_id)
            if user is not None:
                taken += self.take(user)
        return taken

    # ------------------------------------------------------------------ moving

    def move_claimed(self) -> int:
        """Move what claimed wallets hold to their owners (the beat; commits per wallet and
        town). Returns how many transfers it queued."""
        pairs = self.session.execute(
            select(PointsClaim.wallet_id, PointsClaim.town_id)
            .where(PointsClaim.state == TAKEN)
            .group_by(PointsClaim.wallet_id, PointsClaim.town_id)
            .order_by(PointsClaim.wallet_id, PointsClaim.town_id)
            .limit(200)
        ).all()
        self.session.rollback()
        queued = 0
        for wallet_id, town_id in pairs:
            try:
                queued += self._move(int(wallet_id), int(town_id))
                self.session.commit()
            except (AppError, ChainError) as exc:  # the chain is away: the next beat retries
                self.session.rollback()
                log.warning("claim wallet %s, town %s not moved: %s", wallet_id, town_id, exc)
        return queued

    def _move(self, wallet_id: int, town_id: int) -> int:
        wallet = self.session.get(ClaimWallet, wallet_id)
        town = self.session.get(Town, town_id)
        if wallet is None or town is None or wallet.claimed_by is None:
            return 0
        transfers = list(
            self.session.scalars(
                select(ClaimTransfer)
                .where(ClaimTransfer.wallet_id == wallet_id, ClaimTransfer.town_id == town_id)
                .order_by(ClaimTransfer.number)
            )
        )
        moves.follow(self.session, transfers)
        if any(t.status in LIVE for t in transfers):
            return 0  # wait for it: the indexer's balance is not final yet
        points = PointsService(self.session, self._outbox, now=self._now)
        incoming, _out, _items = points.pending(town, wallet.address)
        if incoming:
            return 0  # an issuance to the wallet is still on its way
        balance = points.confirmed_balance(town, wallet.address)
        if balance <= 0:  # all moved, or expired before it was claimed: nothing more to do
            self._settle(wallet_id, town_id)
            return 0
        if policy_on_chain(self.session, town) == MERCHANTS_ONLY:
            return 0  # the transfer would revert; the points wait (and may expire)
        if moves.failures(self.session, wallet_id, town_id) >= MAX_FAILED_MOVES:
            return 0  # alerted and audited when it failed (transfers.py); the claim stays taken
        owner = wallet.claimed_by
        to = custodial_addresses(self.session, [owner]).get(owner)
        if to is None:
            log.warning("claim wallet %s: its owner %s has no built-in wallet", wallet_id, owner)
            return 0
        number = len(transfers)
        move = ClaimTransfer(
            wallet_id=wallet_id,
            town_id=town_id,
            number=number,
            user_id=owner,
            to_address=to,
            amount=Decimal(balance),
            status=QUEUED,
            created_at=self._now(),
        )
        self.session.add(move)
        self.session.flush()
        tx = self._outbox().enqueue(
            self.session,
            ContractCall(
                str(town.points_address),
                "transfer",
                (to, balance),
                artifact_name="RegionPoints",
            ),
            # Relayed and signed with the claim wallet's key; the town pays the gas (the
            # owner's daily budget is for their own actions).
            sender=Sender.user(self._vault().signer(wallet.sealed_key()), town_id=town.id),
            key=f"claims.move:{wallet_id}:{town_id}:{number}",
            subject=Subject("claim_transfer", move.id),
            audit=AuditEntry(
                actor="system:claims",
                action="points.claim.move",
                subject_type="claim_transfer",
                subject_id=str(move.id),
                amount=balance,
                reason="points held for an address, to the account that verified it",
                details={"town_id": town_id, "wallet_id": wallet_id, "user_id": owner},
            ),
        )
        move.outbox_tx_id = tx.id
        return 1

    def _settle(self, wallet_id: int, town_id: int) -> None:
        self.session.execute(
            update(PointsClaim)
            .where(
                PointsClaim.wallet_id == wallet_id,
                PointsClaim.town_id == town_id,
                PointsClaim.state == TAKEN,
            )
            .values(state=MOVED, moved_at=self._now())
            .execution_options(synchronize_session=False)
        )

    def lapse_held(self) -> int:
        """Held claims whose wallet holds nothing more in their town and has nothing on its
        way (the points expired on chain, or the issuance failed) lapse: staff no longer see
        them as waiting (the beat, hourly; commits). Returns how many lapsed."""
        pairs = self.session.execute(
            select(PointsClaim.wallet_id, PointsClaim.town_id)
            .where(PointsClaim.state == HELD)
            .group_by(PointsClaim.wallet_id, PointsClaim.town_id)
        ).all()
        self.session.rollback()
        points = PointsService(self.session, self._outbox, now=self._now)
        lapsed = 0
        for wallet_id, town_id in pairs:
            wallet = self.session.get(ClaimWallet, wallet_id)
            town = self.session.get(Town, town_id)
            if wallet is None or town is None or wallet.claimed_by is not None:
                continue
            incoming, _out, _items = points.pending(town, wallet.address)
            if incoming or points.confirmed_balance(town, wallet.address) > 0:
                continue
            done = self.session.execute(
                update(PointsClaim)
                .where(
                    PointsClaim.wallet_id == wallet_id,
                    PointsClaim.town_id == town_id,
                    PointsClaim.state == HELD,
                )
                .values(state=LAPSED)
                .execution_options(synchronize_session=False)
            )
            lapsed += int(done.rowcount or 0)  # type: ignore[attr-defined]
            self.session.commit()
        return lapsed

    # ------------------------------------------------------------------ reading

    def waiting(self, actor: User | None, town: Town) -> Waiting:
        """The town's claims nobody has taken yet: how many, for how many addresses, how many
        points (as issued), the points of claims that lapsed (nobody claimed them before
        they expired on chain), and the people and points claimed that could not be moved to
        their accounts (the mover gave up). Town STAFF only."""
        require_town_role(actor, town.id, STAFF)
        claims, people, points = self.session.execute(
            select(
                func.count(),
                func.count(func.distinct(PointsClaim.wallet_id)),
                func.coalesce(func.sum(PointsClaim.amount), 0),
            ).where(PointsClaim.town_id == town.id, PointsClaim.state == HELD)
        ).one()
        lapsed = self.session.scalar(
            select(func.coalesce(func.sum(PointsClaim.amount), 0)).where(
                PointsClaim.town_id == town.id, PointsClaim.state == LAPSED
            )
        )
        stuck_people, stuck_points = moves.stuck_in_town(self.session, town.id)
        return Waiting(
            int(claims), int(people), int(points), int(lapsed or 0), stuck_people, stuck_points
        )

    def arriving(self, user: User) -> list[Arriving]:
        """Per town, the points the user claimed that are not in their wallet yet."""
        rows = self.session.execute(
            select(PointsClaim.town_id, func.sum(PointsClaim.amount))
            .where(PointsClaim.taken_by == user.id, PointsClaim.state == TAKEN)
            .group_by(PointsClaim.town_id)
            .order_by(PointsClaim.town_id)
        ).all()
        out = []
        for town_id, amount in rows:
            town = self.session.get(Town, town_id)
            if town is not None:
                out.append(Arriving(town, int(amount or 0)))
        return out

    def is_claim_wallet(self, addresses: Iterable[str]) -> set[str]:
        """Which of `addresses` are claim wallets."""
        wanted = sorted(set(addresses))
        return (
            set(
                self.session.scalars(
                    select(ClaimWallet.address).where(ClaimWallet.address.in_(wanted))
                )
            )
            if wanted
            else set()
        )


def claim_key_store(session: Session) -> ModelKeyStore:
    """The claim wallets' keys, as master-key rotation sees them."""
    return ModelKeyStore("claims.claim_wallets", session, ClaimWallet)


def claim_service() -> ClaimService:
    """A ClaimService for the current app and request."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return ClaimService(
        get_db().session(),
        vault=lambda: chain.get_vault(app),
        outbox=chain.outbox_service,
    )
