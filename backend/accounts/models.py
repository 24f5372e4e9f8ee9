"""One account model: a user has one or more addresses, each custodial or external.

A custodial address carries its private key sealed by the key vault (envelope encryption, see
backend/chain/keys.py); an external one (proved by Sign-In with Ethereum) carries none.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.chain.api import SealedKey
from backend.core.db import Base, utcnow

CUSTODIAL = "custodial"
EXTERNAL = "external"


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Lower-cased by the service. NULL for a user who only ever signed in with a wallet.
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(80), default="")
    locale: Mapped[str] = mapped_column(String(5), default="ja")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Set when the owner followed the link mailed to `email`; welcome points wait for it.
    email_verified_at: Mapped[dt.datetime | None] = mapped_column()
    # Sessions carry the epoch they were made in; logout and a password change bump it, so
    # every cookie saved before no longer signs anyone in (backend/accounts/sessions.py).
    auth_epoch: Mapped[int] = mapped_column(default=0, server_default="0")

    addresses: Mapped[list[Address]] = relationship(
        back_populates="user", order_by="Address.id", lazy="selectin"
    )

    def __repr__(self) -> str:
        return f"User(id={self.id!r})"


class Address(Base):
    __tablename__ = "addresses"
    __table_args__ = (
        CheckConstraint(f"kind IN ('{CUSTODIAL}', '{EXTERNAL}')", name="kind"),
        # A custodial address always has its sealed key; an external one never has any.
        CheckConstraint(
            f"(kind = '{CUSTODIAL}' AND ciphertext IS NOT NULL AND nonce IS NOT NULL"
            " AND wrapped_data_key IS NOT NULL AND master_key_id IS NOT NULL)"
            f" OR (kind = '{EXTERNAL}' AND ciphertext IS NULL AND nonce IS NULL"
            " AND wrapped_data_key IS NULL AND master_key_id IS NULL)",
            name="sealed_key_iff_custodial",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    address: Mapped[str] = mapped_column(String(42), unique=True)  # EIP-55 checksummed
    kind: Mapped[str] = mapped_column(String(10))
    ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    nonce: Mapped[bytes | None] = mapped_column(LargeBinary)
    wrapped_data_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    master_key_id: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Set by a password reset (docs/adr/0027-wallet-sign-in-after-reset.md): the address stays
    # the account's (its cards, tickets, notices, payouts), but a signature by it signs nobody
    # in until the owner confirms it again with the password and a fresh signature.
    sign_in_paused_at: Mapped[dt.datetime | None] = mapped_column()

    user: Mapped[User] = relationship(back_populates="addresses")

    @property
    def is_custodial(self) -> bool:
        return self.kind == CUSTODIAL

    def sealed_key(self) -> SealedKey:
        """The stored sealed key; ValueError for an external address (it has none)."""
        if not self.is_custodial:
            raise ValueError(f"{self.address} is an external address and has no sealed key")
        return SealedKey.from_row(self)

    @classmethod
    def custodial(cls, user: User, sealed: SealedKey) -> Address:
        return cls(user=user, kind=CUSTODIAL, **sealed.columns())

    def __repr__(self) -> str:  # never the sealed bytes
        return f"Address(address={self.address!r}, kind={self.kind!r})"


class SiweNonce(Base):
    """A server-issued Sign-In with Ethereum nonce; consumed at most once, before it expires."""

    __tablename__ = "siwe_nonces"

    id: Mapped[int] = mapped_column(primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    issued_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    used_at: Mapped[dt.datetime | None] = mapped_column()


VERIFY_EMAIL = "verify_email"
RESET_PASSWORD = "reset_password"  # noqa: S105 - a purpose name, not a password
CHANGE_EMAIL = "change_email"
TOKEN_PURPOSES = (VERIFY_EMAIL, RESET_PASSWORD, CHANGE_EMAIL)


class AccountToken(Base):
    """A single-use link sent by mail. Only the SHA-256 of the token is stored: a copy of the
    database cannot be used to verify, reset or take over an account."""

    __tablename__ = "account_tokens"
    __table_args__ = (
        CheckConstraint(
            "purpose IN (" + ", ".join(f"'{p}'" for p in TOKEN_PURPOSES) + ")", name="purpose"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The address the link was sent to: the account's (verify, reset) or the new one (change).
    email: Mapped[str] = mapped_column(String(254))
    # The town whose welcome points the verification unlocks (the sign-up came from its pages).
    town_slug: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    used_at: Mapped[dt.datetime | None] = mapped_column()


class Membership(Base):
    """A user's role in a town (see backend/accounts/roles.py)."""

    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("user_id", "town_id", "role"),
        CheckConstraint("role IN ('admin', 'staff', 'verifier', 'data')", name="role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
