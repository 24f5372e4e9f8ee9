"""Accounts: sign-up with a custodial wallet, password and wallet sign-in, key export.

Every public method is one unit of work: it commits what it changed, or changes nothing and
raises an :class:`~backend.core.errors.AppError` subclass. Key material never leaves this module
except through :meth:`AccountService.export_private_key`, and is never logged.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash

from backend.accounts.errors import (
    AddressTaken,
    AuthenticationRequired,
    CustodyUnavailable,
    EmailTaken,
    InvalidCredentials,
    NoCustodialWallet,
    PasswordRequired,
    SiweFailed,
    WalletNotLinked,
)
from backend.accounts.models import CUSTODIAL, EXTERNAL, Address, SiweNonce, User
from backend.chain.api import (
    ChainUnavailable,
    CustodyNotConfigured,
    KeyVault,
    KeyVaultError,
    ModelKeyStore,
    SealedSigner,
    checksum_address,
    get_vault,
    siwe_auth,
)
from backend.core.db import get_db, utcnow
from backend.core.errors import N_, InvalidInput, ServiceUnavailable
from backend.core.models import AuditLog
from backend.core.numbers import db_id_or_none
from backend.core.passwords import hash_secret

log = logging.getLogger(__name__)

MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # scrypt cost grows with input; refuse megabyte "passwords"
LOCALES = ("ja", "en")
NONCE_TTL = dt.timedelta(minutes=10)
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


@functools.cache
def _dummy_hash() -> str:
    """Checked against when the email is unknown, so both failures cost the same time. Made on
    the first failed log-in, not at import: a hash is 0.1 s of CPU and 32 MiB, which every
    worker, beat and command process would otherwise pay at start."""
    return hash_secret("furusato-timing-equaliser")


@dataclass(frozen=True)
class SiweResult:
    user: User
    address: str
    created_user: bool  # a new account was made for this wallet
    linked: bool  # the address was newly attached to an existing user
    resumed: bool = False  # a wallet a password reset paused signs in again


@dataclass(frozen=True)
class SiweSite:
    """What a sign-in message must name: this site's authority (PUBLIC_URL's host[:port]), a
    URI under PUBLIC_URL, and the chain's id."""

    domain: str
    uri: str
    chain_id: int


@dataclass(frozen=True)
class SignInWallet:
    address: str
    built_in: bool  # the built-in wallet, whose key its owner exported
    linked_at: dt.datetime
    paused_at: dt.datetime | None  # a password reset paused its sign-in (docs/adr/0027)


class AccountService:
    """Accounts over one DB session. ``vault`` is a callable so the service works for
    password and wallet sign-in even where custody is not configured."""

    def __init__(
        self,
        session: Session,
        vault: Callable[[], KeyVault],
        *,
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.session = session
        self._vault = vault
        self._now = now

    def vault(self) -> KeyVault:
        try:
            return self._vault()
        except CustodyNotConfigured as exc:
            log.error("custody is not configured: %s", exc)
            raise CustodyUnavailable(
                N_("Accounts with a built-in wallet are unavailable.")
            ) from None

    # --- sign-up and sign-in --------------------------------------------------------------

    def signup(
        self,
        email: object,
        password: object,
        display_name: object = "",
        locale: object = "ja",
        *,
        verified: bool = False,
    ) -> User:
        """Create a user with ``email`` (stored lower-cased) and a custodial address, in one
        commit.

        Raises :class:`InvalidInput` (bad email, password under 10 characters, bad display
        name or locale), :class:`EmailTaken` (409) if the email is registered, and
        :class:`CustodyUnavailable` (503) if no master key is configured. Nothing is written
        on failure. The address is unverified (no welcome points) until its owner follows the
        mailed link (backend/accounts/mail_flows.py); ``verified`` is for demo data only.
        """
        email = normalise_email(email)
        password = check_password(password)
        name = _check_display_name(display_name)
        if locale not in LOCALES:
            raise InvalidInput(N_("locale must be ja or en."), field="locale")
        if self.session.scalar(select(User.id).where(User.email == email)) is not None:
            raise EmailTaken(N_("An account with this email already exists."))
        sealed = self.vault().create_key()
        user = User(
            email=email,
            password_hash=password_hash(password),
            display_name=name,
            locale=str(locale),
            email_verified_at=self._now() if verified else None,
        )
        self.session.add(user)
        self.session.add(Address.custodial(user, sealed))
        try:
            self.session.commit()
        except IntegrityError:  # a concurrent sign-up with the same email won the race
            self.session.rollback()
            raise EmailTaken(N_("An account with this email already exists.")) from None
        log.info("user %s signed up with custodial address %s", user.id, sealed.address)
        return user

    def authenticate(self, email: object, password: object) -> User:
        """Return the user whose email and password match.

        Raises :class:`InvalidCredentials` (401) with the same message whether the email is
        unknown, the password wrong, or the account has no password (wallet-only).
        """
        try:
            email = normalise_email(email)
        except InvalidInput:
            email = None
        user = self.session.scalar(select(User).where(User.email == email)) if email else None
        stored = user.password_hash if user is not None else None
        ok = check_password_hash(
            stored or _dummy_hash(), password if isinstance(password, str) else ""
        )
        if user is None or stored is None or not ok:
            raise InvalidCredentials(N_("Email or password is incorrect."))
        return user

    def get_user(self, user_id: int | None) -> User:
        """The user with ``user_id``; :class:`AuthenticationRequired` if there is none."""
        user = self.session.get(User, i) if (i := db_id_or_none(user_id)) else None
        if user is None:
            raise AuthenticationRequired(N_("Please sign in."))
        return user

    # --- Sign-In with Ethereum ------------------------------------------------------------

    def issue_siwe_nonce(self) -> SiweNonce:
        """Store and return a fresh single-use nonce valid for 10 minutes (commits).

        Also purges nonces that expired more than a day ago, so the table stays small.
        """
        now = self._now()
        self.session.execute(
            delete(SiweNonce).where(SiweNonce.expires_at < now - dt.timedelta(days=1))
        )
        row = SiweNonce(nonce=siwe_auth.new_nonce(), issued_at=now, expires_at=now + NONCE_TTL)
        self.session.add(row)
        self.session.commit()
        return row

    def sign_in_with_ethereum(
        self,
        message: object,
        signature: object,
        *,
        expected_nonce: str | None,
        site: SiweSite,
        current_user: User | None = None,
    ) -> SiweResult:
        """Verify an EIP-4361 message signed by an external wallet, consume its nonce, and
        return the account it belongs to, in one commit.

        Without ``current_user`` the address's owner is returned, or a new user is created for
        an unknown address. With ``current_user`` the address is linked to that user only if
        the account has no password (a wallet-only account, docs/adr/0027): an account with a
        password links through :meth:`link_wallet`, which asks for it. Already linking the
        user's own address is a no-op. ``expected_nonce`` is the nonce issued to this client;
        it must also be unused and unexpired in the DB, and is marked used by an atomic UPDATE.

        Raises :class:`SiweFailed` (400 malformed or no nonce; 401 foreign domain or URI,
        wrong chain, nonce mismatch/replay/expiry, expired message, bad signature; 403 a
        wallet whose sign-in a password reset paused), :class:`PasswordRequired` (403) and
        :class:`AddressTaken` (409) when linking an address another user owns. Nothing is
        written on failure.
        """
        address = self._verified_address(message, signature, expected_nonce, site)
        try:
            result = self._attach(address, current_user)
            self.session.commit()
        except (AddressTaken, PasswordRequired, SiweFailed):
            self.session.rollback()
            raise
        except IntegrityError:  # the same new address raced in from another request
            self.session.rollback()
            raise AddressTaken(N_("This wallet is already linked to another account.")) from None
        log.info("user %s signed in with external address %s", result.user.id, address)
        return result

    def link_wallet(
        self,
        user: User,
        message: object,
        signature: object,
        password: object,
        *,
        expected_nonce: str | None,
        site: SiweSite,
    ) -> SiweResult:
        """Link the wallet that signed ``message`` to ``user``, or let a wallet of theirs that
        a password reset paused sign in again, in one commit with a ``wallet.link`` or
        ``wallet.resume`` audit row.

        An account with a password must give it (re-authentication, as for an address change
        or a key export): a borrowed session or a known password alone must not add a wallet
        that keeps signing in after the owner resets the password. A wallet-only account has no
        password; its session was made by one of its wallets' signatures (docs/adr/0027).

        Raises :class:`InvalidCredentials` (401, checked first: nothing verified, nothing
        written), :class:`SiweFailed` as :meth:`sign_in_with_ethereum` does, and
        :class:`AddressTaken` (409).
        """
        if user.password_hash is not None:
            require_password(user, password)
        address = self._verified_address(message, signature, expected_nonce, site)
        try:
            row = self.session.scalar(select(Address).where(Address.address == address))
            if row is not None and row.user_id != user.id:
                raise AddressTaken(N_("This wallet is already linked to another account."))
            if row is None:
                self.session.add(Address(user=user, address=address, kind=EXTERNAL))
                result = SiweResult(user, address, created_user=False, linked=True)
            elif row.sign_in_paused_at is not None:
                row.sign_in_paused_at = None
                result = SiweResult(user, address, created_user=False, linked=False, resumed=True)
            else:
                result = SiweResult(user, address, created_user=False, linked=False)
            if result.linked or result.resumed:
                self._audit(user, "wallet.link" if result.linked else "wallet.resume", address)
            self.session.commit()
        except AddressTaken:
            self.session.rollback()
            raise
        except IntegrityError:
            self.session.rollback()
            raise AddressTaken(N_("This wallet is already linked to another account.")) from None
        log.info("user %s linked external address %s", user.id, address)
        return result

    def remove_wallet(self, user: User, address: object, password: object) -> str:
        """Unlink one of ``user``'s own wallets after re-checking the password (commits, with a
        ``wallet.remove`` audit row); returns its address. What the wallet holds stays in it
        and no longer shows on the account's pages.

        Raises :class:`InvalidCredentials` (401; also for an account without a password: its
        wallets are its only way in, and removing one must not be what a borrowed session can
        do) and :class:`WalletNotLinked` (404) for an address that is not one of the
        account's own wallets (its built-in one included).
        """
        require_password(user, password)
        wanted = checksum_address(address) if isinstance(address, str) else None
        row = (
            self.session.scalar(
                select(Address).where(
                    Address.address == wanted,
                    Address.user_id == user.id,
                    Address.kind == EXTERNAL,
                )
            )
            if wanted
            else None
        )
        if row is None:
            raise WalletNotLinked(N_("This wallet is not linked to your account."))
        self.session.delete(row)
        self._audit(user, "wallet.remove", row.address)
        self.session.commit()
        self.session.expire(user, ["addresses"])  # the loaded list still holds the row
        log.info("user %s removed external address %s", user.id, row.address)
        return row.address

    def sign_in_wallets(self, user: User) -> list[SignInWallet]:
        """The addresses that can sign in to ``user``'s account (see :func:`sign_in_wallets`)."""
        return sign_in_wallets(self.session, user)

    def _verified_address(
        self, message: object, signature: object, expected_nonce: str | None, site: SiweSite
    ) -> str:
        """The address that signed ``message`` for ``site``, its nonce consumed (not committed:
        the caller commits it with what it changes, or rolls both back)."""
        if not expected_nonce:
            raise SiweFailed("nonce_missing")
        if not isinstance(message, str) or not isinstance(signature, str):
            raise SiweFailed("malformed")
        now = self._now()
        try:
            address = siwe_auth.verify(
                message,
                signature,
                expected_domain=site.domain,
                expected_uri=site.uri,
                expected_chain_id=site.chain_id,
                expected_nonce=expected_nonce,
                now=now,
            )
        except siwe_auth.SiweRejected as exc:
            log.info("SIWE sign-in refused: %s", exc.reason)
            raise SiweFailed(exc.reason) from None

        # Single use: only one request can flip used_at, whatever the interleaving.
        consumed = self.session.execute(
            update(SiweNonce)
            .where(
                SiweNonce.nonce == expected_nonce,
                SiweNonce.used_at.is_(None),
                SiweNonce.expires_at > now,
            )
            .values(used_at=now)
        )
        if consumed.rowcount != 1:  # type: ignore[attr-defined]
            self.session.rollback()
            log.info("SIWE sign-in refused: nonce used or expired")
            raise SiweFailed("nonce_used")
        return address

    def _attach(self, address: str, current_user: User | None) -> SiweResult:
        row = self.session.scalar(select(Address).where(Address.address == address))
        if current_user is not None:
            if row is not None and row.user_id != current_user.id:
                raise AddressTaken(N_("This wallet is already linked to another account."))
            if row is not None and row.sign_in_paused_at is None:
                return SiweResult(current_user, address, created_user=False, linked=False)
            if current_user.password_hash is not None:
                raise PasswordRequired(
                    N_("To link a wallet, enter your password on the Your wallets page.")
                )
            # A wallet-only account links without a password (it has none; docs/adr/0027).
            # It has no password reset either, so none of its wallets is ever paused.
            self.session.add(Address(user=current_user, address=address, kind=EXTERNAL))
            return SiweResult(current_user, address, created_user=False, linked=True)
        if row is not None:
            if row.sign_in_paused_at is not None:
                raise SiweFailed("wallet_paused")
            return SiweResult(row.user, address, created_user=False, linked=False)
        user = User(display_name="", locale="ja")
        self.session.add(user)
        self.session.add(Address(user=user, address=address, kind=EXTERNAL))
        self.session.flush()
        return SiweResult(user, address, created_user=True, linked=True)

    def _audit(self, user: User, action: str, address: str) -> None:
        self.session.add(_wallet_audit(user, action, address))

    # --- custody --------------------------------------------------------------------------

    def custodial_address(self, user: User) -> Address:
        """The user's custodial address row; :class:`NoCustodialWallet` (404) if none."""
        row = self.session.scalar(
            select(Address)
            .where(Address.user_id == user.id, Address.kind == CUSTODIAL)
            .order_by(Address.id)
        )
        if row is None:
            raise NoCustodialWallet(N_("This account has no built-in wallet."))
        return row

    def custodial_signer(self, user: User) -> SealedSigner:
        """A signer for the user's custodial address; it holds no key material.

        Raises :class:`NoCustodialWallet` and :class:`CustodyUnavailable`.
        """
        return self.vault().signer(self.custodial_address(user).sealed_key())

    def export_private_key(self, user: User, password: object) -> tuple[str, str]:
        """Re-authenticate ``user`` with ``password`` and return ``(address, private key hex)``
        of their custodial wallet, after committing a ``key.export`` audit row.

        Raises :class:`InvalidCredentials` (401, nothing written) on a wrong password,
        :class:`NoCustodialWallet` (404) and :class:`CustodyUnavailable` (503, also when the
        stored key cannot be unsealed). The key is returned only once the audit row is
        committed.
        """
        try:
            require_password(user, password)
        except InvalidCredentials:
            log.warning("key export refused for user %s: wrong password", user.id)
            raise
        row = self.custodial_address(user)
        try:
            private_key = self.vault().export_private_key(row.sealed_key(), reauthenticated=True)
        except KeyVaultError as exc:
            log.error("key export failed for %s: %s", row.address, type(exc).__name__)
            raise CustodyUnavailable(N_("The wallet key cannot be read right now.")) from None
        self.session.add(
            AuditLog(
                actor=f"user:{user.id}",
                action="key.export",
                subject_type="address",
                subject_id=row.address,
                reason="exported to self-custody after password re-authentication",
                details={"master_key_id": row.master_key_id},
            )
        )
        self.session.commit()
        return row.address, private_key


def address_key_store(session: Session) -> ModelKeyStore:
    """The custodial keys in ``addresses``, as master-key rotation sees them."""
    return ModelKeyStore("accounts.addresses", session, Address, Address.kind == CUSTODIAL)


# --- validation ---------------------------------------------------------------------------


def normalise_email(value: object) -> str:
    """Trimmed, lower-cased email; :class:`InvalidInput` if it does not look like one."""
    if not isinstance(value, str):
        raise InvalidInput(N_("Enter a valid email address."), field="email")
    email = value.strip().lower()
    if len(email) > 254 or not _EMAIL_RE.fullmatch(email):
        raise InvalidInput(N_("Enter a valid email address."), field="email")
    return email


def users_by_email(
    session: Session, emails: Iterable[str], *, verified_only: bool = False
) -> dict[str, int]:
    """The account id of each of `emails` that has an account (lower-cased emails; the ones
    with none are left out); with `verified_only`, only accounts whose owner verified that
    address. One query per 500 addresses."""
    wanted = sorted({e.strip().lower() for e in emails})
    found: dict[str, int] = {}
    for i in range(0, len(wanted), 500):
        query = select(User.email, User.id).where(User.email.in_(wanted[i : i + 500]))
        if verified_only:
            query = query.where(User.email_verified_at.is_not(None))
        rows = session.execute(query)
        found.update({str(e): int(u) for e, u in rows})
    return found


def custodial_addresses(session: Session, user_ids: Iterable[int]) -> dict[int, str]:
    """Each user's built-in (custodial) address, the first one made (users without one are left
    out). One query per 500 users."""
    wanted = sorted(set(user_ids))
    found: dict[int, str] = {}
    for i in range(0, len(wanted), 500):
        rows = session.execute(
            select(Address.user_id, Address.address)
            .where(Address.user_id.in_(wanted[i : i + 500]), Address.kind == CUSTODIAL)
            .order_by(Address.id.desc())
        )
        found.update({int(u): str(a) for u, a in rows})  # the lowest id wins (written last)
    return found


def owners_of_addresses(session: Session, addresses: Iterable[str]) -> dict[str, int]:
    """The account holding each of `addresses` (built-in or linked wallet), keyed by the
    checksummed address; addresses no account holds (or not addresses) are left out."""
    wanted = sorted({c for c in (checksum_address(a) for a in addresses) if c})
    found: dict[str, int] = {}
    for i in range(0, len(wanted), 500):
        rows = session.execute(
            select(Address.address, Address.user_id).where(Address.address.in_(wanted[i : i + 500]))
        )
        found.update({str(a): int(u) for a, u in rows})
    return found


def password_hash(password: str) -> str:
    return hash_secret(password)


def require_password(user: User, password: object) -> None:
    """Re-authentication: InvalidCredentials (401) unless ``password`` is the user's password.
    An account without one (signed up with a wallet) never passes."""
    if user.password_hash is None or not check_password_hash(
        user.password_hash, password if isinstance(password, str) else ""
    ):
        raise InvalidCredentials(N_("The password is incorrect."))


def sign_in_wallets(session: Session, user: User) -> list[SignInWallet]:
    """The addresses that can sign in to ``user``'s account with a signature: their own
    wallets, and the built-in one once its key was exported (whoever holds the key can sign).
    Oldest first."""
    rows = session.scalars(
        select(Address).where(Address.user_id == user.id).order_by(Address.id)
    ).all()
    built_in = [r.address for r in rows if r.is_custodial]
    exported = (
        set(
            session.scalars(
                select(AuditLog.subject_id).where(
                    AuditLog.action == "key.export",
                    AuditLog.subject_type == "address",
                    AuditLog.subject_id.in_(built_in),
                )
            )
        )
        if built_in
        else set()
    )
    return [
        SignInWallet(r.address, r.is_custodial, r.created_at, r.sign_in_paused_at)
        for r in rows
        if not r.is_custodial or r.address in exported
    ]


def pause_wallet_sign_in(session: Session, user: User, now: dt.datetime) -> list[str]:
    """Pause the sign-in of every address that can sign in to ``user``'s account and is not
    paused yet, in the caller's transaction, with a ``wallet.pause`` audit row each; returns
    them. A password reset proves the mailbox, and a wallet added by whoever knew the old
    password must not keep signing in; the addresses stay the account's, with what they hold
    (docs/adr/0027)."""
    paused = [w.address for w in sign_in_wallets(session, user) if w.paused_at is None]
    if paused:
        session.execute(
            update(Address)
            .where(Address.user_id == user.id, Address.address.in_(paused))
            .values(sign_in_paused_at=now)
        )
        session.add_all(_wallet_audit(user, "wallet.pause", a) for a in paused)
    return paused


def _wallet_audit(user: User, action: str, address: str) -> AuditLog:
    return AuditLog(
        actor=f"user:{user.id}",
        action=action,
        subject_type="address",
        subject_id=address,
        reason="password reset" if action == "wallet.pause" else "by the account's owner",
        details={},
    )


def check_password(value: object) -> str:
    """`value` if it is an acceptable new password; InvalidInput otherwise."""
    if not isinstance(value, str) or len(value) < MIN_PASSWORD:
        raise InvalidInput(
            N_("The password must be at least %(min)d characters."),
            field="password",
            min=MIN_PASSWORD,
        )
    if len(value) > MAX_PASSWORD:
        raise InvalidInput(
            N_("The password must be at most %(max)d characters."),
            field="password",
            max=MAX_PASSWORD,
        )
    return value


def _check_display_name(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value.strip()) > 80:
        raise InvalidInput(N_("The display name must be text of at most 80 characters."))
    return value.strip()


def account_service() -> AccountService:
    """An AccountService for the current app and request (pages and routes use this one)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return AccountService(get_db().session(), lambda: get_vault(app))


def siwe_site() -> SiweSite:
    """What this app's sign-in messages must name: PUBLIC_URL's authority and PUBLIC_URL itself
    (the URI our own pages put in the message), and the chain's id, asked once per process.
    ServiceUnavailable (503) while the chain cannot be reached."""
    public_url = current_app.extensions["settings"].public_url
    chain_id = current_app.extensions.get("accounts.chain_id")
    if chain_id is None:
        try:
            chain_id = current_app.extensions["chain"].status().chain_id
        except ChainUnavailable:
            raise ServiceUnavailable(N_("The chain is not reachable; try again shortly.")) from None
        current_app.extensions["accounts.chain_id"] = chain_id
    return SiweSite(urlsplit(public_url).netloc, public_url, int(chain_id))
