"""Sessions that can be revoked, although Flask keeps them in a signed cookie.

A cookie carries the user id and the user's ``auth_epoch`` at sign-in. Logout and a password
change bump the epoch in the database with one UPDATE, so every cookie made before, wherever it
was saved, stops signing anyone in at its next request. Logout therefore signs the user out on
every device: a cookie session has no server-side id to revoke one by one
(docs/adr/0011-abuse-limits-and-mail.md).
"""

from __future__ import annotations

from flask import g, session
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.accounts.models import User
from backend.core.page_cache import generation_column, remember_generation

USER_ID = "user_id"  # the same key as backend.accounts.roles.SESSION_USER_ID
EPOCH = "auth_epoch"
SIWE_NONCE = "siwe_nonce"  # the Sign-In with Ethereum nonce issued to this session


def log_in(user: User) -> None:
    """A fresh session for `user`: nothing from before (CSRF token, SIWE nonce) survives."""
    session.clear()
    session[USER_ID] = user.id
    session[EPOCH] = user.auth_epoch
    g.pop("furusato_user", None)  # current_user() of this request is the new one


def revoke_all(db: Session, user_id: int) -> int:
    """Bump the user's epoch (commits): every session made before is signed out. Returns the
    new epoch."""
    db.execute(update(User).where(User.id == user_id).values(auth_epoch=User.auth_epoch + 1))
    db.commit()
    return int(db.scalar(select(User.auth_epoch).where(User.id == user_id)) or 0)


def log_out(db: Session) -> None:
    """Revoke every session of the signed-in user, then clear this one."""
    user_id = session.get(USER_ID)
    if isinstance(user_id, int):
        revoke_all(db, user_id)
    session.clear()
    g.pop("furusato_user", None)


def keep_current_after_revoking(db: Session, user: User) -> None:
    """After a password change: other sessions are revoked, this one continues."""
    epoch = revoke_all(db, user.id)
    session[EPOCH] = epoch


def drop_if_revoked(db: Session) -> None:
    """Run before every request: a session whose epoch is not the user's is cleared. The
    session's user id is then the signed-in user's (roles.current_user_id)."""
    user_id = session.get(USER_ID)
    if user_id is None:
        return
    current = None
    if isinstance(user_id, int):
        # The page cache's data generation comes with it: one round trip, not two.
        row = db.execute(
            select(User.auth_epoch, generation_column()).where(User.id == user_id)
        ).first()
        if row is not None:
            current = row[0]
            remember_generation(row[1])
    if current is None or session.get(EPOCH) != current:
        session.clear()
