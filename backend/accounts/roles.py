"""Who may do what in a town: municipal staff, venue verifiers, and the platform admin.

Roles are checked in services (not only in pages): `require_town_role` raises Forbidden.
Merchant staff belong to a merchant, which the merchants domain records itself.
"""

from __future__ import annotations

from flask import g, session
from sqlalchemy import select

from backend.accounts.errors import AuthenticationRequired
from backend.accounts.models import Membership, User
from backend.core.db import get_db
from backend.core.errors import N_, Forbidden

STAFF = "staff"  # municipal staff: programmes, merchants, collections, proposals, settlement
VERIFIER = "verifier"  # venue staff: ticket check-in
ROLES = (STAFF, VERIFIER)
SESSION_USER_ID = "user_id"  # the session key the accounts API and the pages share


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


def has_town_role(user: User | None, town_id: int, *roles: str) -> bool:
    if user is None:
        return False
    found = get_db().session.scalar(
        select(Membership.id).where(
            Membership.user_id == user.id,
            Membership.town_id == town_id,
            Membership.role.in_(roles or ROLES),
        )
    )
    return found is not None


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
