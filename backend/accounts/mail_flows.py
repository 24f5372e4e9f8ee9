"""What an account does by mail: verify its address, reset its password, change its address.

Each flow mails a single-use link (an :class:`AccountToken`, stored hashed, expiring). A link is
consumed by one conditional UPDATE, so two clicks, or two requests racing, use it once. Welcome
points wait for a verified address: an address costs a real mailbox, and sign-ups are
rate-limited too (backend/core/limits.py), so accounts cannot be farmed for points.

Mails go out in the user's language (ja/en); the text lives in the accounts_mail domain.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from flask_babel import force_locale, gettext
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.accounts.errors import EmailTaken
from backend.accounts.models import (
    CHANGE_EMAIL,
    RESET_PASSWORD,
    VERIFY_EMAIL,
    AccountToken,
    User,
)
from backend.accounts.services import (
    check_password,
    normalise_email,
    password_hash,
    pause_wallet_sign_in,
    require_password,
)
from backend.config import Settings
from backend.core import mail
from backend.core.db import utcnow
from backend.core.errors import N_, InvalidInput

log = logging.getLogger(__name__)

TTL = {
    VERIFY_EMAIL: dt.timedelta(days=2),
    RESET_PASSWORD: dt.timedelta(hours=1),
    CHANGE_EMAIL: dt.timedelta(days=1),
}
PATHS = {
    VERIFY_EMAIL: "/verify-email",
    RESET_PASSWORD: "/reset-password",
    CHANGE_EMAIL: "/confirm-email",
}


class InvalidLink(InvalidInput):
    code = "invalid_link"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Verified:
    user: User
    town_slug: str | None  # the town whose welcome points this verification unlocks


class AccountMail:
    """Mail flows over one DB session; `send` is backend.core.mail.send by default."""

    def __init__(
        self,
        session: Session,
        settings: Settings,
        *,
        send: Callable[..., object] = mail.send,
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.session = session
        self.settings = settings
        self._send = send
        self._now = now

    # --- issuing and consuming links --------------------------------------------------------

    def _issue(self, user: User, purpose: str, email: str, town_slug: str | None = None) -> str:
        token = secrets.token_urlsafe(32)
        now = self._now()
        # Links that expired a week ago serve no one: purge them so the table stays small.
        self.session.execute(
            delete(AccountToken).where(AccountToken.expires_at < now - dt.timedelta(days=7))
        )
        # A new link replaces the older unused ones of the same purpose.
        self.session.execute(
            update(AccountToken)
            .where(
                AccountToken.user_id == user.id,
                AccountToken.purpose == purpose,
                AccountToken.used_at.is_(None),
            )
            .values(used_at=now)
        )
        self.session.add(
            AccountToken(
                user_id=user.id,
                purpose=purpose,
                token_hash=_hash(token),
                email=email,
                town_slug=town_slug,
                created_at=now,
                expires_at=now + TTL[purpose],
            )
        )
        self.session.commit()
        return token

    def _consume(self, token: object, purpose: str) -> AccountToken:
        """Mark the link used (one UPDATE: only one request can) and return it; InvalidLink if
        it is unknown, used or expired. Not committed: the caller commits with its change."""
        if not isinstance(token, str) or not 20 <= len(token) <= 100:
            raise InvalidLink(N_("This link is invalid or has expired."))
        now = self._now()
        h = _hash(token)
        done = self.session.execute(
            update(AccountToken)
            .where(
                AccountToken.token_hash == h,
                AccountToken.purpose == purpose,
                AccountToken.used_at.is_(None),
                AccountToken.expires_at > now,
            )
            .values(used_at=now)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            self.session.rollback()
            raise InvalidLink(N_("This link is invalid or has expired."))
        row = self.session.scalar(select(AccountToken).where(AccountToken.token_hash == h))
        assert row is not None
        return row

    def _void(self, user: User, *purposes: str) -> None:
        """Mark the user's unused links of `purposes` used (in the caller's transaction): after
        a new password, links asked for before it (perhaps by whoever knew the old one) die."""
        self.session.execute(
            update(AccountToken)
            .where(
                AccountToken.user_id == user.id,
                AccountToken.purpose.in_(purposes),
                AccountToken.used_at.is_(None),
            )
            .values(used_at=self._now())
            .execution_options(synchronize_session=False)
        )

    def _mail(self, user: User, to: str, purpose: str, token: str) -> bool:
        link = f"{self.settings.public_url.rstrip('/')}{PATHS[purpose]}/{token}"
        with force_locale(user.locale or "ja"):
            subject, body = _texts(purpose, link, user.display_name)
        try:
            self._send(self.settings, to, subject, body)
        except mail.MailError:
            return False
        return True

    # --- e-mail verification ----------------------------------------------------------------

    def send_verification(self, user: User, town_slug: str | None = None) -> bool:
        """Mail a verification link to the user's address. False if the mail could not be sent
        (the user can ask again); nothing to do for a verified or address-less account. A link
        sent again ("send the link again" on my page) keeps the town of the one it replaces."""
        if user.email is None or user.email_verified_at is not None:
            return False
        if town_slug is None:
            town_slug = self.session.scalar(
                select(AccountToken.town_slug)
                .where(
                    AccountToken.user_id == user.id,
                    AccountToken.purpose == VERIFY_EMAIL,
                    AccountToken.town_slug.is_not(None),
                )
                .order_by(AccountToken.id.desc())
                .limit(1)
            )
        token = self._issue(user, VERIFY_EMAIL, user.email, town_slug)
        return self._mail(user, user.email, VERIFY_EMAIL, token)

    def verify(self, token: object) -> Verified:
        """Consume a verification link and mark the address verified (commits)."""
        row = self._consume(token, VERIFY_EMAIL)
        user = self.session.get(User, row.user_id)
        if user is None or user.email != row.email:  # the address changed since: void
            self.session.rollback()
            raise InvalidLink(N_("This link is invalid or has expired."))
        if user.email_verified_at is None:
            user.email_verified_at = self._now()
        self.session.commit()
        log.info("user %s verified their email", user.id)
        return Verified(user, row.town_slug)

    # --- password reset ---------------------------------------------------------------------

    def send_password_reset(self, email: object) -> None:
        """Mail a reset link if an account with a password has this address. Answers the same
        either way, so nobody learns which addresses have accounts."""
        try:
            address = normalise_email(email)
        except InvalidInput:
            raise
        user = self.session.scalar(select(User).where(User.email == address))
        if user is None or user.password_hash is None:
            log.info("password reset asked for an unknown address")
            return
        token = self._issue(user, RESET_PASSWORD, address)
        self._mail(user, address, RESET_PASSWORD, token)

    def check_reset_link(self, token: object) -> None:
        """InvalidLink unless `token` is a live reset link (consumes nothing)."""
        row = (
            self.session.scalar(
                select(AccountToken).where(
                    AccountToken.token_hash == _hash(token),
                    AccountToken.purpose == RESET_PASSWORD,
                    AccountToken.used_at.is_(None),
                    AccountToken.expires_at > self._now(),
                )
            )
            if isinstance(token, str)
            else None
        )
        if row is None:
            raise InvalidLink(N_("This link is invalid or has expired."))

    def reset_password(self, token: object, new_password: object) -> User:
        """Set a new password through a reset link (commits). The mailbox is proved too, so the
        address counts as verified. Pending reset and address-change links die with the old
        password, and so does the sign-in of the account's wallets: they stay linked, with what
        they hold, but sign in again only once the owner confirms them with the new password
        (docs/adr/0027); a mail lists them. The caller revokes the user's sessions."""
        password = check_password(new_password)
        row = self._consume(token, RESET_PASSWORD)
        user = self.session.get(User, row.user_id)
        if user is None or user.email != row.email:
            self.session.rollback()
            raise InvalidLink(N_("This link is invalid or has expired."))
        user.password_hash = password_hash(password)
        if user.email_verified_at is None:
            user.email_verified_at = self._now()
        self._void(user, RESET_PASSWORD, CHANGE_EMAIL)
        paused = pause_wallet_sign_in(self.session, user, self._now())
        self.session.commit()
        log.info("user %s reset their password; %d wallet(s) paused", user.id, len(paused))
        if paused:
            self._mail_paused(user, paused)
        return user

    def _mail_paused(self, user: User, wallets: list[str]) -> bool:
        """Tell the owner which wallets no longer sign in, and where to confirm them again (the
        page shows it too; the mail stays when the page is closed)."""
        if user.email is None:
            return False
        link = f"{self.settings.public_url.rstrip('/')}/me/wallets"
        with force_locale(user.locale or "ja"):
            subject, body = _paused_texts(wallets, link, user.display_name)
        try:
            self._send(self.settings, user.email, subject, body)
        except mail.MailError:
            return False
        return True

    def change_password(self, user: User, current: object, new: object) -> None:
        """Replace the password after checking the current one (commits); pending reset and
        address-change links die with the old password. The caller revokes the other sessions."""
        require_password(user, current)
        user.password_hash = password_hash(check_password(new))
        self._void(user, RESET_PASSWORD, CHANGE_EMAIL)
        self.session.commit()
        log.info("user %s changed their password", user.id)

    # --- e-mail change ----------------------------------------------------------------------

    def request_email_change(self, user: User, new_email: object, password: object) -> bool:
        """Mail a confirmation link to the new address; the account keeps its address until
        the link is followed. Needs the password (a borrowed session cannot move the account)."""
        require_password(user, password)
        address = normalise_email(new_email)
        if self.session.scalar(select(User.id).where(User.email == address)) is not None:
            raise EmailTaken(N_("An account with this email already exists."))
        token = self._issue(user, CHANGE_EMAIL, address)
        return self._mail(user, address, CHANGE_EMAIL, token)

    def confirm_email_change(self, token: object) -> User:
        """Move the account to the new address of the link, verified (commits)."""
        row = self._consume(token, CHANGE_EMAIL)
        user = self.session.get(User, row.user_id)
        if user is None:
            self.session.rollback()
            raise InvalidLink(N_("This link is invalid or has expired."))
        user.email = row.email
        user.email_verified_at = self._now()
        try:
            self.session.commit()
        except IntegrityError:  # someone registered that address meanwhile
            self.session.rollback()
            raise EmailTaken(N_("An account with this email already exists.")) from None
        log.info("user %s changed their email", user.id)
        return user


def _texts(purpose: str, link: str, name: str) -> tuple[str, str]:
    """Subject and body in the current locale (the caller forces the user's)."""
    greeting = gettext("Hello %(name)s,", name=name) if name else gettext("Hello,")
    if purpose == VERIFY_EMAIL:
        subject = gettext("Confirm your email address")
        text = gettext(
            "Please open this link to confirm your email address. Your welcome points are "
            "added once it is confirmed. The link works once, for 48 hours."
        )
    elif purpose == RESET_PASSWORD:
        subject = gettext("Reset your password")
        text = gettext(
            "Open this link to choose a new password. It works once, for one hour. If you did "
            "not ask for this, ignore this mail: your password stays as it is."
        )
    else:
        subject = gettext("Confirm your new email address")
        text = gettext(
            "Open this link to use this address for your furusato account. It works once, for "
            "24 hours. If you did not ask for this, ignore this mail."
        )
    return str(subject), f"{greeting}\n\n{text}\n\n{link}\n\n-- furusato\n"


def _paused_texts(wallets: list[str], link: str, name: str) -> tuple[str, str]:
    """Subject and body of the mail that lists the wallets a reset paused (current locale)."""
    greeting = gettext("Hello %(name)s,", name=name) if name else gettext("Hello,")
    subject = gettext("Signing in with your wallets is paused")
    text = gettext(
        "Your password was reset. These wallets can no longer sign in to your account until "
        "you confirm them:"
    )
    how = gettext(
        "They are still linked: what they hold still shows on My page. To sign in with one "
        "again, log in with your email address and new password, open Your wallets and confirm "
        "it with your password and the wallet. Remove any wallet you do not recognise."
    )
    listed = "\n".join(wallets)
    return str(subject), f"{greeting}\n\n{text}\n\n{listed}\n\n{how}\n\n{link}\n\n-- furusato\n"
