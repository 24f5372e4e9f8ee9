"""Notifications: recording facts for people (in the indexer's transaction) and what a person
does with theirs (read them, switch kinds off).

- `notify(session, kind=..., key=..., user_ids=..., params=...)`: in the caller's transaction,
  one row per person and key (a repeat is a no-op: INSERT ... ON CONFLICT DO NOTHING), with the
  person's switches of that kind applied, and its mail pending when mail is on and the person
  has a verified address (ADR 0011: mail goes to proved mailboxes only). The mail worker is
  kicked after the commit (never inside the transaction); beat finds what a lost kick missed.
- `withdraw(session, key=...)`: a reorg took the fact off the chain; the rows are hidden and a
  mail not sent yet is not sent. `notify` with the same key shows them again (one row still).
- `NotificationService`: a person's list, the header's count, marking read, the switches, and
  the mailed link that switches one kind's mail off.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flask import current_app, has_app_context
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import case, event, func, select, tuple_, update
from sqlalchemy.orm import Session

from backend.accounts.models import User
from backend.core.db import get_db, utcnow
from backend.core.errors import N_, InvalidInput
from backend.core.numbers import db_id_or_none
from backend.core.upsert import insert_for
from backend.notifications.errors import InvalidOffLink, NotificationNotFound, UnknownSwitch
from backend.notifications.models import (
    CHANNELS,
    EMAIL,
    IN_APP,
    KINDS,
    MAX_KEY,
    NO_ADDRESS,
    OFF,
    PENDING,
    STALE,
    WITHDRAWN,
    Notification,
    NotificationPreference,
)

log = logging.getLogger(__name__)

SEND_TASK = "notifications.send_mails"
# A fact indexed this long after it happened (a backfill, a long outage) is listed, not mailed.
STALE_AFTER = dt.timedelta(days=3)
PAGE = 50
BADGE_CAP = 99  # the header shows "99+" above this: the count stops there
_CHUNK = 500
_OFF_SALT = "notifications-off"


# --------------------------------------------------------------------------- recording facts


def switched_off(session: Session, user_ids: Sequence[int], kind: str) -> set[tuple[int, str]]:
    """(user id, channel) of each switch of `kind` that these people turned off."""
    rows = session.execute(
        select(NotificationPreference.user_id, NotificationPreference.channel).where(
            NotificationPreference.user_id.in_(list(user_ids)),
            NotificationPreference.kind == kind,
            NotificationPreference.enabled.is_(False),
        )
    )
    return {(int(u), str(c)) for u, c in rows}


def _verified(session: Session, user_ids: Sequence[int]) -> set[int]:
    return set(
        session.scalars(
            select(User.id).where(
                User.id.in_(list(user_ids)),
                User.email.is_not(None),
                User.email_verified_at.is_not(None),
            )
        )
    )


def notify(
    session: Session,
    *,
    kind: str,
    key: str,
    user_ids: Iterable[int],
    params: Mapping[str, Any],
    per_user: Mapping[int, Mapping[str, Any]] | None = None,
    happened_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Record the fact `key` of `kind` for each of `user_ids`, in the caller's transaction;
    return how many rows are new (0 when every one of them was recorded before). A row that a
    reorg withdrew is shown again, and its mail is due again if it had not gone. `per_user`
    adds to `params` what differs from one person to the next (their amount of a batch).
    A few statements per 500 people, whatever their number."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    if not key or len(key) > MAX_KEY:
        raise ValueError(f"a notification key must be 1 to {MAX_KEY} characters")
    ids = sorted(set(user_ids))
    now = now or utcnow()
    stale = happened_at is not None and happened_at < now - STALE_AFTER
    added = 0
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i : i + _CHUNK]
        off = switched_off(session, chunk, kind)
        verified = _verified(session, chunk)
        rows = []
        for uid in chunk:
            if (uid, EMAIL) in off:
                state = OFF
            elif uid not in verified:
                state = NO_ADDRESS
            else:
                state = STALE if stale else PENDING
            rows.append(
                {
                    "user_id": uid,
                    "kind": kind,
                    "key": key,
                    "params": {**params, **(per_user or {}).get(uid, {})},
                    "in_app": (uid, IN_APP) not in off,
                    "created_at": now,
                    "email_state": state,
                    "email_attempts": 0,
                    "email_next_at": now if state == PENDING else None,
                    "email_error": "",
                }
            )
        new = set(
            session.execute(
                insert_for(session, Notification)
                .values(rows)
                .on_conflict_do_nothing(index_elements=["key", "user_id"])
                .returning(Notification.user_id)
            ).scalars()
        )
        added += len(new)
        mail_now = any(r["email_state"] == PENDING and r["user_id"] in new for r in rows)
        again = [uid for uid in chunk if uid not in new]
        if again and restore(session, key=key, user_ids=again, now=now):
            mail_now = True
        if mail_now:
            kick_after_commit(session)
    return added


def restore(
    session: Session,
    *,
    key: str,
    user_ids: Iterable[int] | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Show the withdrawn rows of `key` (of `user_ids`, or all) again: the event came back on
    the new branch. A mail withdrawn before it went is due again (the worker kicked after the
    commit); one sent is not sent again. Returns the rows shown again."""
    now = now or utcnow()
    q = update(Notification).where(Notification.key == key, Notification.withdrawn_at.is_not(None))
    if user_ids is not None:
        q = q.where(Notification.user_id.in_(sorted(set(user_ids))))
    done = session.execute(
        q.values(
            withdrawn_at=None,
            email_state=case(
                (Notification.email_state == WITHDRAWN, PENDING),
                else_=Notification.email_state,
            ),
            email_next_at=case(
                (Notification.email_state == WITHDRAWN, now),
                else_=Notification.email_next_at,
            ),
        ).execution_options(synchronize_session=False)
    )
    count = int(done.rowcount)  # type: ignore[attr-defined]
    if count:
        kick_after_commit(session)
    return count


def withdraw(
    session: Session,
    *,
    key: str,
    user_ids: Iterable[int] | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Hide the fact `key` (of `user_ids`, or of everyone it was recorded for): a reorg took it
    off the chain. A mail still pending is not sent; one sent stays sent. Returns rows hidden."""
    q = update(Notification).where(Notification.key == key, Notification.withdrawn_at.is_(None))
    if user_ids is not None:
        q = q.where(Notification.user_id.in_(sorted(set(user_ids))))
    done = session.execute(
        q.values(
            withdrawn_at=now or utcnow(),
            email_state=case(
                (Notification.email_state == PENDING, WITHDRAWN),
                else_=Notification.email_state,
            ),
        ).execution_options(synchronize_session=False)
    )
    return int(done.rowcount)  # type: ignore[attr-defined]


def kick_after_commit(session: Session) -> None:
    """Send the mail task once the transaction commits (never on a rollback)."""
    if session.info.get("notifications_hooked"):
        session.info["notifications_kick"] = True
        return
    celery = current_app.extensions.get("celery") if has_app_context() else None
    if celery is None:
        return
    session.info["notifications_hooked"] = True
    session.info["notifications_kick"] = True

    def _after_commit(sess: Session) -> None:
        if sess.info.pop("notifications_kick", False):
            try:
                celery.send_task(SEND_TASK)
            except Exception:  # the beat task sends what a lost kick missed
                log.exception("could not send %s", SEND_TASK)

    def _after_rollback(sess: Session, _trans: Any) -> None:
        sess.info.pop("notifications_kick", None)

    event.listen(session, "after_commit", _after_commit)
    event.listen(session, "after_soft_rollback", _after_rollback)


# --------------------------------------------------------------------------- a person's side


@dataclass(frozen=True)
class Inbox:
    items: list[Notification]
    older: int | None  # the `before` of the next page; None when this is the last


def _switch_name(kind: str, channel: str) -> str:
    return f"{kind}.{channel}"


SWITCHES = tuple(_switch_name(k, c) for k in KINDS for c in CHANNELS)


class NotificationService:
    """A person's notifications and switches. Raises NotificationNotFound (another person's id
    too), UnknownSwitch and InvalidOffLink; nothing changes when it raises."""

    def __init__(
        self, session: Session, *, secret_key: str, now: Callable[[], dt.datetime] = utcnow
    ) -> None:
        self.session = session
        self._signer = URLSafeSerializer(secret_key, salt=_OFF_SALT)
        self._now = now

    def _listed(self, user: User) -> Any:
        return (
            Notification.user_id == user.id,
            Notification.in_app.is_(True),
            Notification.withdrawn_at.is_(None),
        )

    def inbox(self, user: User, before: object = None, limit: int = PAGE) -> Inbox:
        """The person's notifications, newest first; `before` (an id) pages back."""
        q = select(Notification).where(*self._listed(user))
        if before not in (None, ""):
            start = db_id_or_none(before)
            if start is None:
                raise InvalidInput(N_("This page does not exist."), field="before")
            q = q.where(Notification.id < start)
        rows = list(self.session.scalars(q.order_by(Notification.id.desc()).limit(limit + 1)))
        more = len(rows) > limit
        rows = rows[:limit]
        return Inbox(rows, rows[-1].id if more and rows else None)

    def unread_count(self, user: User) -> int:
        """Unread notifications of the person, counted up to BADGE_CAP + 1 (one indexed read)."""
        sub = (
            select(Notification.id)
            .where(*self._listed(user), Notification.read_at.is_(None))
            .limit(BADGE_CAP + 1)
            .subquery()
        )
        return int(self.session.scalar(select(func.count()).select_from(sub)) or 0)

    def mark_read(self, user: User, notification_id: object) -> None:
        """Mark one of the person's notifications read (commits); again is a no-op."""
        nid = db_id_or_none(notification_id)
        n = self.session.get(Notification, nid) if nid else None
        if n is None or n.user_id != user.id or not n.in_app or n.withdrawn_at is not None:
            raise NotificationNotFound(N_("There is no such notification."))
        self.session.execute(
            update(Notification)
            .where(Notification.id == n.id, Notification.read_at.is_(None))
            .values(read_at=self._now())
        )
        self.session.commit()

    def mark_all_read(self, user: User) -> int:
        done = self.session.execute(
            update(Notification)
            .where(Notification.user_id == user.id, Notification.read_at.is_(None))
            .values(read_at=self._now())
        )
        self.session.commit()
        return int(done.rowcount)  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ switches

    def switches(self, user: User) -> dict[tuple[str, str], bool]:
        """Every (kind, channel) switch of the person: True (on) unless they turned it off."""
        out = {(k, c): True for k in KINDS for c in CHANNELS}
        for p in self.session.scalars(
            select(NotificationPreference).where(NotificationPreference.user_id == user.id)
        ):
            out[(p.kind, p.channel)] = p.enabled
        return out

    def set_switches(self, user: User, form: Mapping[str, object]) -> None:
        """Save the settings form (commits): a switch named "<kind>.<channel>" present with "on"
        is on, every switch absent is off. A name that is no switch, or another value, raises
        UnknownSwitch and changes nothing."""
        wanted: dict[tuple[str, str], bool] = {(k, c): False for k in KINDS for c in CHANNELS}
        for name, value in form.items():
            if name == "csrf_token":
                continue
            if name not in SWITCHES or value != "on":
                raise UnknownSwitch(N_("There is no such notification setting."), field=name)
            kind, channel = name.split(".")
            wanted[(kind, channel)] = True
        self._save(user.id, wanted)
        self.session.commit()

    def change_switches(self, user: User, changes: object) -> None:
        """Turn the named switches on (true) or off (false) and keep the others (commits): the
        JSON API's settings. `changes` maps "<kind>.<channel>" to a boolean; a name that is no
        switch, or a value that is not a boolean, raises UnknownSwitch and changes nothing."""
        if not isinstance(changes, Mapping) or not changes:
            raise UnknownSwitch(
                N_("Send the settings to change, each as true (on) or false (off)."),
                field="switches",
            )
        wanted: dict[tuple[str, str], bool] = {}
        for name, value in changes.items():
            if name not in SWITCHES:
                raise UnknownSwitch(N_("There is no such notification setting."), field=name)
            if not isinstance(value, bool):
                raise UnknownSwitch(
                    N_("Send the settings to change, each as true (on) or false (off)."),
                    field=name,
                )
            kind, channel = name.split(".")
            wanted[(kind, channel)] = value
        self._save(user.id, wanted)  # only the named ones; the others keep their state
        self.session.commit()

    def _save(self, user_id: int, wanted: Mapping[tuple[str, str], bool]) -> None:
        """Write the switches in `wanted`, leaving the others as they are: one turned off gets its
        row (created or updated), one turned on updates its row if it has one (no row means on).
        With ON CONFLICT, so that two saves at once (two tabs, a double tap, ten API calls) do
        not fail on the UNIQUE row: an IntegrityError, a 500, before (tests/notifications/
        test_api.py)."""
        now = self._now()
        off = [{"kind": k, "channel": c} for (k, c), on in wanted.items() if not on]
        on = [(k, c) for (k, c), enabled in wanted.items() if enabled]
        if off:
            stmt = insert_for(self.session, NotificationPreference).values(
                [{**o, "user_id": user_id, "enabled": False, "updated_at": now} for o in off]
            )
            self.session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["user_id", "kind", "channel"],
                    set_={"enabled": False, "updated_at": now},
                    where=NotificationPreference.enabled.is_(True),
                )
            )
        if on:
            self.session.execute(
                update(NotificationPreference)
                .where(
                    NotificationPreference.user_id == user_id,
                    NotificationPreference.enabled.is_(False),
                    tuple_(NotificationPreference.kind, NotificationPreference.channel).in_(on),
                )
                .values(enabled=True, updated_at=now)
                .execution_options(synchronize_session=False)
            )

    # ------------------------------------------------------------------ the mailed link

    def off_token(self, user_id: int, kind: str) -> str:
        """The token of the mailed link that switches mail of `kind` off for this person."""
        return str(self._signer.dumps([user_id, kind]))

    def read_off_token(self, token: object) -> tuple[User, str]:
        """(person, kind) of a mailed link; InvalidOffLink when it is not one this server made."""
        try:
            user_id, kind = self._signer.loads(token if isinstance(token, str) else "")
        except (BadSignature, TypeError, ValueError):
            raise InvalidOffLink(N_("This link is invalid or has expired.")) from None
        user = self.session.get(User, user_id) if isinstance(user_id, int) else None
        if user is None or kind not in KINDS:
            raise InvalidOffLink(N_("This link is invalid or has expired."))
        return user, kind

    def switch_mail_off(self, token: object) -> str:
        """Turn off the mail of the link's kind for its person (commits); returns the kind."""
        user, kind = self.read_off_token(token)
        self._save(user.id, {(kind, EMAIL): False})
        self.session.commit()
        return kind


def notification_service() -> NotificationService:
    """A NotificationService for the current app and request."""
    return NotificationService(get_db().session(), secret_key=current_app.config["SECRET_KEY"])
