"""The town's people: its admin appoints and removes admins, staff, venue staff and data staff
by e-mail (the console's People page and /api/towns/<slug>/people).

Promises:
- only an ADMIN of the town changes its people (Forbidden otherwise; AuthenticationRequired when
  nobody is signed in); town STAFF (and admins) may see the list;
- every change writes one AuditLog row ("town.role.grant" / "town.role.revoke", subject the
  user, details with the role, the town and the request key), in the same commit;
- a repeated request changes nothing more: appointing someone who already holds the role, or
  removing a role nobody holds, answers as the first request did and writes nothing; a request
  key already used in this town is answered without acting again (a stale double submit cannot
  undo a later change); ten concurrent appointments of one person make one membership (the
  UNIQUE constraint on memberships decides);
- the town always keeps one admin: removing the last one is refused (LastAdmin, 409), also
  when two admins remove each other at once (the admin rows are locked, on PostgreSQL and
  SQLite, before they are counted); an admin whose own role went while their request was on
  its way appoints or removes no admin (Forbidden);
- bad input (an unknown role, a malformed e-mail, an e-mail with no account) is a 4xx with
  nothing written; so is appointing an account whose e-mail is not confirmed
  (UnconfirmedAccount, 409): anyone can sign up with an address before its owner does.

Merchant staff belong to the merchants domain (MerchantService.add_staff / remove_staff); the
People page calls it for them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.accounts.errors import AuthenticationRequired
from backend.accounts.models import Membership, User
from backend.accounts.roles import ADMIN, DATA, ROLES, STAFF, VERIFIER, require_town_role
from backend.accounts.services import normalise_email
from backend.core.db import get_db
from backend.core.errors import N_, Conflict, Forbidden, InvalidInput, NotFound
from backend.core.models import AuditLog
from backend.core.upsert import lock_row
from backend.regions.models import Town

GRANT = "town.role.grant"
REVOKE = "town.role.revoke"
# The roles the People page manages, in the order it shows them.
MANAGED_ROLES = (ADMIN, STAFF, VERIFIER, DATA)
_KEY_MAX = 64


class LastAdmin(Conflict):
    code = "last_admin"


class NoSuchAccount(NotFound):
    code = "no_such_account"


class UnconfirmedAccount(Conflict):
    code = "unconfirmed_account"


@dataclass(frozen=True)
class Person:
    user_id: int
    email: str
    display_name: str
    role: str
    since: object  # datetime


@dataclass(frozen=True)
class Change:
    """What a grant or revoke did: `changed` is False for a repeat (nothing written)."""

    user_id: int
    email: str
    role: str
    changed: bool


class TownPeopleService:
    def __init__(self, session: Session) -> None:
        self.session = session

    # ------------------------------------------------------------------ reading

    def people(self, actor: User | None, town: Town) -> dict[str, list[Person]]:
        """Everyone holding a town role, per role (MANAGED_ROLES order). Town STAFF and admins."""
        require_town_role(actor, town.id, STAFF)
        out: dict[str, list[Person]] = {r: [] for r in MANAGED_ROLES}
        rows = self.session.execute(
            select(Membership, User)
            .join(User, User.id == Membership.user_id)
            .where(Membership.town_id == town.id)
            .order_by(Membership.id)
        ).all()
        for m, u in rows:
            out.setdefault(m.role, []).append(
                Person(u.id, u.email or "", u.display_name, m.role, m.created_at)
            )
        return out

    def is_admin(self, user: User | None, town: Town) -> bool:
        if user is None:
            return False
        return (
            self.session.scalar(
                select(Membership.id).where(
                    Membership.user_id == user.id,
                    Membership.town_id == town.id,
                    Membership.role == ADMIN,
                )
            )
            is not None
        )

    # ------------------------------------------------------------------ changes (ADMIN)

    def require_admin(self, actor: User | None, town: Town) -> User:
        """The actor, if they are the town's admin (STAFF is not enough here)."""
        return require_town_role(actor, town.id, ADMIN)

    def grant(
        self, actor: User | None, town: Town, email: object, role: object, key: object = None
    ) -> Change:
        """Give the account with `email` `role` in the town (see the module's promises)."""
        actor = self._authorised(actor, town)
        role_ = _role(role)
        key_ = _key(key)
        user = self._user(email)
        if key_ and (first := self._replayed(town, key_)) is not None:
            return first
        if self._membership(user, town, role_) is not None:
            return Change(user.id, user.email or "", role_, changed=False)
        _require_confirmed(user)
        if role_ == ADMIN:
            self._lock_admins(actor, town)
        self.session.add(Membership(user_id=user.id, town_id=town.id, role=role_))
        self._audit(actor, town, GRANT, user, role_, key_)
        try:
            self.session.commit()
        except IntegrityError:  # a concurrent twin appointed them first: its answer is ours
            self.session.rollback()
            if self._membership(user, town, role_) is None:
                raise
            return Change(user.id, user.email or "", role_, changed=False)
        return Change(user.id, user.email or "", role_, changed=True)

    def revoke(
        self, actor: User | None, town: Town, email: object, role: object, key: object = None
    ) -> Change:
        """Take `role` in the town from the account with `email`; the last admin stays."""
        actor = self._authorised(actor, town)
        role_ = _role(role)
        key_ = _key(key)
        user = self._user(email)
        if key_ and (first := self._replayed(town, key_)) is not None:
            return first
        if role_ == ADMIN:
            admins = self._lock_admins(actor, town)
            if user.id in admins and len(admins) <= 1:
                self.session.rollback()
                raise LastAdmin(N_("A town needs at least one admin: appoint another admin first."))
        gone = self.session.execute(
            delete(Membership).where(
                Membership.user_id == user.id,
                Membership.town_id == town.id,
                Membership.role == role_,
            )
        ).rowcount  # type: ignore[attr-defined]
        if not gone:  # nobody held it (or a concurrent twin removed it): nothing to record
            self.session.rollback()
            return Change(user.id, user.email or "", role_, changed=False)
        self._audit(actor, town, REVOKE, user, role_, key_)
        self.session.commit()
        return Change(user.id, user.email or "", role_, changed=True)

    def bootstrap_admin(self, town: Town, email: object, by: str = "cli") -> Change:
        """Make the account with `email` an admin of the town without an acting admin: the
        operator's command (`flask towns grant-admin`) for a town's first admin. Audited with
        actor "system:<by>"."""
        user = self._user(email)
        if self._membership(user, town, ADMIN) is not None:
            return Change(user.id, user.email or "", ADMIN, changed=False)
        _require_confirmed(user)
        self.session.add(Membership(user_id=user.id, town_id=town.id, role=ADMIN))
        self.session.add(
            AuditLog(
                actor=f"system:{by}",
                action=GRANT,
                subject_type="user",
                subject_id=str(user.id),
                reason="town admin appointed by the operator",
                details={"role": ADMIN, "town_id": town.id, "town": town.slug},
                town_id=town.id,
            )
        )
        try:
            self.session.commit()
        except IntegrityError:
            self.session.rollback()
            if self._membership(user, town, ADMIN) is None:
                raise
            return Change(user.id, user.email or "", ADMIN, changed=False)
        return Change(user.id, user.email or "", ADMIN, changed=True)

    # ------------------------------------------------------------------ helpers

    def _authorised(self, actor: User | None, town: Town) -> User:
        if actor is None:
            raise AuthenticationRequired(N_("Please sign in."))
        return self.require_admin(actor, town)

    def _lock_admins(self, actor: User, town: Town) -> list[int]:
        """The ids of the town's admins, their rows locked until the transaction ends (a row
        lock on PostgreSQL, the database's write lock on SQLite, where FOR UPDATE does nothing):
        two admins removing each other at once cannot both see "another admin is left". The
        actor must still be one of them (an admin removed while their request was on its way
        changes nothing: Forbidden)."""
        is_admin = (Membership.town_id == town.id, Membership.role == ADMIN)
        lock_row(self.session, Membership.role, *is_admin)
        admins = list(self.session.scalars(select(Membership.user_id).where(*is_admin)))
        if actor.id not in admins:
            self.session.rollback()
            raise Forbidden(N_("You do not have permission to do this for this town."))
        return admins

    def _user(self, email: object) -> User:
        address = normalise_email(email)
        user = self.session.scalar(select(User).where(User.email == address))
        if user is None:
            raise NoSuchAccount(
                N_(
                    "There is no account with this email address. Ask them to sign up first,"
                    " then appoint them again."
                ),
                field="email",
            )
        return user

    def _membership(self, user: User, town: Town, role: str) -> Membership | None:
        return self.session.scalar(
            select(Membership).where(
                Membership.user_id == user.id,
                Membership.town_id == town.id,
                Membership.role == role,
            )
        )

    def _replayed(self, town: Town, key: str) -> Change | None:
        """The first answer to a request key already used in this town, if any."""
        row = self.session.scalar(
            select(AuditLog)
            .where(
                AuditLog.town_id == town.id,
                AuditLog.action.in_((GRANT, REVOKE)),
                AuditLog.details["key"].as_string() == key,
            )
            .order_by(AuditLog.id)
            .limit(1)
        )
        if row is None:
            return None
        user = self.session.get(User, int(row.subject_id))
        email = (user.email or "") if user is not None else ""
        return Change(int(row.subject_id), email, str(row.details.get("role", "")), False)

    def _audit(self, actor: User, town: Town, action: str, user: User, role: str, key: str) -> None:
        self.session.add(
            AuditLog(
                actor=f"user:{actor.id}",
                action=action,
                subject_type="user",
                subject_id=str(user.id),
                reason="town role appointed by the admin"
                if action == GRANT
                else "town role removed by the admin",
                details={
                    "role": role,
                    "town_id": town.id,
                    "town": town.slug,
                    "email": user.email,
                    "key": key,
                },
                town_id=town.id,
            )
        )

    def admin_count(self, town: Town) -> int:
        return int(
            self.session.scalar(
                select(func.count())
                .select_from(Membership)
                .where(Membership.town_id == town.id, Membership.role == ADMIN)
            )
            or 0
        )


def _require_confirmed(user: User) -> None:
    """A role goes to the owner of the mailbox: anyone could have signed up with the address
    before its owner did, and an address nobody confirmed proves nothing."""
    if user.email_verified_at is None:
        raise UnconfirmedAccount(
            N_(
                "The account with this email address has not confirmed it yet. Ask them to"
                " follow the link in the confirmation mail (or reset their password), then"
                " appoint them again."
            ),
            field="email",
        )


def _role(value: object) -> str:
    if not isinstance(value, str) or value not in ROLES:
        raise InvalidInput(N_("Choose one of the roles offered."), field="role")
    return value


def _key(value: object) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) > _KEY_MAX or not value.isprintable():
        raise InvalidInput(N_("The request key is not valid; reload the page."), field="key")
    return value


def town_people_service() -> TownPeopleService:
    """A TownPeopleService for the current app and request."""
    return TownPeopleService(get_db().session())
