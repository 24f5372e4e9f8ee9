"""Onboarding a town (issue 13): its contracts through the outbox, its rows, its first admin.

`TownSetupService.start` writes a `TownSetup` and one `TownSetupStep` per transaction of the
chain's plan (backend/chain/town_setup.py), in one commit; `advance` (the Celery task
"onboarding.advance_town_setups", and the command while it waits) moves each step: it enqueues
a step once every step it needs is confirmed, with the outbox key `town-setup:<slug>:<step>`,
reads what a confirmed step created and records it in the deployments file, and when every step
is confirmed adds the town's rows (towns, its first collection) and invites its first admin
with a one-time sign-in link. Running `start` again for the same town continues the setup;
nothing is sent twice (the outbox keys are deterministic). A failed step stops the setup until
`retry` re-sends it under a new key.

Only platform operators (and the command line) may onboard a town: `require_operator`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import current_app
from flask_babel import force_locale, gettext
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.accounts.models import User
from backend.accounts.roles import ADMIN, grant_town_role
from backend.accounts.services import AccountService, normalise_email, require_password
from backend.chain.api import (
    FAILED_CALL_STATES,
    LOCAL_CHAIN_IDS,
    ChainError,
    CollectionSpec,
    DaoSpec,
    OutboxService,
    ProgrammeSpec,
    Sender,
    SetupStep,
    Subject,
    TownSpec,
    outbox_service,
    outbox_tx,
    platform_addresses,
    record_deployment,
    role_addresses_for,
    setup_plan,
)
from backend.config import Settings
from backend.core import mail
from backend.core.db import get_db, utcnow
from backend.core.errors import N_, AppError, Conflict, Forbidden, InvalidInput, NotFound
from backend.core.models import AuditLog
from backend.core.upsert import lock_row
from backend.onboarding.models import (
    CONFIRMED,
    FAILED,
    LIVE,
    QUEUED,
    RUNNING,
    SENT,
    WAITING,
    PlatformOperator,
    TownInvite,
    TownSetup,
    TownSetupStep,
)
from backend.points.programmes import PRESETS
from backend.regions.models import Town
from backend.regions.services import create_town, town_exists
from backend.shop import first_collection
from backend.shop.categories import KEYS as CATEGORY_KEYS

ADMIN_ROLE = ADMIN  # the town's admin (backend/accounts/roles.py): appoints the others
INVITE_TTL = dt.timedelta(days=7)
INVITE_PATH = "/invite"
SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{1,38}[a-z0-9]$")
SYMBOL_RE = re.compile(r"^[A-Z][A-Z0-9]{1,7}$")
RESERVED_SLUGS = frozenset({"new", "admin", "api", "operator"})
FOUNDER = "founder"
KEY_MAX = 100  # TownSetup.idempotency_key's length


class InvalidInvite(InvalidInput):
    code = "invalid_invite"


class UnconfirmedAccount(Conflict):
    code = "unconfirmed_account"


@dataclass(frozen=True)
class TownRequest:
    """What the operator asks for: a town's slug, names, points symbol, its first admin."""

    slug: str
    name_ja: str
    name_en: str
    symbol: str
    prefecture_ja: str = ""
    prefecture_en: str = ""
    admin_email: str | None = None


def _text(data: Mapping[str, Any], name: str, limit: int, *, required: bool = True) -> str:
    value = data.get(name)
    value = "" if value is None else value
    if not isinstance(value, str):
        raise InvalidInput(N_("Enter text."), field=name)
    value = value.strip()
    if required and not value:
        raise InvalidInput(N_("This field is required."), field=name)
    if len(value) > limit or "\x00" in value:
        raise InvalidInput(N_("This value is too long."), field=name)
    return value


def parse_request(data: Mapping[str, Any]) -> TownRequest:
    """A `TownRequest` from form or command input; InvalidInput (400, with the field) if a
    value is malformed: a slug is 3-40 lower-case letters, digits and hyphens, a symbol 2-8
    upper-case letters and digits starting with a letter."""
    slug = _text(data, "slug", 40)
    if not SLUG_RE.match(slug) or slug in RESERVED_SLUGS or "--" in slug:
        raise InvalidInput(
            N_("The address name must be 3-40 lower-case letters, digits and hyphens."),
            field="slug",
        )
    symbol = _text(data, "symbol", 8)
    if not SYMBOL_RE.match(symbol):
        raise InvalidInput(
            N_("The points symbol must be 2-8 capital letters and digits, starting with a letter."),
            field="symbol",
        )
    email = _text(data, "admin_email", 254, required=False)
    return TownRequest(
        slug=slug,
        name_ja=_text(data, "name_ja", 120),
        name_en=_text(data, "name_en", 120),
        symbol=symbol,
        prefecture_ja=_text(data, "prefecture_ja", 60, required=False),
        prefecture_en=_text(data, "prefecture_en", 60, required=False),
        admin_email=normalise_email(email) if email else None,
    )


def is_operator(session: Session, user: User | None) -> bool:
    if user is None:
        return False
    found = session.scalar(select(PlatformOperator.id).where(PlatformOperator.user_id == user.id))
    return found is not None


def require_operator(session: Session, user: User | None) -> User:
    """The user, if a platform operator; Forbidden (403) otherwise."""
    if user is None or not is_operator(session, user):
        raise Forbidden(N_("Only platform operators may do this."))
    return user


def add_operator(session: Session, email: object) -> User:
    """Make the account with this e-mail a platform operator (idempotent; audited; commits).
    NotFound if there is no such account."""
    user = session.scalar(select(User).where(User.email == normalise_email(email)))
    if user is None:
        raise NotFound(N_("There is no account with this email address."))
    if not is_operator(session, user):
        session.add(PlatformOperator(user_id=user.id))
        session.add(
            AuditLog(
                actor="cli",
                action="platform.operator_add",
                subject_type="user",
                subject_id=str(user.id),
            )
        )
        session.commit()
    return user


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def town_spec(setup: TownSetup) -> TownSpec:
    """The chain's spec of an onboarded town: the programme presets, one ambassador card
    collection that votes (the card chamber's token), the default governance settings."""
    return TownSpec(
        setup.slug,
        f"{setup.name_en} Points",
        setup.points_symbol,
        programmes=tuple(ProgrammeSpec(p.programme_id, p.expiry_days) for p in PRESETS),
        collections=(
            CollectionSpec(
                first_collection.SLUG,
                f"{setup.name_en} Ambassador Card",
                f"{setup.points_symbol}AMB"[:11],
                first_collection.MAX_SUPPLY,
                first_collection.CATEGORY,
                votes=True,
            ),
        ),
        dao=DaoSpec(),
        categories=CATEGORY_KEYS,
    )


@dataclass(frozen=True)
class StepView:
    position: int
    name: str
    state: str
    address: str | None
    error: str | None
    tx_hash: str | None


@dataclass(frozen=True)
class SetupView:
    slug: str
    name_ja: str
    name_en: str
    state: str
    total: int
    confirmed: int
    steps: list[StepView]
    invite_link: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "state": self.state,
            "total": self.total,
            "confirmed": self.confirmed,
            "steps": [s.__dict__ for s in self.steps],
        }


class TownSetupService:
    """Start, advance, retry and show town setups (see the module's docstring)."""

    def __init__(
        self,
        session: Session,
        settings: Settings,
        outbox: OutboxService,
        *,
        send: Callable[..., object] = mail.send,
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.session = session
        self.settings = settings
        self.outbox = outbox
        self._send = send
        self._now = now
        # The last invite link made by `advance` in this process (the command prints it).
        self.invite_links: dict[str, str] = {}

    # ---------------------------------------------------------------- starting

    def start(
        self,
        actor: User | None,
        request: TownRequest,
        *,
        idempotency_key: str | None = None,
        command_line: bool = False,
    ) -> TownSetup:
        """Start onboarding a town (or continue the same town's setup: the same slug, names
        and symbol again return the existing setup). Forbidden unless `actor` is a platform
        operator (or `command_line`); Conflict (409) for a slug already taken by another town
        or setup, or an idempotency key used for another town; nothing is written then.
        Raises ChainError when the platform is not deployed on the chain."""
        if not command_line:
            require_operator(self.session, actor)
        if idempotency_key is not None:
            if (
                not isinstance(idempotency_key, str)
                or not 0 < len(idempotency_key) <= KEY_MAX
                or not idempotency_key.isprintable()
            ):  # longer than its column: PostgreSQL refused the INSERT (a 500)
                raise InvalidInput(
                    N_("The request key is not valid; reload the page."), field="idempotency_key"
                )
            same = self.session.scalar(
                select(TownSetup).where(TownSetup.idempotency_key == idempotency_key)
            )
            if same is not None:
                if same.slug != request.slug:
                    raise Conflict(N_("This form was already sent for another town."))
                return same
        existing = self.session.scalar(select(TownSetup).where(TownSetup.slug == request.slug))
        if existing is not None and idempotency_key and existing.idempotency_key == idempotency_key:
            return existing  # its twin committed between the two look-ups: the same form
        if existing is not None:
            if (existing.name_ja, existing.name_en, existing.points_symbol) != (
                request.name_ja,
                request.name_en,
                request.symbol,
            ) or not command_line:
                raise Conflict(N_("A town with this address name already exists."), field="slug")
            self.advance(existing.id)
            return existing
        if town_exists(self.session, request.slug):
            raise Conflict(N_("A town with this address name already exists."), field="slug")
        setup = TownSetup(
            slug=request.slug,
            name_ja=request.name_ja,
            name_en=request.name_en,
            prefecture_ja=request.prefecture_ja,
            prefecture_en=request.prefecture_en,
            points_symbol=request.symbol,
            admin_email=request.admin_email,
            chain_id=self.outbox.chain_id,
            state=RUNNING,
            idempotency_key=idempotency_key,
            created_by="cli" if actor is None else f"user:{actor.id}",
        )
        plan = self._plan(setup)  # raises before anything is written
        self.session.add(setup)
        try:
            self.session.flush()
        except IntegrityError:  # a concurrent start with this slug or key won
            self.session.rollback()
            winner = self.session.scalar(
                select(TownSetup).where(TownSetup.idempotency_key == idempotency_key)
            )
            if idempotency_key is not None and winner is not None and winner.slug == setup.slug:
                return winner  # the same form sent twice at once: one setup
            raise Conflict(
                N_("A town with this address name already exists."), field="slug"
            ) from None
        for i, step in enumerate(plan):
            self.session.add(TownSetupStep(setup_id=setup.id, position=i, name=step.name))
        self.session.add(
            AuditLog(
                actor=setup.created_by,
                action="town.setup_start",
                subject_type="town_setup",
                subject_id=request.slug,
                details={"symbol": request.symbol, "admin_email": request.admin_email or ""},
            )
        )
        self.session.commit()
        self.advance(setup.id)
        return setup

    def _plan(self, setup: TownSetup) -> list[SetupStep]:
        chain_id = setup.chain_id
        try:
            platform = platform_addresses(self.settings.deployments_dir, chain_id)
        except ChainError as exc:
            raise Conflict(
                N_("The platform's contracts are not deployed on this chain."), detail=str(exc)
            ) from None
        roles = role_addresses_for(self.settings, chain_id)
        if FOUNDER not in roles or "clerk" not in roles:
            raise Conflict(N_("No founder or clerk role key is configured."))
        return setup_plan(
            town_spec(setup),
            chain_id=chain_id,
            platform=platform,
            roles=roles,
            local=chain_id in LOCAL_CHAIN_IDS,
            metadata_base_url=self.settings.public_url,
        )

    # ---------------------------------------------------------------- advancing

    def running_ids(self) -> list[int]:
        return list(self.session.scalars(select(TownSetup.id).where(TownSetup.state == RUNNING)))

    def advance(self, setup_id: int) -> TownSetup:
        """Move the setup's steps on (see the module's docstring); commits. Safe to run in
        several processes at once: the setup row is locked while it moves (on SQLite, where
        FOR UPDATE does nothing, by `lock_row`: two runs went live twice, inviting twice)."""
        lock_row(self.session, TownSetup.state, TownSetup.id == setup_id)
        setup = self.session.scalar(
            select(TownSetup)
            .where(TownSetup.id == setup_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if setup is None:
            raise NotFound(N_("There is no such town setup."))
        if setup.state != RUNNING:
            self.session.commit()
            return setup
        plan = {s.name: s for s in self._plan(setup)}
        rows = {r.name: r for r in self._steps(setup)}
        for row in rows.values():
            if row.state in (QUEUED, SENT):
                self._settle(setup, row, plan[row.name])
        if any(r.state == FAILED for r in rows.values()):
            setup.state = FAILED
            self.session.commit()
            return setup
        done = {n for n, r in rows.items() if r.state == CONFIRMED}
        addresses = {n: r.address for n, r in rows.items() if r.address}
        for name, step in plan.items():
            row = rows[name]
            if row.state != WAITING or not all(n in done for n in step.needs):
                continue
            key = f"town-setup:{setup.slug}:{name}" + (
                f":retry{row.retries}" if row.retries else ""
            )
            try:
                tx = self.outbox.enqueue(
                    self.session,
                    step.call(addresses),  # type: ignore[arg-type]
                    sender=Sender.role(FOUNDER),
                    key=key,
                    subject=Subject("town_setup", setup.id),
                )
            except AppError as exc:  # no founder key, or this key was used for another call
                row.state, row.error, setup.state = FAILED, exc.message, FAILED
                break
            row.outbox_key, row.outbox_tx_id, row.state, row.error = key, tx.id, QUEUED, None
        if setup.state == RUNNING and len(done) == len(rows):
            self._go_live(setup, addresses)
        self.session.commit()
        return setup

    def _steps(self, setup: TownSetup) -> list[TownSetupStep]:
        return list(
            self.session.scalars(
                select(TownSetupStep)
                .where(TownSetupStep.setup_id == setup.id)
                .order_by(TownSetupStep.position)
                .execution_options(populate_existing=True)
            )
        )

    def _settle(self, setup: TownSetup, row: TownSetupStep, step: SetupStep) -> None:
        tx = outbox_tx(self.session, row.outbox_tx_id)
        if tx is None:
            return
        if tx.state in ("sent", "replaced"):
            row.state = SENT
        elif tx.state in FAILED_CALL_STATES:
            row.state = FAILED
            row.error = tx.error or tx.state
        elif tx.state == "confirmed":
            if step.record is not None:
                assert tx.tx_hash is not None
                address = self.outbox.created_address(tx.tx_hash, step.event)
                if address is None:
                    return  # the node lost the receipt for now: the next run reads it
                record_deployment(
                    self.settings.deployments_dir,
                    setup.chain_id,
                    key=f"towns.{setup.slug}.{step.record}",
                    artifact_name=step.record_artifact or step.artifact,
                    address=address,
                    block_number=int(tx.block_number or 0),
                    tx_hash=tx.tx_hash,
                )
                row.address = address
            row.state = CONFIRMED

    def _go_live(self, setup: TownSetup, addresses: Mapping[str, str]) -> None:
        town = create_town(
            self.session,
            slug=setup.slug,
            name_ja=setup.name_ja,
            name_en=setup.name_en,
            prefecture_ja=setup.prefecture_ja,
            prefecture_en=setup.prefecture_en,
            chain_id=setup.chain_id,
            points_address=addresses["RegionPoints"],
            points_symbol=setup.points_symbol,
        )
        first_collection.register_first_collection(
            self.session,
            town,
            addresses[f"collections.{first_collection.SLUG}"],
            name_ja=setup.name_ja,
            name_en=setup.name_en,
        )
        setup.town_id, setup.state, setup.finished_at = town.id, LIVE, self._now()
        self.session.add(
            AuditLog(
                actor=setup.created_by,
                action="town.live",
                subject_type="town",
                subject_id=str(town.id),
                details={"slug": setup.slug, "points": addresses["RegionPoints"]},
            )
        )
        if setup.admin_email and setup.created_by != "cli":
            # The command invites by itself, to print the link (`invite`).
            self.invite_links[setup.slug] = self._invite(town, setup.admin_email, setup.created_by)

    # ---------------------------------------------------------------- retrying and showing

    def retry(self, actor: User | None, slug: str, *, command_line: bool = False) -> TownSetup:
        """Send the setup's failed steps again, under new outbox keys (Forbidden unless an
        operator; NotFound for an unknown setup). Commits and advances."""
        if not command_line:
            require_operator(self.session, actor)
        setup = self.setup(slug)
        # A retry sent twice at once, or while `advance` moves the setup, reads the steps after
        # the other has committed: a step it queued meanwhile is not put back to waiting.
        lock_row(self.session, TownSetup.state, TownSetup.id == setup.id)
        self.session.refresh(setup)
        for row in self._steps(setup):
            if row.state == FAILED:
                row.state, row.retries, row.outbox_tx_id = WAITING, row.retries + 1, None
        if setup.state == FAILED:
            setup.state = RUNNING
        self.session.add(
            AuditLog(
                actor="cli" if actor is None else f"user:{actor.id}",
                action="town.setup_retry",
                subject_type="town_setup",
                subject_id=slug,
            )
        )
        self.session.commit()
        return self.advance(setup.id)

    def setup(self, slug: str) -> TownSetup:
        setup = self.session.scalar(select(TownSetup).where(TownSetup.slug == slug))
        if setup is None:
            raise NotFound(N_("There is no such town setup."))
        return setup

    def setups(self, actor: User | None) -> list[TownSetup]:
        require_operator(self.session, actor)
        return list(self.session.scalars(select(TownSetup).order_by(TownSetup.id.desc())))

    def view(self, actor: User | None, slug: str, *, command_line: bool = False) -> SetupView:
        """A setup's progress (Forbidden unless an operator, or the command line; NotFound)."""
        if not command_line:
            require_operator(self.session, actor)
        setup = self.setup(slug)
        rows = self._steps(setup)
        hashes = {r.id: getattr(outbox_tx(self.session, r.outbox_tx_id), "tx_hash", None)
                  for r in rows}  # fmt: skip
        steps = [
            StepView(r.position + 1, r.name, r.state, r.address, r.error, hashes[r.id])
            for r in rows
        ]
        return SetupView(
            slug=setup.slug,
            name_ja=setup.name_ja,
            name_en=setup.name_en,
            state=setup.state,
            total=len(rows),
            confirmed=sum(1 for r in rows if r.state == CONFIRMED),
            steps=steps,
            invite_link=self.invite_links.get(slug),
        )

    # ---------------------------------------------------------------- the first admin

    def invite(self, slug: str, *, email: str | None = None, fresh: bool = False) -> str | None:
        """Invite the town's first admin (the setup's admin e-mail, or `email`): mail a
        one-time sign-in link and return it. Without `fresh`, None when an invite was already
        made; with it, the older unused links of the town stop working. Commits. Conflict
        while the town is not live."""
        setup = self.setup(slug)
        to = normalise_email(email) if email else setup.admin_email
        if setup.state != LIVE or setup.town_id is None:
            raise Conflict(N_("The town is not set up yet."))
        if not to:
            raise InvalidInput(N_("This field is required."), field="admin_email")
        made = self.session.scalar(
            select(TownInvite.id).where(TownInvite.town_id == setup.town_id).limit(1)
        )
        if made is not None and not fresh:
            return None
        self.session.execute(
            update(TownInvite)
            .where(TownInvite.town_id == setup.town_id, TownInvite.used_at.is_(None))
            .values(expires_at=self._now())
        )
        town = self.session.get(Town, setup.town_id)
        assert town is not None
        link = self._invite(town, to, "cli")
        self.session.commit()
        return link

    def _invite(self, town: Town, email: str, actor: str) -> str:
        """Make a one-time sign-in link for `email` as the town's admin, mail it (a mail that
        cannot be sent is logged: the command prints the link) and return it."""
        token = secrets.token_urlsafe(32)
        now = self._now()
        self.session.add(
            TownInvite(
                town_id=town.id,
                email=email,
                role=ADMIN_ROLE,
                token_hash=_hash(token),
                created_at=now,
                expires_at=now + INVITE_TTL,
            )
        )
        self.session.add(
            AuditLog(
                actor=actor,
                action="town.invite_admin",
                subject_type="town",
                subject_id=str(town.id),
                details={"email": email, "role": ADMIN_ROLE},
            )
        )
        link = f"{self.settings.public_url.rstrip('/')}{INVITE_PATH}/{token}"
        with force_locale("ja"):
            subject = gettext("You are invited to run %(town)s on furusato", town=town.name_ja)
            body = gettext(
                "%(town)s is now on furusato. Open this link within 7 days to sign in as the "
                "town's administrator (it works once):\n\n%(link)s\n",
                town=town.name_ja,
                link=link,
            )
        try:
            self._send(self.settings, email, subject, body)
        except mail.MailError:
            current_app.logger.warning("invite mail to %s could not be sent", email)
        return link


class InviteService:
    """The one-time link that signs a town's first admin in (and makes their account)."""

    def __init__(
        self,
        session: Session,
        accounts: AccountService,
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.session = session
        self.accounts = accounts
        self._now = now

    def check(self, token: object) -> tuple[TownInvite, bool]:
        """The invite and whether its e-mail already has an account; InvalidInvite if the link
        is unknown, used or expired."""
        invite = self._find(token)
        has_account = (
            self.session.scalar(select(User.id).where(User.email == invite.email)) is not None
        )
        return invite, has_account

    def _find(self, token: object) -> TownInvite:
        if not isinstance(token, str) or not 20 <= len(token) <= 100:
            raise InvalidInvite(N_("This link is invalid or has expired."))
        invite = self.session.scalar(
            select(TownInvite).where(
                TownInvite.token_hash == _hash(token),
                TownInvite.used_at.is_(None),
                TownInvite.expires_at > self._now(),
            )
        )
        if invite is None:
            raise InvalidInvite(N_("This link is invalid or has expired."))
        return invite

    def accept(
        self,
        token: object,
        password: object = None,
        display_name: object = "",
        signed_in: User | None = None,
    ) -> User:
        """Use the link (once: one conditional UPDATE): make the account if the invited e-mail
        has none (with `password`, verified: the link came to that mailbox), give it the town's
        admin role, and return the user to sign in. Commits. InvalidInvite if the link is not
        usable; InvalidInput for a weak password (the link stays usable then). An existing
        account whose address nobody confirmed gets no role (UnconfirmedAccount, the link stays
        usable): anyone could have signed up with the address before its owner, and knows its
        password; a password reset proves the mailbox and ends that. An existing account is
        signed in to only with its password, or when `signed_in` is that account already
        (InvalidCredentials, the link stays usable): a forwarded link must not open an account
        that may hold more than this town (other towns, its wallet)."""
        invite = self._find(token)
        user = self.session.scalar(select(User).where(User.email == invite.email))
        if user is None:
            user = self.accounts.signup(invite.email, password, display_name, verified=True)
        elif user.email_verified_at is None:
            raise UnconfirmedAccount(
                N_(
                    "An account with this email address exists, but its address was never"
                    " confirmed. Reset its password from the sign-in page (the mail proves the"
                    " address), then open this link again."
                ),
                field="email",
            )
        elif signed_in is None or signed_in.id != user.id:
            require_password(user, password)
        now = self._now()
        done = self.session.execute(
            update(TownInvite)
            .where(TownInvite.id == invite.id, TownInvite.used_at.is_(None))
            .values(used_at=now, used_by=user.id)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            self.session.rollback()
            raise InvalidInvite(N_("This link is invalid or has expired."))
        grant_town_role(user, invite.town_id, invite.role)
        self.session.add(
            AuditLog(
                actor=f"user:{user.id}",
                action="town.role.grant",  # as the console's People page writes it
                subject_type="user",
                subject_id=str(user.id),
                details={"town_id": invite.town_id, "role": invite.role, "via": "invite"},
            )
        )
        self.session.commit()
        return user

    def town_slug(self, invite: TownInvite) -> str:
        town = self.session.get(Town, invite.town_id)
        return town.slug if town is not None else ""


def town_setup_service() -> TownSetupService:
    app = current_app
    return TownSetupService(get_db().session(), app.extensions["settings"], outbox_service())


def invite_service() -> InviteService:
    from backend.accounts.services import account_service

    return InviteService(get_db().session(), account_service())
