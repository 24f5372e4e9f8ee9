"""The staff console's collections (issue 13 §2, docs/adr/0014-console-collections.md): town staff
create a collection, list it on the town's PrimarySale (with an allowlist), and set its perks.

Everything that goes on chain is an outbox call with a deterministic key, so a retried request or
a re-run handler queues nothing twice:

- a collection: `createCollection` on the factory by the `collections` role key, with that key as
  the collection's admin; when CollectionCreated is indexed (shop/handlers.py) the same key grants
  MINTER_ROLE to the town's sale, VERIFIER_ROLE to the `verifier` key and PERK_ADMIN_ROLE to
  itself, sets the first perks, grants DEFAULT_ADMIN_ROLE to the town's timelock and renounces
  its own admin role (`queue_setup`);
- a listing: `createListing` by the `catalogue` key, which only local chains have (elsewhere a
  listing needs the town's vote: ListingNeedsVote);
- a perk: `setPerk` by the `collections` key (PERK_ADMIN_ROLE);
- an allowlist: stored rows; the worker signs each buyer's EIP-712 voucher with the
  `voucher_signer` key (`sign_pending_vouchers`), which the buy paths attach (orders.py).

Every public method checks that the caller is the town's staff, validates everything before it
writes, and writes an audit row with its change in one commit (or changes nothing).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.accounts.models import User
from backend.accounts.roles import STAFF, require_town_role
from backend.chain import api as chain
from backend.chain.api import (
    FAILED_CALL_STATES,
    AuditEntry,
    ContractCall,
    OutboxService,
    Sender,
    Subject,
    SubjectCall,
    Web3Gateway,
)
from backend.core.db import utcnow
from backend.core.errors import N_, AppError, Conflict, InvalidInput, NotFound
from backend.core.idempotency import first_answer
from backend.core.models import AuditLog
from backend.core.numbers import db_id_or_none
from backend.core.times import as_utc
from backend.regions.models import Town
from backend.shop.allowlists import parse_allowlist, store_allowlist
from backend.shop.catalog import sale_key, token_key, token_scale
from backend.shop.categories import KEYS, index
from backend.shop.models import PAYMENT_KINDS, AllowlistEntry, Collection, Listing, Perk

COLLECTIONS_KEY = "collections"
CATALOGUE_KEY = "catalogue"
VOUCHER_KEY = "voucher_signer"
CARD_ONLY_PRICE = 2**256 - 1  # a card listing can never be bought with a token on chain
MAX_IMAGE_BYTES = 512 * 1024  # the request limit is 1 MiB (backend/core/web_security.py)
MAX_SUPPLY = 1_000_000
MAX_ROYALTY_BPS = 1_000  # 10 %
MAX_PRICE = 10**12
# What a card payment in yen may be (Stripe's limits for JPY): a card listing outside them could
# never be paid, and its buyers would meet "the card payment service refused the request".
CARD_MIN_YEN, CARD_MAX_YEN = 50, 99_999_999
MAX_WALLET_CAP = 100
MAX_PERK_USES = 1_000
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{1,39}")
_SYMBOL = re.compile(r"[A-Z0-9]{2,10}")
IMAGE_TYPES = {"image/png", "image/jpeg", "image/webp"}


class ListingNeedsVote(Conflict):
    """Listing creation needs the `catalogue` key, which only local chains configure."""

    code = "listing_needs_vote"


def image_type(data: bytes) -> str | None:
    """The image's type from its first bytes (PNG, JPEG or WebP), whatever its file name says."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _text(form: Mapping[str, Any], name: str, max_len: int, *, required: bool = True) -> str:
    value = form.get(name)
    value = value.strip() if isinstance(value, str) else ""
    if (required and not value) or len(value) > max_len or "\x00" in value:
        raise InvalidInput(
            N_("Fill in %(field)s (at most %(max)s characters)."), field=name, max=max_len
        )
    return value


def _int(form: Mapping[str, Any], name: str, low: int, high: int) -> int:
    raw = form.get(name)
    if isinstance(raw, bool):
        raw = None
    if isinstance(raw, str) and re.fullmatch(r"\s*\d{1,15}\s*", raw):
        raw = int(raw)
    if not isinstance(raw, int) or not low <= raw <= high:
        raise InvalidInput(
            N_("%(field)s must be a whole number from %(low)s to %(high)s."),
            field=name,
            low=low,
            high=high,
        )
    return raw


def _flag(form: Mapping[str, Any], name: str) -> bool:
    value = form.get(name)
    return value is True or (isinstance(value, str) and value.lower() in ("1", "on", "true", "yes"))


def _when(form: Mapping[str, Any], name: str, *, required: bool = True) -> dt.datetime | None:
    """A date-time from a form ("2026-12-24T18:00", JST when no offset is given) in UTC."""
    raw = form.get(name)
    if not required and (raw is None or raw == ""):
        return None
    try:
        value = dt.datetime.fromisoformat(str(raw).strip())
    except ValueError:
        raise InvalidInput(N_("%(field)s is not a date and time."), field=name) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone(dt.timedelta(hours=9)))
    return value.astimezone(dt.UTC)


def _key(user: User, key: object) -> str:
    if not isinstance(key, str) or not 8 <= len(key) <= 100:
        raise InvalidInput(N_("A request key of 8 to 100 characters is required."), field="key")
    return f"{user.id}:{key}"


_Row = TypeVar("_Row", Collection, Listing)


def _earlier_request(
    session: Session, model: type[_Row], request_key: str, owner: int
) -> _Row | None:
    """The row a person's earlier request with this key made, if it was made for the same
    town (a collection) or collection (a listing). The key is per person, and a person may be
    staff of several towns: the same key sent for another town or collection is refused, not
    answered with the other one's row (nothing is written)."""
    found = session.scalar(select(model).where(model.idempotency_key == request_key))
    if found is None:
        return None
    if isinstance(found, Collection) and found.town_id != owner:
        raise InvalidInput(N_("This request key was used for another town."), field="key")
    if isinstance(found, Listing) and found.collection_id != owner:
        raise InvalidInput(N_("This request key was used for another collection."), field="key")
    return found


@dataclass
class CollectionDetail:
    collection: Collection
    status: str  # creating | setting_up | live | failed
    calls: list[SubjectCall]
    listings: list[tuple[Listing, list[SubjectCall], int, int]]  # calls, allowlist, signed
    perks: list[tuple[Perk, str | None]]  # the state of its last setPerk


class CollectionConsole:
    """Collections, listings, perks and allowlists of a town, for its staff."""

    def __init__(
        self,
        session: Session,
        *,
        chain: Callable[[], Web3Gateway],
        outbox: Callable[[], OutboxService],
        public_url: str,
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.session = session
        self._chain = chain
        self._outbox = outbox
        self._public_url = public_url.rstrip("/")
        self._now = now

    # ----------------------------------------------------------------- reading

    def collections(self, user: User | None, town: Town) -> list[Collection]:
        require_town_role(user, town.id, STAFF)
        return list(
            self.session.scalars(
                select(Collection).where(Collection.town_id == town.id).order_by(Collection.id)
            )
        )

    def collection(self, user: User | None, town: Town, collection_id: object) -> Collection:
        require_town_role(user, town.id, STAFF)
        c = (
            self.session.get(Collection, collection_id)
            if isinstance(collection_id, int) and db_id_or_none(collection_id)
            else None
        )
        if c is None or c.town_id != town.id:
            raise NotFound(N_("There is no such collection."))
        return c

    def detail(self, user: User | None, town: Town, collection_id: object) -> CollectionDetail:
        c = self.collection(user, town, collection_id)
        calls = chain.calls_of_subject(self.session, "collection", c.id)
        listings = []
        for li in self.session.scalars(
            select(Listing).where(Listing.collection_id == c.id).order_by(Listing.id)
        ):
            counts = self.session.execute(
                select(func.count(AllowlistEntry.id), func.count(AllowlistEntry.signature)).where(
                    AllowlistEntry.listing_id == li.id
                )
            ).one()
            listings.append(
                (
                    li,
                    chain.calls_of_subject(self.session, "listing", li.id),
                    int(counts[0]),
                    int(counts[1]),
                )
            )
        perks = [
            (p, chain.outbox_state(self.session, p.outbox_tx_id) if p.outbox_tx_id else None)
            for p in self.session.scalars(
                select(Perk).where(Perk.collection_id == c.id).order_by(Perk.perk_id)
            )
        ]
        return CollectionDetail(c, self.status(c, calls), calls, listings, perks)

    @staticmethod
    def status(c: Collection, calls: list[SubjectCall]) -> str:
        """The set-up's progress from its calls: live once the renounce is confirmed."""
        if c.create_tx_id is None:
            return "live"  # a collection of the deployment
        if any(x.state in FAILED_CALL_STATES for x in calls):
            return "failed"
        if c.contract_address is None:
            return "creating"
        last = calls[-1] if calls else None
        if last is not None and last.function == "renounceRole" and last.state == "confirmed":
            return "live"
        return "setting_up"

    # ----------------------------------------------------------------- collections

    def create(
        self,
        user: User | None,
        town: Town,
        form: Mapping[str, Any],
        image: bytes | None,
        key: object,
    ) -> Collection:
        """Create a collection (queued on chain). Raises Forbidden (not the town's staff),
        InvalidInput (any field, the image, votes asked for), Conflict (the slug is taken).
        The same request key returns the first collection."""
        user = require_town_role(user, town.id, STAFF)
        request_key = _key(user, key)
        earlier = functools.partial(
            _earlier_request, self.session, Collection, request_key, town.id
        )
        first = earlier()
        if first is not None:
            return first
        category = form.get("category")
        if category not in KEYS:
            raise InvalidInput(N_("Choose a category."), field="category")
        slug = _text(form, "slug", 40)
        if not _SLUG.fullmatch(slug) or slug == "resident":
            raise InvalidInput(
                N_("The short name uses 2 to 40 lower-case letters, digits and hyphens."),
                field="slug",
            )
        symbol = _text(form, "symbol", 10).upper()
        if not _SYMBOL.fullmatch(symbol):
            raise InvalidInput(
                N_("The symbol uses 2 to 10 capital letters and digits."), field="symbol"
            )
        name_ja, name_en = _text(form, "name_ja", 120), _text(form, "name_en", 120)
        description_ja = _text(form, "description_ja", 2000, required=False)
        description_en = _text(form, "description_en", 2000, required=False)
        max_supply = _int(form, "max_supply", 1, MAX_SUPPLY)
        royalty_bps = _int(form, "royalty_bps", 0, MAX_ROYALTY_BPS)
        soulbound = _flag(form, "soulbound")
        if _flag(form, "votes"):
            raise InvalidInput(
                N_(
                    "A new collection cannot carry votes: only the collection the town's card"
                    " chamber was deployed with counts in the DAO."
                ),
                field="votes",
                code="votes_not_allowed",
            )
        kind = None
        if image:
            if len(image) > MAX_IMAGE_BYTES:
                raise InvalidInput(N_("The image is larger than 512 KB."), field="image")
            kind = image_type(image)
            if kind is None:
                raise InvalidInput(N_("The image must be a PNG, JPEG or WebP."), field="image")
        same_slug = self.session.scalar(
            select(Collection).where(Collection.town_id == town.id, Collection.slug == slug)
        )
        if same_slug is not None:
            # A twin of this request (same key) that committed since the look-up above gets
            # its answer, not a conflict: a double submit under load (seen in the race test).
            if same_slug.idempotency_key == request_key:
                return same_slug
            raise Conflict(N_("This town already has a collection called %(slug)s."), slug=slug)
        outbox = self._outbox()
        treasury = self._chain().address_of(f"towns.{town.slug}.TownTreasury")
        collection = Collection(
            town_id=town.id,
            slug=slug,
            name_ja=name_ja,
            name_en=name_en,
            description_ja=description_ja,
            description_en=description_en,
            category=category,
            max_supply=max_supply,
            symbol=symbol,
            royalty_bps=royalty_bps,
            soulbound=soulbound,
            votes=False,
            image_data=image if kind else None,
            image_type=kind,
            status="creating",
            idempotency_key=request_key,
            created_by_id=user.id,
        )

        def write() -> Collection:
            self.session.add(collection)
            self.session.flush()  # a concurrent twin's key (or slug) fails here, or at commit
            config = [
                name_en,
                symbol,
                f"{self._public_url}/meta/{town.slug}/{slug}/",
                max_supply,
                index(str(category)),
                soulbound,
                False,
                outbox.keys.role(COLLECTIONS_KEY),  # admin only for the set-up (ADR 0014)
                treasury,  # royalties go to the town
                royalty_bps,
            ]
            tx = outbox.enqueue(
                self.session,
                ContractCall("FanCollectionFactory", "createCollection", [config]),
                sender=Sender.role(COLLECTIONS_KEY, town_id=town.id),
                key=f"console:collection:{collection.id}:create",
                subject=Subject("collection", collection.id),
                audit=AuditEntry(
                    actor=f"user:{user.id}",
                    action="nft.collection.create",
                    subject_type="collection",
                    subject_id=str(collection.id),
                    reason=f"{slug}: {name_en}",
                    details={
                        "town_id": town.id,
                        "category": category,
                        "max_supply": max_supply,
                        "royalty_bps": royalty_bps,
                        "soulbound": soulbound,
                        "image": kind,
                    },
                ),
            )
            collection.create_tx_id = tx.id
            self.session.commit()
            return collection

        return first_answer(self.session, write, earlier)

    # ----------------------------------------------------------------- listings

    def add_listing(
        self,
        user: User | None,
        town: Town,
        collection_id: object,
        form: Mapping[str, Any],
        allowlist: bytes | None,
        key: object,
    ) -> Listing:
        """List a collection on the town's PrimarySale (queued on chain, by the `catalogue`
        key). Raises Forbidden, NotFound, InvalidInput (a field, the allowlist), Conflict (the
        collection is not on chain yet) and ListingNeedsVote (no catalogue key: a real chain)."""
        c = self.collection(user, town, collection_id)
        assert user is not None  # noqa: S101 - checked by collection()
        request_key = _key(user, key)
        earlier = functools.partial(_earlier_request, self.session, Listing, request_key, c.id)
        first = earlier()
        if first is not None:
            return first
        outbox = self._outbox()
        try:
            lister = outbox.keys.role(CATALOGUE_KEY)
        except AppError:
            raise ListingNeedsVote(
                N_(
                    "On this chain a listing is created by the town's vote (or its multisig):"
                    " the platform holds no listing key here."
                )
            ) from None
        del lister
        if c.contract_address is None:
            raise Conflict(
                N_("The collection is not on chain yet; list it once it is."),
                code="collection_not_ready",
            )
        kind = form.get("payment_kind")
        if kind not in PAYMENT_KINDS:
            raise InvalidInput(N_("Choose how it is paid."), field="payment_kind")
        price = _int(form, "price", 1, MAX_PRICE)
        supply = _int(form, "supply", 1, c.max_supply)
        wallet_cap = _int(form, "wallet_cap", 1, min(MAX_WALLET_CAP, supply))
        if kind == "card" and not (price >= CARD_MIN_YEN and price * wallet_cap <= CARD_MAX_YEN):
            raise InvalidInput(
                N_(
                    "Paid by card, one payment must be from %(low)s to %(high)s yen: change the"
                    " price or the number one buyer may take."
                ),
                field="price",
                low=f"{CARD_MIN_YEN:,}",
                high=f"{CARD_MAX_YEN:,}",
            )
        starts = _when(form, "starts_at")
        ends = _when(form, "ends_at")
        assert starts is not None and ends is not None  # noqa: S101 - required
        if ends <= starts or ends <= as_utc(self._now()):
            raise InvalidInput(
                N_("The sale must end after it starts, and in the future."), field="ends_at"
            )
        allowlist_only = _flag(form, "allowlist_only") or bool(allowlist)
        entries = parse_allowlist(self.session, allowlist) if allowlist else []
        if allowlist_only and not entries:
            raise InvalidInput(
                N_("Upload the allowlist: one e-mail or address per line."), field="allowlist"
            )
        sold = self.session.scalar(
            select(func.coalesce(func.sum(Listing.supply), 0)).where(Listing.collection_id == c.id)
        )
        if int(sold or 0) + supply > c.max_supply:
            raise InvalidInput(
                N_("The listings of this collection would pass its supply of %(max)s."),
                field="supply",
                max=c.max_supply,
            )
        gw = self._chain()
        treasury = gw.address_of(f"towns.{town.slug}.TownTreasury")
        token = gw.address_of(token_key(town, str(kind), gw))
        scale = token_scale(str(kind), gw)  # a yen token's units per yen (points: 1)
        listing = Listing(
            town_id=town.id,
            collection_id=c.id,
            payment_kind=kind,
            price=Decimal(price),
            supply=supply,
            wallet_cap=wallet_cap,
            starts_at=starts,
            ends_at=ends,
            allowlist_only=allowlist_only,
            idempotency_key=request_key,
        )

        def write() -> Listing:
            self.session.add(listing)
            self.session.flush()
            struct = [
                c.contract_address,
                0,
                int(starts.timestamp()),
                int(ends.timestamp()),
                token,
                wallet_cap,
                supply,
                0,
                treasury,
                allowlist_only,
                False,
                CARD_ONLY_PRICE if kind == "card" else price * scale,
            ]
            tx = outbox.enqueue(
                self.session,
                ContractCall(sale_key(town), "createListing", [struct]),
                sender=Sender.role(CATALOGUE_KEY, town_id=town.id),
                key=f"console:listing:{listing.id}:create",
                subject=Subject("listing", listing.id),
                audit=AuditEntry(
                    actor=f"user:{user.id}",
                    action="nft.listing",
                    subject_type="listing",
                    subject_id=str(listing.id),
                    amount=price,
                    reason=f"{c.slug} for {kind}",
                    details={
                        "town_id": town.id,
                        "supply": supply,
                        "wallet_cap": wallet_cap,
                        "allowlist": len(entries),
                    },
                ),
            )
            listing.outbox_tx_id = tx.id
            store_allowlist(self.session, listing, entries)
            self.session.commit()
            return listing

        return first_answer(self.session, write, earlier)

    # ----------------------------------------------------------------- allowlists

    def upload_allowlist(
        self, user: User | None, town: Town, listing_id: object, data: bytes | None
    ) -> int:
        """Add the e-mails / addresses of `data` to an allowlist-only listing's list; returns
        how many were new. Raises Forbidden, NotFound and InvalidInput (a bad line: nothing
        is added)."""
        require_town_role(user, town.id, STAFF)
        assert user is not None  # noqa: S101
        listing = (
            self.session.get(Listing, listing_id)
            if isinstance(listing_id, int) and db_id_or_none(listing_id)
            else None
        )
        if listing is None or listing.town_id != town.id:
            raise NotFound(N_("There is no such listing."))
        if not listing.allowlist_only:
            raise InvalidInput(N_("This listing is open to everyone."), field="allowlist")
        entries = parse_allowlist(self.session, data or b"")
        added = store_allowlist(self.session, listing, entries)
        self.session.add(
            AuditLog(
                actor=f"user:{user.id}",
                action="nft.allowlist",
                subject_type="listing",
                subject_id=str(listing.id),
                reason=f"{added} added to the allowlist",
                details={"town_id": town.id, "rows": len(entries), "added": added},
            )
        )
        self.session.commit()
        return added

    def sign_pending_vouchers(self, limit: int = 500) -> int:
        """Worker: sign the voucher of every allowlist row whose listing is on chain and that has
        none yet, with the `voucher_signer` key (SIGNER_ROLE on the town's PrimarySale)."""
        rows = self.session.execute(
            select(AllowlistEntry, Listing)
            .join(Listing, Listing.id == AllowlistEntry.listing_id)
            .where(AllowlistEntry.signature.is_(None), Listing.chain_listing_id.is_not(None))
            .order_by(AllowlistEntry.id)
            .limit(limit)
        ).all()
        if not rows:
            return 0
        outbox = self._outbox()
        for entry, listing in rows:
            typed = chain.voucher_typed_data(
                chain_id=outbox.chain_id,
                sale=outbox.address_of(sale_key(listing.town)),
                buyer=entry.address,
                listing_id=int(listing.chain_listing_id or 0),
                max_quantity=entry.max_quantity,
                nonce=entry.id,
                deadline=entry.deadline,
            )
            entry.signature = chain.sign_as_role(outbox, VOUCHER_KEY, typed)
        self.session.commit()
        return len(rows)

    # ----------------------------------------------------------------- perks

    def set_perk(
        self,
        user: User | None,
        town: Town,
        collection_id: object,
        form: Mapping[str, Any],
        key: object,
    ) -> Perk:
        """Add or change a perk (id, names, uses per token, valid until): the row now, setPerk
        on chain by the `collections` key (PERK_ADMIN_ROLE), or at the set-up for a collection
        still being created. Raises Forbidden, NotFound and InvalidInput."""
        c = self.collection(user, town, collection_id)
        assert user is not None  # noqa: S101
        request_key = _key(user, key)
        perk_id = _int(form, "perk_id", 1, 1000)
        name_ja, name_en = _text(form, "name_ja", 120), _text(form, "name_en", 120)
        uses = _int(form, "uses_per_token", 0, MAX_PERK_USES)
        until = _when(form, "valid_until", required=False)
        if until is not None and until <= as_utc(self._now()):
            raise InvalidInput(
                N_("The perk must be valid until a future date."), field="valid_until"
            )
        perk = self.session.scalar(
            select(Perk).where(Perk.collection_id == c.id, Perk.perk_id == perk_id)
        )
        if perk is None:
            perk = Perk(collection_id=c.id, perk_id=perk_id)
            self.session.add(perk)
        perk.name_ja, perk.name_en = name_ja, name_en
        perk.uses_per_token, perk.valid_until = uses, until
        self.session.flush()
        audit = AuditEntry(
            actor=f"user:{user.id}",
            action="nft.perk",
            subject_type="collection",
            subject_id=str(c.id),
            reason=f"perk {perk_id}: {uses} uses",
            details={
                "town_id": town.id,
                "perk_id": perk_id,
                "valid_until": until.isoformat() if until else None,
            },
        )
        if c.contract_address is not None:
            self._queue_perk(self._outbox(), c, perk, audit, request_key)
        else:
            self.session.add(AuditLog(**{**audit.__dict__, "amount": None}))
        self.session.commit()
        return perk

    def _queue_perk(
        self,
        outbox: OutboxService,
        c: Collection,
        perk: Perk,
        audit: AuditEntry | None,
        request_key: str,
    ) -> None:
        until = int(as_utc(perk.valid_until).timestamp()) if perk.valid_until else 0
        tx = outbox.enqueue(
            self.session,
            ContractCall(
                c.contract_address or "",
                "setPerk",
                [perk.perk_id, perk.uses_per_token, until],
                artifact_name="FanCollection",
            ),
            sender=Sender.role(COLLECTIONS_KEY, town_id=c.town_id),
            # one call per change (a double submit has the same request key)
            key=f"console:perk:{c.id}:{perk.perk_id}:{request_key}",
            subject=Subject("perk", perk.id),
            audit=audit,
        )
        perk.outbox_tx_id = tx.id

    # ----------------------------------------------------------------- set-up (worker)

    def queue_setup(self, c: Collection, address: str) -> None:
        """When the factory's CollectionCreated is indexed: record the address and queue the
        set-up by the `collections` key, which ends with the town's timelock as the only admin
        and the key renouncing (deterministic keys: a replayed event queues nothing twice)."""
        if c.contract_address is not None:
            return
        c.contract_address = address
        c.status = "setting_up"
        outbox = self._outbox()
        me = outbox.keys.role(COLLECTIONS_KEY)
        town = c.town
        timelock = outbox.address_of(f"towns.{town.slug}.TownTreasury")
        sender = Sender.role(COLLECTIONS_KEY, town_id=town.id)
        subject = Subject("collection", c.id)

        def call(step: str, function: str, *args: Any) -> None:
            outbox.enqueue(
                self.session,
                ContractCall(address, function, list(args), artifact_name="FanCollection"),
                sender=sender,
                key=f"console:collection:{c.id}:setup:{step}",
                subject=subject,
            )

        call(
            "minter", "grantRole", chain.role_hash("MINTER_ROLE"), outbox.address_of(sale_key(town))
        )
        call(
            "verifier", "grantRole", chain.role_hash("VERIFIER_ROLE"), outbox.keys.role("verifier")
        )
        call("perk_admin", "grantRole", chain.role_hash("PERK_ADMIN_ROLE"), me)
        for perk in self.session.scalars(
            select(Perk).where(Perk.collection_id == c.id).order_by(Perk.perk_id)
        ):
            self._queue_perk(outbox, c, perk, None, "setup")
        call("admin", "grantRole", chain.role_hash("DEFAULT_ADMIN_ROLE"), timelock)
        call("renounce", "renounceRole", chain.role_hash("DEFAULT_ADMIN_ROLE"), me)
