"""Who may do what in a town: its admin, municipal staff, venue verifiers and data staff.

Roles are checked in services (not only in pages): `require_town_role` raises Forbidden.
Merchant staff belong to a merchant, which the merchants domain records itself.

The town's ADMIN appoints and removes the others (backend/accounts/town_people.py) and can do
everything STAFF can: a check that accepts STAFF accepts ADMIN too (`IMPLIED_BY`, applied in
`has_town_role`, the one place every check goes through). No role implies DATA: only data staff
export personal or anonymised data, and an admin who needs to must appoint themselves (audited).
"""

from __future__ import annotations

from flask import g, session
from sqlalchemy import select

from backend.accounts.errors import AuthenticationRequired
from backend.accounts.models import Membership, User
from backend.core.db import get_db
from backend.core.errors import N_, Forbidden

ADMIN = "admin"  # the town's admin: appoints and removes the others; also does what STAFF do
STAFF = "staff"  # municipal staff: programmes, merchants, collections, proposals, settlement
VERIFIER = "verifier"  # venue staff: ticket check-in
DATA = "data"  # data staff: the only people who may export personal or anonymised data
ROLES = (ADMIN, STAFF, VERIFIER, DATA)
# A check for the key role also passes for the roles listed (an admin can do what staff do).
IMPLIED_BY: dict[str, tuple[str, ...]] = {STAFF: (ADMIN,)}
SESSION_USER_ID = "user_id"  # the session key the accounts API and the pages share


def current_user_id() -> int | None:
    """The signed-in user's id, without loading the user: the session was checked against the
    user's epoch before the request (sessions.drop_if_revoked). For keys (the page cache's)."""
    user_id = session.get(SESSION_USER_ID)
    return user_id if isinstance(user_id, int) else None


def current_user() -> User | None:
    """The signed-in user of this request, or None (cached on `g`)."""
    if "furusato_user" not in g:
        user_id = session.get(SESSION_USER_ID)
        g.furusato_user = get_db().session.get(User, user_id) if user_id is not None else None
    return g.furusato_user  # type: ignore[no-any-return]


def require_user() -> User:
    """The signed-in user; raises AuthenticationRequired (401) when nobody is signed in."""
    user = current_user()
    if user is None:
        raise AuthenticationRequired(N_("Please sign in."))
    return user


def accepted_roles(*roles: str) -> tuple[str, ...]:
    """`roles` with the roles that imply them (STAFF -> STAFF, ADMIN); every role when none."""
    wanted = roles or ROLES
    out = list(wanted)
    for role in wanted:
        out += [r for r in IMPLIED_BY.get(role, ()) if r not in out]
    return tuple(out)


def has_town_role(user: User | None, town_id: int, *roles: str) -> bool:
    """Whether `user` holds one of `roles` in the town (or a role that implies one, see
    IMPLIED_BY); any role when none is named."""
    if user is None:
        return False
    found = get_db().session.scalar(
        select(Membership.id)
        .where(
            Membership.user_id == user.id,
            Membership.town_id == town_id,
            Membership.role.in_(accepted_roles(*roles)),
        )
        .limit(1)
    )
    return found is not None


def roles_held(user: User | None, town_id: int) -> list[str]:
    """The roles `user` was given in the town (as stored, without implied ones), in ROLES order."""
    if user is None:
        return []
    held = set(
        get_db().session.scalars(
            select(Membership.role).where(
                Membership.user_id == user.id, Membership.town_id == town_id
            )
        )
    )
    return [r for r in ROLES if r in held]


def require_town_role(user: User | None, town_id: int, *roles: str) -> User:
    """Raise AuthenticationRequired (401) or Forbidden (403) unless `user` holds one of `roles`
    in the town; return the user."""
    if user is None:
        raise AuthenticationRequired(N_("Please sign in."))
    if not has_town_role(user, town_id, *roles):
        raise Forbidden(N_("You do not have permission to do this for this town."))
    return user


def grant_town_role(user: User, town_id: int, role: str) -> Membership:
    """Give `user` a role in a town (idempotent); the caller commits."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    s = get_db().session
    existing = s.scalar(
        select(Membership).where(
            Membership.user_id == user.id, Membership.town_id == town_id, Membership.role == role
        )
    )
    if existing is not None:
        return existing
    m = Membership(user_id=user.id, town_id=town_id, role=role)
    s.add(m)
    return m
