"""The worker's side of notification mail: claim a due mail, send it, record what happened.

Never inside the indexer's transaction: `notify` only marks a row's mail pending; the task
`notifications.send_mails` (kicked after that commit, and by beat) sends it. One mail at a time,
in short transactions (claim; read and write the text; the SMTP exchange with no transaction
open; finish), through backend/core/mail.py, the path ADR 0011's mail takes (its SMTP settings,
its 10 s timeout, the file fallback of the embedded run).

- Claim: one UPDATE of the first due row (pending, or sending whose lease ran out: a worker
  died) to sending, counting the attempt, which is the claim's token: a finish changes the row
  only while its attempt count is still the claim's.
- Before sending, the person's state is read again: the fact withdrawn by a reorg (withdrawn),
  the kind's mail switched off since (off), no verified address any more (no_address). ADR 0011
  mails proved mailboxes only.
- The person's limit: at most NOTIFICATION_MAILS_PER_HOUR mails in any hour. More wait (pending,
  due when the oldest of that hour is an hour old); nothing is dropped.
- A refused or unreachable SMTP server: pending again after 1, 5, 25, 125 minutes; failed after
  the fifth attempt. Any other error while writing or sending the mail (a bug, a name a header
  refuses) counts as an attempt the same way, and a mail claimed more than MAX_ATTEMPTS times
  (every worker died before it finished) fails: none stays "sending", claimed again after
  every lease for ever.
- The subject is one line: a name in it (a town's) with a line break in it would otherwise
  make the mail unbuildable (and, with a laxer library, inject a header).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask_babel import force_locale, gettext
from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from backend.accounts.models import User
from backend.config import Settings
from backend.core import mail
from backend.notifications.models import (
    EMAIL,
    FAILED,
    NO_ADDRESS,
    OFF,
    OPEN,
    PENDING,
    SENDING,
    SENT,
    WITHDRAWN,
    Notification,
)
from backend.notifications.services import NotificationService, switched_off
from backend.notifications.texts import KIND_LABELS, describe

log = logging.getLogger(__name__)

LEASE = dt.timedelta(minutes=2)  # well above the SMTP timeout (10 s)
MAX_ATTEMPTS = 5
WINDOW = dt.timedelta(hours=1)
OFF_PATH = "/notifications/off"
LIST_PATH = "/me/notifications"


def backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(minutes=5 ** max(0, attempts - 1))


@dataclass(frozen=True)
class Claim:
    id: int
    attempts: int


def _due(now: dt.datetime) -> Any:
    n = Notification
    return and_(n.email_state.in_(OPEN), n.email_next_at <= now)


def claim_next(session: Session, now: dt.datetime) -> Claim | None:
    """Claim the first due mail until `now + LEASE` and commit; None when none is due."""
    n = Notification
    first = (
        select(n.id)
        .where(_due(now))
        .order_by(n.email_next_at, n.id)
        .limit(1)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite renders no FOR UPDATE
        .scalar_subquery()
    )
    row = session.execute(
        update(n)
        .where(n.id == first, _due(now))
        .values(email_state=SENDING, email_next_at=now + LEASE, email_attempts=n.email_attempts + 1)
        .returning(n.id, n.email_attempts)
        .execution_options(synchronize_session=False)
    ).first()
    session.commit()
    return None if row is None else Claim(int(row[0]), int(row[1]))


def _finish(session: Session, claim: Claim, **values: Any) -> bool:
    """Record the claim's outcome while it is still ours (commits)."""
    n = Notification
    done = session.execute(
        update(n)
        .where(n.id == claim.id, n.email_state == SENDING, n.email_attempts == claim.attempts)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(done.rowcount)  # type: ignore[attr-defined]


def _hour_full(session: Session, user_id: int, now: dt.datetime, cap: int) -> dt.datetime | None:
    """When the person may get the next mail, if their last hour already has `cap` of them."""
    n = Notification
    since = now - WINDOW
    sent, oldest = session.execute(
        select(func.count(), func.min(n.email_sent_at)).where(
            n.user_id == user_id, n.email_state == SENT, n.email_sent_at > since
        )
    ).one()
    if int(sent) < cap or oldest is None:
        return None
    return oldest + WINDOW  # type: ignore[no-any-return]


def compose(
    settings: Settings, n: Notification, user: User, off_token: str
) -> tuple[str, str, dict[str, str]]:
    """(subject, body, headers) of a notification's mail, in the person's language."""
    base = settings.public_url.rstrip("/")
    off = f"{base}{OFF_PATH}/{off_token}"
    locale = user.locale if user.locale in ("ja", "en") else "ja"
    with force_locale(locale):
        text = describe(n.kind, n.params, locale)
        name = user.display_name
        greeting = gettext("Hello %(name)s,", name=name) if name else gettext("Hello,")
        open_it, every = gettext("Open it:"), gettext("All your notifications:")
        body = "\n\n".join(
            [
                greeting,
                text.body,
                f"{open_it}\n{base}{text.link}",
                f"{every}\n{base}{LIST_PATH}",
                gettext(
                    "You get this mail because “%(kind)s” is on in your notification settings. "
                    "To stop these mails, open this link:",
                    kind=gettext(KIND_LABELS[n.kind]),
                )
                + f"\n{off}",
                "-- furusato\n",
            ]
        )
        subject = " ".join(str(text.title).split())  # CR, LF, U+2028...: one line
    return subject, body, {"List-Unsubscribe": f"<{off}>"}


def deliver(
    session: Session,
    settings: Settings,
    claim: Claim,
    now: dt.datetime,
    *,
    send: Callable[..., object] = mail.send,
) -> str:
    """Send the claimed mail once (or decide it must not go); the row's new state, or "lost"
    when another worker took it meanwhile. Never raises for the SMTP server's faults."""
    n = session.get(Notification, claim.id)
    user = None if n is None else session.get(User, n.user_id)
    if n is None or user is None:
        session.commit()
        return "lost"
    if claim.attempts > MAX_ATTEMPTS:  # each earlier claim's worker died before finishing
        _finish(session, claim, email_state=FAILED, email_next_at=None, email_error="given up")
        log.error("notification %s: no attempt finished in %s", claim.id, claim.attempts - 1)
        return FAILED
    if n.withdrawn_at is not None:
        return _outcome(session, claim, WITHDRAWN)
    if (user.id, EMAIL) in switched_off(session, [user.id], n.kind):
        return _outcome(session, claim, OFF)
    if user.email is None or user.email_verified_at is None:
        return _outcome(session, claim, NO_ADDRESS)
    later = _hour_full(session, user.id, now, settings.notification_mails_per_hour)
    if later is not None:  # not an attempt: the count goes back
        _finish(
            session,
            claim,
            email_state=PENDING,
            email_next_at=later,
            email_attempts=claim.attempts - 1,
        )
        return "postponed"
    try:
        signer = NotificationService(session, secret_key=settings.secret_key)
        subject, body, headers = compose(settings, n, user, signer.off_token(user.id, n.kind))
        to = user.email
        session.commit()  # no transaction open while the SMTP server answers
        send(settings, to, subject, body, headers=headers)
    except Exception as exc:  # the SMTP server's MailError, or anything else: an attempt
        error = str(exc) if isinstance(exc, mail.MailError) else f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, mail.MailError):
            log.exception("notification %s: the mail could not be written or sent", claim.id)
            session.rollback()
        if claim.attempts >= MAX_ATTEMPTS:
            _finish(session, claim, email_state=FAILED, email_next_at=None, email_error=error[:200])
            log.error("notification %s: mail failed after %s attempts", claim.id, claim.attempts)
            return FAILED
        _finish(
            session,
            claim,
            email_state=PENDING,
            email_next_at=now + backoff(claim.attempts),
            email_error=error[:200],
        )
        return PENDING
    return (
        SENT
        if _finish(
            session, claim, email_state=SENT, email_sent_at=now, email_next_at=None, email_error=""
        )
        else "lost"
    )


def _outcome(session: Session, claim: Claim, state: str) -> str:
    _finish(session, claim, email_state=state, email_next_at=None)
    return state
