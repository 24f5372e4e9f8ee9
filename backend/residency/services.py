"""Residency: staff verify a person in person, or a digital-ID provider does; the registrar
key issues the town's ResidentPass; staff revoke it when the person moves away.

Promises:
- one person, one pass per town: the identity hash is UNIQUE per town, an account holds one
  row per town, and ten concurrent issues for one person make one row, one outbox call and
  one audit row (PostgreSQL and SQLite: the UNIQUE constraints decide, then the outbox key
  `resident-pass:<town>:<identity hash>`);
- asking again for a person who holds (or is being issued) the pass on the same account
  changes nothing and answers with their row; on another account it is refused (409);
- issue and revoke go on chain only through the outbox (the `registrar` role key), in the
  same transaction as the row and its audit row ("residency.issue", "residency.revoke");
- the raw identity (name, birth date, address) is never stored: only its HMAC;
- staff (STAFF of the town) verify in person and revoke; a person verifies themself only
  through the provider (oidc.py); bad input is a 4xx with nothing written;
- a call that fails on chain leaves no row waiting for ever (failures.py): a failed issue is
  "failed", and verifying the person again issues the pass anew (once, however many at once);
  a failed revocation leaves the pass "issued" for staff to revoke again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.accounts.models import CUSTODIAL, EXTERNAL, Address, User
from backend.accounts.roles import STAFF, require_town_role, require_user
from backend.accounts.services import normalise_email
from backend.chain.api import (
    AuditEntry,
    ContractCall,
    OutboxService,
    Sender,
    Subject,
    calls_of_subject,
)
from backend.chain.api import outbox_service as chain_outbox_service
from backend.core.db import get_db, utcnow
from backend.core.errors import N_, InvalidInput, NotFound
from backend.core.purpose_keys import RESIDENT_IDENTITY, purpose_key
from backend.regions.models import Town
from backend.residency import identity, oidc
from backend.residency.errors import AlreadyResident, OidcRefused, ResidencyWrongState
from backend.residency.failures import failure_reasons, refresh_failed
from backend.residency.models import (
    FAILED,
    IN_PERSON,
    ISSUED,
    ISSUING,
    OIDC,
    REVOKED,
    REVOKING,
    Resident,
)
from backend.residency.oidc import VerifiedClaims

MAX_REASON = 500
NO_SUCH_RESIDENT = N_("There is no such resident in this town.")


@dataclass(frozen=True)
class Verification:
    """How a person was verified: in person by a staff member, or by a provider."""

    method: str  # IN_PERSON | OIDC
    staff: User | None = None
    issuer: str | None = None


class ResidencyService:
    """Residents of a town and their passes, over one DB session. `outbox` is a callable (built
    on first use); `key` keys the identity hash; `code_holder` names the user of a customer's
    single-use code (the merchants domain's codes), for the staff's search."""

    def __init__(
        self,
        session: Session,
        *,
        outbox: Callable[[], OutboxService],
        key: bytes,
        code_holder: Callable[[str], int | None] | None = None,
    ) -> None:
        self.session = session
        self._outbox = outbox
        self._key = key
        self._code_holder = code_holder

    # ------------------------------------------------------------------ look-ups

    def find_person(self, staff: User | None, town: Town, query: object) -> User:
        """Town staff look a person up by e-mail or by the customer code on their phone."""
        require_town_role(staff, town.id, STAFF)
        text = query.strip() if isinstance(query, str) else ""
        user: User | None = None
        if "@" in text:
            email = normalise_email(text)
            user = self.session.scalar(select(User).where(User.email == email))
        elif text and self._code_holder is not None:
            holder = self._code_holder(text.upper())
            user = self.session.get(User, holder) if holder is not None else None
        if user is None:
            raise InvalidInput(
                N_("No account has this e-mail address or customer code."), field="query"
            )
        return user

    def person(self, staff: User | None, town: Town, user_id: object) -> User:
        require_town_role(staff, town.id, STAFF)
        try:
            uid = int(user_id)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            uid = 0
        user = self.session.get(User, uid) if uid > 0 else None
        if user is None:
            raise NotFound(N_("There is no such account."))
        return user

    def resident_of(self, town: Town, user: User) -> Resident | None:
        """The user's row in the town (any state, a failed call applied), if any."""
        row = self.session.scalar(
            select(Resident).where(Resident.town_id == town.id, Resident.user_id == user.id)
        )
        if row is not None:
            refresh_failed(self.session, [row])
        return row

    def my_passes(self, user: User | None) -> list[Resident]:
        """The signed-in person's rows in every town (failed calls applied)."""
        user = require_user() if user is None else user
        rows = list(
            self.session.scalars(
                select(Resident).where(Resident.user_id == user.id).order_by(Resident.id)
            )
        )
        refresh_failed(self.session, rows)
        return rows

    def failure_reasons(self, rows: list[Resident]) -> dict[int, str]:
        """Why a row's last call failed (a failed issue, or a failed revocation of an issued
        pass), by resident id, as the outbox recorded it."""
        return failure_reasons(self.session, rows)

    def towns(self) -> list[Town]:
        return list(self.session.scalars(select(Town).order_by(Town.id)))

    def residents(self, staff: User | None, town: Town, limit: int = 200) -> list[Resident]:
        """The town's residents, newest first (town staff)."""
        require_town_role(staff, town.id, STAFF)
        rows = list(
            self.session.scalars(
                select(Resident)
                .where(Resident.town_id == town.id)
                .order_by(Resident.id.desc())
                .limit(limit)
            )
        )
        refresh_failed(self.session, rows)
        return rows

    def accounts(self, rows: list[Resident]) -> dict[int, User]:
        """The accounts of `rows`, by user id (for the staff's list)."""
        ids = {r.user_id for r in rows}
        if not ids:
            return {}
        return {u.id: u for u in self.session.scalars(select(User).where(User.id.in_(ids)))}

    def get(self, town: Town, resident_id: object) -> Resident:
        try:
            rid = int(resident_id)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            rid = 0
        row = self.session.get(Resident, rid) if rid > 0 else None
        if row is None or row.town_id != town.id:
            raise NotFound(NO_SUCH_RESIDENT)
        return row

    # ------------------------------------------------------------------ issuing

    def verify_in_person(
        self,
        staff: User | None,
        town: Town,
        person: User,
        *,
        saw_id: object,
        name: object,
        birth_date: object,
        address: object,
    ) -> Resident:
        """Staff who saw the person's ID record it, and the pass is queued. The name, birth
        date and address are hashed here and dropped."""
        staff = require_town_role(staff, town.id, STAFF)
        if saw_id not in (True, "1", "on", "yes", "true"):
            raise InvalidInput(
                N_("Confirm that you saw an official ID before issuing the pass."),
                field="saw_id",
            )
        digest = identity.person_hash(self._key, name, birth_date, address)
        return self.issue(town, person, digest, Verification(IN_PERSON, staff=staff))

    def oidc_identity(self, issuer: str, claims: dict[str, object]) -> str:
        """The identity hash of a provider's verified claims: the same hash as in person when
        the name, birth date and address are there, else the provider's subject."""
        name, born, address = claims.get("name"), claims.get("birthdate"), _address(claims)
        if isinstance(name, str) and isinstance(born, str) and address:
            return identity.person_hash(self._key, name, born, address)
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise InvalidInput(N_("The digital-ID provider did not say who you are."))
        return identity.subject_hash(self._key, issuer, sub)

    def verify_by_oidc(self, user: User | None, town: Town, verified: VerifiedClaims) -> Resident:
        """The person signed in with the digital-ID provider, whose verified claims put their
        address in `town`: the pass is queued without a visit (OidcRefused otherwise)."""
        user = require_user() if user is None else user
        if not oidc.lives_in(town, verified.claims):
            raise OidcRefused(
                N_(
                    "Your digital ID gives an address outside this town, so no pass was issued. "
                    "If you live here, please visit the town hall."
                ),
            )
        digest = self.oidc_identity(verified.issuer, verified.claims)
        return self.issue(town, user, digest, Verification(OIDC, issuer=verified.issuer))

    def issue(self, town: Town, person: User, digest: str, how: Verification) -> Resident:
        """Queue the town's pass for `person` under `digest` (commits). Idempotent for the same
        person and account; AlreadyResident for another account or another person."""
        holder = self._holder(person)
        for _ in range(3):
            row, fresh = self._claim(town, person, digest, holder, how)
            if row is None:
                continue  # lost a race to a concurrent request: look again
            if fresh:
                self._queue_issue(town, row, how)
            self.session.commit()
            return row
        raise AlreadyResident(N_("This person's pass is being issued; try again shortly."))

    def _holder(self, person: User) -> str:
        rows = self.session.scalars(
            select(Address).where(Address.user_id == person.id).order_by(Address.id)
        ).all()
        for kind in (CUSTODIAL, EXTERNAL):
            for a in rows:
                if a.kind == kind:
                    return str(a.address)
        raise InvalidInput(N_("This account has no wallet to hold the pass."))

    def _claim(
        self, town: Town, person: User, digest: str, holder: str, how: Verification
    ) -> tuple[Resident | None, bool]:
        """(the row, whether this request must queue the issue); (None, False) when a
        concurrent request changed the rows first."""
        by_person = self.session.scalar(
            select(Resident).where(Resident.town_id == town.id, Resident.identity_hash == digest)
        )
        by_account = self.resident_of(town, person)
        if by_person is not None:
            # A pass whose issue failed on chain is issued anew below, not waited for.
            refresh_failed(self.session, [by_person])
        if by_person is None and by_account is not None and by_account.identity_hash == digest:
            # A concurrent request committed the row between the two reads: the same one.
            by_person = by_account
        if by_person is not None and by_person.active:
            if by_person.user_id != person.id:
                raise AlreadyResident(
                    N_("This person already holds the town's resident pass on another account.")
                )
            return by_person, False
        if by_account is not None and by_account.active:
            raise AlreadyResident(
                N_("This account already holds the town's resident pass for another person.")
            )
        if by_person is not None and by_account is not None and by_person.id != by_account.id:
            raise AlreadyResident(
                N_("This person and this account have separate past passes; ask town staff.")
            )
        again = by_person or by_account
        if again is not None:
            return self._reissue(again, person, digest, holder, how)
        row = Resident(
            town_id=town.id,
            user_id=person.id,
            identity_hash=digest,
            holder=holder,
            state=ISSUING,
            method=how.method,
            verified_by=how.staff.id if how.staff else None,
            oidc_issuer=how.issuer,
        )
        # No SAVEPOINT around the row's write: on SQLite a savepoint opened before the
        # transaction's first write commits when released, so the row would be committed
        # without its outbox call ("issuing" for ever if queueing the call then fails). Nothing
        # else is written before it, so a conflict rolls the whole transaction back.
        self.session.add(row)
        try:
            self.session.flush()
        except IntegrityError:
            self.session.rollback()
            return None, False
        return row, True

    def _reissue(
        self, row: Resident, person: User, digest: str, holder: str, how: Verification
    ) -> tuple[Resident | None, bool]:
        """A revoked row issued again (the person moved back), or one whose issue failed on
        chain (verified again): one conditional UPDATE, so of concurrent requests only one
        queues the issue, under the next generation's outbox key (the failed call keeps its
        own: the same key would answer that call again and send nothing)."""
        generation = row.generation
        try:  # no SAVEPOINT: see `_claim` (the UPDATE and the call commit together)
            done = self.session.execute(
                update(Resident)
                .where(
                    Resident.id == row.id,
                    Resident.state.in_((REVOKED, FAILED)),
                    Resident.generation == generation,
                )
                .values(
                    state=ISSUING,
                    generation=generation + 1,
                    user_id=person.id,
                    identity_hash=digest,
                    holder=holder,
                    method=how.method,
                    verified_by=how.staff.id if how.staff else None,
                    oidc_issuer=how.issuer,
                    verified_at=utcnow(),
                    token_id=None,
                    issue_tx_id=None,
                    revoke_reason="",
                    revoke_tx_id=None,
                    revoked_by=None,
                )
                .execution_options(synchronize_session=False)
            )
        except IntegrityError:
            self.session.rollback()
            return None, False
        self.session.refresh(row)
        if done.rowcount != 1:  # type: ignore[attr-defined]
            return None, False
        return row, True

    def _queue_issue(self, town: Town, row: Resident, how: Verification) -> None:
        key = f"resident-pass:{town.slug}:{row.identity_hash}"
        if row.generation > 1:
            key += f":{row.generation}"
        actor = f"user:{how.staff.id}" if how.staff else f"user:{row.user_id}"
        tx = self._outbox().enqueue(
            self.session,
            ContractCall(
                f"towns.{town.slug}.ResidentPass",
                "issue",
                [row.holder, row.identity_hash],
                artifact_name="ResidentPass",
            ),
            sender=Sender.role(
                "registrar", town_id=town.id, user_id=how.staff.id if how.staff else row.user_id
            ),
            key=key,
            subject=Subject("resident", row.id),
            audit=AuditEntry(
                actor=actor,
                action="residency.issue",
                subject_type="resident",
                subject_id=str(row.id),
                reason="identity seen in person" if how.method == IN_PERSON else "digital ID",
                details={
                    "town_id": town.id,
                    "user_id": row.user_id,
                    "method": how.method,
                    "saw_id": how.method == IN_PERSON,
                    "issuer": how.issuer,
                    "generation": row.generation,
                    "holder": row.holder,
                },
            ),
        )
        row.issue_tx_id = tx.id

    # ------------------------------------------------------------------ revoking

    def revoke(
        self, staff: User | None, town: Town, resident_id: object, reason: object
    ) -> Resident:
        """Staff revoke a pass (the person moved away); queued once, whatever the repeats. A
        revocation that failed on chain left the pass issued: revoking again queues a new call."""
        staff = require_town_role(staff, town.id, STAFF)
        row = self.get(town, resident_id)
        refresh_failed(self.session, [row])
        text = reason.strip() if isinstance(reason, str) else ""
        if not text or len(text) > MAX_REASON:
            raise InvalidInput(
                N_("Give the reason (for example: moved away), at most 500 characters."),
                field="reason",
            )
        if row.state in (REVOKING, REVOKED):
            return row
        if row.state == FAILED:
            raise ResidencyWrongState(
                N_("This pass was never issued: its issue failed. Verify the person again.")
            )
        if row.state != ISSUED or row.token_id is None:
            raise ResidencyWrongState(
                N_("The pass is still being issued; revoke it once it is issued.")
            )
        done = self.session.execute(
            update(Resident)
            .where(Resident.id == row.id, Resident.state == ISSUED)
            .values(state=REVOKING, revoke_reason=text, revoked_by=staff.id)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            self.session.rollback()
            self.session.refresh(row)
            return row
        # A failed revocation keeps its outbox key (the same key would answer that call again
        # and send nothing), so each new one is numbered; counted after the UPDATE above took
        # the row's lock, so two staff cannot pick the same number.
        calls = calls_of_subject(self.session, "resident", row.id)
        tries = sum(1 for c in calls if c.function == "revoke")
        key = f"resident-pass-revoke:{town.slug}:{row.identity_hash}:{row.generation}"
        if tries:
            key += f":{tries + 1}"
        tx = self._outbox().enqueue(
            self.session,
            ContractCall(
                f"towns.{town.slug}.ResidentPass",
                "revoke",
                [int(row.token_id)],
                artifact_name="ResidentPass",
            ),
            sender=Sender.role("registrar", town_id=town.id, user_id=staff.id),
            key=key,
            subject=Subject("resident", row.id),
            audit=AuditEntry(
                actor=f"user:{staff.id}",
                action="residency.revoke",
                subject_type="resident",
                subject_id=str(row.id),
                reason=text,
                details={"town_id": town.id, "user_id": row.user_id, "token_id": row.token_id},
            ),
        )
        self.session.refresh(row)
        row.revoke_tx_id = tx.id
        self.session.commit()
        return row


def _address(claims: dict[str, object]) -> str:
    """The provider's address claim as one line (OIDC `address`: formatted, or its parts)."""
    value = claims.get("address")
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        return ""
    if isinstance(value.get("formatted"), str) and value["formatted"]:
        return str(value["formatted"])
    parts = ("region", "locality", "street_address")
    return "".join(str(value[p]) for p in parts if isinstance(value.get(p), str))


def residency_service() -> ResidencyService:
    """A ResidencyService for the current app and request."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def code_holder(code: str) -> int | None:
        from backend.merchants.services import merchant_service

        return merchant_service().customer_code_holder(code)

    return ResidencyService(
        get_db().session(),
        outbox=chain_outbox_service,
        key=purpose_key(str(app.config["SECRET_KEY"]), RESIDENT_IDENTITY),
        code_holder=code_holder,
    )


__all__ = ["OIDC", "ResidencyService", "Verification", "residency_service"]
