"""The shop's catalogue: listings with their chain supply, NFT metadata, "my collection" and
ticket codes. Check-in is in backend/shop/checkin.py, generated images in backend/shop/images.py.

Chain facts (remaining supply, owners, perk uses) come from the chain gateway and the indexer's
projection; SQL mirrors what the shop shows.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.accounts.models import Address, User
from backend.chain import api as chain
from backend.chain.api import ChainUnavailable, Web3Gateway, YenToken, YenTokenUnavailable
from backend.core.db import utcnow
from backend.core.errors import N_, NotFound, ServiceUnavailable
from backend.core.safety import is_local_test_chain
from backend.core.times import as_utc
from backend.regions.models import Town
from backend.shop.checkin_state import fail_lost_check_ins
from backend.shop.errors import InsufficientBalance, NotYourTicket, TicketRefused
from backend.shop.models import CheckIn, Collection, Listing, Order, Perk, PerkUse

log = logging.getLogger(__name__)

TICKET_PREFIX = "FT1"
TICKET_TTL = dt.timedelta(hours=12)
ACTIVE_TX_STATES = ("queued", "sent", "replaced")


def sale_key(town: Town) -> str:
    return f"towns.{town.slug}.PrimarySale"


YEN_OFF = N_("Payments in yen stablecoin are not available on this platform.")


def yen_token(chain: Web3Gateway) -> YenToken:
    """The chain's yen stablecoin (YEN_TOKEN_* settings; the test token on a local chain);
    ServiceUnavailable with a clear message when the chain has none."""
    try:
        return chain.yen_token()
    except YenTokenUnavailable as exc:
        raise ServiceUnavailable(YEN_OFF, code="yen_token_off") from exc


@dataclass(frozen=True)
class YenLabel:
    """How pages name the chain's yen token: the local test token is test money ("test yen",
    テスト用の円); a configured token (JPYC, for instance) by its symbol."""

    symbol: str
    test: bool


def yen_label(chain: Web3Gateway) -> YenLabel | None:
    """The chain's yen token as pages name it; None when there is none or the node is away."""
    try:
        yen = chain.yen_token()
    except Exception:  # noqa: BLE001 - no token, no node, no deployments: nothing to name
        return None
    return YenLabel(yen.symbol, yen.test)


def not_enough_yen(chain: Web3Gateway, balance: int, amount: int) -> InsufficientBalance:
    """The refusal of a yen payment over the balance, naming the token as pages do."""
    yen = yen_label(chain)
    if yen is None or yen.test:
        return InsufficientBalance(
            N_("Not enough test yen: you have %(balance)s and this costs %(amount)s."),
            balance=balance,
            amount=amount,
        )
    return InsufficientBalance(
        N_("Not enough %(symbol)s: you have %(balance)s and this costs %(amount)s."),
        symbol=yen.symbol,
        balance=balance,
        amount=amount,
    )


def token_key(town: Town, payment_kind: str, chain: Web3Gateway) -> str:
    """The ERC-20 a listing is priced in (card listings are recorded against the yen token)."""
    if payment_kind == "points":
        return f"towns.{town.slug}.RegionPoints"
    return yen_token(chain).contract


def token_scale(payment_kind: str, chain: Web3Gateway) -> int:
    """Token units per point or per yen: a price of `p` is `p * scale` units on chain."""
    return 1 if payment_kind == "points" else 10 ** yen_token(chain).decimals


@dataclass
class PerkView:
    perk_id: int
    name: str
    uses_per_token: int
    uses_left: int | None = None
    valid_until: dt.datetime | None = None


@dataclass
class ListingView:
    listing: Listing
    remaining: int | None
    is_open: bool
    price: int


@dataclass
class CollectionView:
    collection: Collection
    listings: list[ListingView]
    perks: list[PerkView]
    image_url: str


def is_test_chain(chain: Web3Gateway) -> bool:
    """Whether the node answers with a local test chain's id (test checkout, faucet)."""
    try:
        return is_local_test_chain(int(chain.chain_id))
    except Exception:
        return False


class ShopService:
    """What a town's shop shows, NFT metadata, and a holder's collection with ticket codes."""

    def __init__(
        self,
        session: Session,
        *,
        chain: Callable[[], Web3Gateway],
        ticket_key: str,
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        """`ticket_key` signs ticket codes: the key derived from the app's SECRET_KEY for them
        (backend/core/purpose_keys.py). `chain` gives the chain gateway when it is needed."""
        self.session = session
        self._chain = chain
        self.secret = ticket_key
        self._now = now

    # ----------------------------------------------------------------- shop

    def town(self, slug: str) -> Town:
        t = self.session.scalar(select(Town).where(Town.slug == slug))
        if t is None:
            raise NotFound(N_("There is no town called %(slug)s."), slug=slug)
        return t

    def chain_listing(self, chain_listing_id: int, town: Town) -> dict[str, int] | None:
        """PrimarySale.listing(id) as a dict, or None when the chain does not answer."""
        try:
            row = self._chain().read(sale_key(town), "listing", chain_listing_id)
        except (ChainUnavailable, Exception) as exc:  # an unreachable node must not break a page
            log.warning("listing %s: chain read failed: %s", chain_listing_id, exc)
            return None
        return {
            "wallet_cap": int(row[5]),
            "supply": int(row[6]),
            "sold": int(row[7]),
            "paused": bool(row[10]),
            "price": int(row[11]),
        }

    def perks(self, collection: Collection, locale: str) -> list[PerkView]:
        return self.perks_of([collection.id], locale).get(collection.id, [])

    def perks_of(self, collection_ids: list[int], locale: str) -> dict[int, list[PerkView]]:
        """The perks of each collection, by perk id (one query)."""
        out: dict[int, list[PerkView]] = {}
        if not collection_ids:
            return out
        rows = self.session.scalars(
            select(Perk)
            .where(Perk.collection_id.in_(collection_ids))
            .order_by(Perk.collection_id, Perk.perk_id)
        )
        for p in rows:
            out.setdefault(p.collection_id, []).append(
                PerkView(p.perk_id, p.name(locale), p.uses_per_token, None, p.valid_until)
            )
        return out

    def pending_quantity(self, listing: Listing) -> int:
        """Tokens of `listing` in orders the chain has not confirmed yet."""
        return self.pending_quantities([listing.id]).get(listing.id, 0)

    def pending_quantities(self, listing_ids: list[int]) -> dict[int, int]:
        """Tokens in orders the chain has not confirmed yet, per listing (one query)."""
        if not listing_ids:
            return {}
        rows = self.session.execute(
            select(Order.listing_id, func.coalesce(func.sum(Order.quantity), 0))
            .where(
                Order.listing_id.in_(listing_ids),
                Order.status.in_(("pending_payment", "processing")),
            )
            .group_by(Order.listing_id)
        )
        return {int(i): int(n or 0) for i, n in rows}

    def remaining(self, listing: Listing, pending: int | None = None) -> int | None:
        """What is left to sell: the listing's supply less the tokens the indexer saw sold
        (`Listing.sold`) and those in pending orders; None before the listing is on chain.
        Read from SQL only: the shop page never asks the node (issue 16 §1)."""
        if listing.chain_listing_id is None:
            return None
        if pending is None:
            pending = self.pending_quantity(listing)
        return max(0, int(listing.supply) - int(listing.sold or 0) - pending)

    def sale_clock(self, town: Town) -> dt.datetime:
        """ "Now" for a listing's sale window: the chain's clock, since PrimarySale checks the
        window (and the allowlist voucher's deadline, the window's end) against
        block.timestamp; as pages read it without asking the node (`chain_clock`: the indexer's
        newest block, this process's last read of the chain's clock, this server's clock)."""
        seen = getattr(self._chain(), "seen_chain_now", None)
        clock = chain.chain_clock(self.session, town.chain_id, seen() if seen else None)
        return dt.datetime.fromtimestamp(clock, dt.UTC)

    def shop(self, town: Town, locale: str) -> list[CollectionView]:
        now = self.sale_clock(town)
        out = []
        collections = self.session.scalars(
            select(Collection).where(Collection.town_id == town.id).order_by(Collection.id)
        ).all()
        listings: dict[int, list[Listing]] = {}
        for li in self.session.scalars(
            select(Listing).where(Listing.town_id == town.id).order_by(Listing.id)
        ):
            listings.setdefault(li.collection_id, []).append(li)
        pending = self.pending_quantities([li.id for ls in listings.values() for li in ls])
        perks = self.perks_of([c.id for c in collections], locale)
        for c in collections:
            views = [
                ListingView(
                    listing=li,
                    remaining=self.remaining(li, pending.get(li.id, 0)),
                    is_open=li.chain_listing_id is not None and li.starts_at <= now < li.ends_at,
                    price=int(li.price),
                )
                for li in listings.get(c.id, [])
            ]
            out.append(CollectionView(c, views, perks.get(c.id, []), collection_image_path(c)))
        return out

    # ----------------------------------------------------------------- metadata

    def collection(self, town_slug: str, collection_slug: str) -> Collection:
        c = self.session.scalar(
            select(Collection)
            .join(Town, Town.id == Collection.town_id)
            .where(Town.slug == town_slug, Collection.slug == collection_slug)
        )
        if c is None or c.contract_address is None:
            raise NotFound(N_("There is no such collection."))
        return c

    def owner_of(self, collection: Collection, token_id: int) -> str | None:
        """The token's current owner from the indexer's projection (None: not minted/burned)."""
        if collection.contract_address is None:
            return None
        return chain.owner_of(self.session, collection.contract_address, token_id)

    def metadata(self, town_slug: str, collection_slug: str, token_id: int, base_url: str) -> dict:
        """OpenSea-compatible JSON of a minted token; NotFound for a token not minted."""
        c = self.collection(town_slug, collection_slug)
        if token_id < 1 or self.owner_of(c, token_id) is None:
            raise NotFound(N_("This token has not been minted."), token_id=token_id)
        perks = self.perks(c, "en")
        attributes: list[dict[str, Any]] = [
            {"trait_type": "Category", "value": c.category.replace("_", " ").title()},
            {"trait_type": "Town", "value": c.town.name_en},
        ]
        attributes += [
            {"trait_type": "Perk", "value": f"{p.name} ({p.uses_per_token} uses)"} for p in perks
        ]
        return {
            "name": f"{c.name_en} #{token_id}",
            "description": c.description_en or c.name_en,
            "image": base_url.rstrip("/") + collection_image_path(c),
            "external_url": f"{base_url.rstrip('/')}/towns/{town_slug}",
            "attributes": attributes,
        }

    # ----------------------------------------------------------------- my collection

    def addresses(self, user: User) -> list[str]:
        return [
            a.address
            for a in self.session.scalars(select(Address).where(Address.user_id == user.id))
        ]

    def uses_left(self, collection: Collection, token_id: int, perk_id: int) -> int | None:
        try:
            left = int(
                self._chain().read(
                    collection.contract_address or "",
                    "perkUsesLeft",
                    token_id,
                    perk_id,
                    artifact_name="FanCollection",
                )
            )
        except Exception as exc:  # the page still shows the token when the node is away
            log.warning("perkUsesLeft failed: %s", exc)
            return None
        # A check-in whose call failed on chain is no use: it must not count as one.
        fail_lost_check_ins(
            self.session, CheckIn.collection_id == collection.id, CheckIn.token_id == token_id
        )
        pending = self.session.scalar(
            select(func.count(CheckIn.id)).where(
                CheckIn.collection_id == collection.id,
                CheckIn.token_id == token_id,
                CheckIn.perk_id == perk_id,
                CheckIn.status == "processing",
            )
        )
        return max(0, left - int(pending or 0))

    def indexed_uses_left(
        self, tokens: list[tuple[Collection, int, list[PerkView]]], now: dt.datetime
    ) -> None:
        """Set each perk's `uses_left` from SQL, as FanCollection.perkUsesLeft counts it: 0 once
        the perk's valid-until has passed by the chain's clock `now`, else its uses per token
        less the uses the indexer saw (PerkUse) and the check-ins still processing (those whose
        call failed on chain made failed first). Three queries for all `tokens` (collection,
        token id, its perks); the node is not asked."""
        if not tokens:
            return
        contracts = sorted({str(c.contract_address) for c, _t, _p in tokens})
        ids = sorted({t for _c, t, _p in tokens})
        collection_ids = sorted({c.id for c, _t, _p in tokens})
        # A check-in whose call failed on chain is no use: it must not count as one.
        fail_lost_check_ins(
            self.session, CheckIn.collection_id.in_(collection_ids), CheckIn.token_id.in_(ids)
        )
        used = {
            (str(u.contract_address), int(u.token_id), int(u.perk_id)): int(u.used)
            for u in self.session.scalars(
                select(PerkUse).where(
                    PerkUse.contract_address.in_(contracts), PerkUse.token_id.in_(ids)
                )
            )
        }
        pending = {
            (int(c), int(t), int(p)): int(n)
            for c, t, p, n in self.session.execute(
                select(CheckIn.collection_id, CheckIn.token_id, CheckIn.perk_id, func.count())
                .where(
                    CheckIn.collection_id.in_(collection_ids),
                    CheckIn.token_id.in_(ids),
                    CheckIn.status == "processing",
                )
                .group_by(CheckIn.collection_id, CheckIn.token_id, CheckIn.perk_id)
            )
        }
        for c, token_id, perks in tokens:
            for p in perks:
                if p.valid_until is not None and as_utc(p.valid_until) < now:
                    p.uses_left = 0
                    continue
                done = used.get((str(c.contract_address), token_id, p.perk_id), 0)
                waiting = pending.get((c.id, token_id, p.perk_id), 0)
                p.uses_left = max(0, p.uses_per_token - done - waiting)

    def my_collection(self, user: User, locale: str) -> list[dict[str, Any]]:
        """The user's tokens in every town's collections, with perks, uses left (from SQL:
        `indexed_uses_left`) and a ticket code bound to the current holder."""
        addrs = self.addresses(user)
        if not addrs:
            return []
        owned = chain.tokens_owned_by(self.session, addrs)
        collections: dict[str, list[Collection]] = {}
        if owned:
            for c in self.session.scalars(
                select(Collection).where(
                    Collection.contract_address.in_({t.contract_address for t in owned})
                )
            ):
                collections.setdefault(str(c.contract_address), []).append(c)
        rows = sorted(
            ((t, c) for t in owned for c in collections.get(t.contract_address, [])),
            key=lambda row: (row[1].id, row[0].token_id),
        )
        out = []
        perks_of = self.perks_of(sorted({c.id for _t, c in rows}), locale)
        tokens = [
            (c, int(t.token_id), [replace(p) for p in perks_of.get(c.id, [])]) for t, c in rows
        ]
        if tokens:
            self.indexed_uses_left(tokens, self.sale_clock(tokens[0][0].town))
        for (owner_row, c), (_c, token_id, perks) in zip(rows, tokens, strict=True):
            code = self.ticket_code(c, token_id, owner_row.owner)
            out.append(
                {
                    "collection": c,
                    "town": c.town,
                    "token_id": token_id,
                    "holder": owner_row.owner,
                    "perks": perks,
                    "ticket_code": code,
                    "image_url": collection_image_path(c),
                }
            )
        return out

    # ----------------------------------------------------------------- tickets

    def _sign(self, body: str) -> str:
        return hmac.new(self.secret.encode(), body.encode(), hashlib.sha256).hexdigest()[:32]

    def ticket_code(
        self, collection: Collection, token_id: int, holder: str, now: dt.datetime | None = None
    ) -> str:
        """A signed code for a ticket QR: town, collection, token, holder and expiry. It is
        refused after the expiry or once the token has another holder."""
        exp = int(((now or self._now()) + TICKET_TTL).timestamp())
        payload = {
            "t": collection.town.slug,
            "c": collection.id,
            "i": token_id,
            "h": holder,
            "e": exp,
        }
        body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode())
        text = body.decode().rstrip("=")
        return f"{TICKET_PREFIX}.{text}.{self._sign(text)}"

    def ticket_code_for(self, user: User, collection_id: int, token_id: int) -> str:
        """The ticket code of a token the user holds; NotYourTicket otherwise."""
        c = self.session.get(Collection, collection_id)
        if c is None or c.contract_address is None:
            raise NotYourTicket(N_("This is not your ticket."))
        owner = self.owner_of(c, token_id)
        if owner is None or owner not in self.addresses(user):
            raise NotYourTicket(N_("This is not your ticket."))
        return self.ticket_code(c, token_id, owner)

    def read_ticket(self, code: object, now: dt.datetime | None = None) -> dict[str, Any]:
        """Decode and verify a ticket code; TicketRefused with the reason otherwise."""
        if not isinstance(code, str) or code.count(".") != 2:
            raise TicketRefused(N_("This is not a valid ticket code."), code="invalid_ticket")
        prefix, body, sig = code.strip().split(".")
        if prefix != TICKET_PREFIX or not hmac.compare_digest(sig, self._sign(body)):
            raise TicketRefused(N_("This is not a valid ticket code."), code="invalid_ticket")
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        if int(data["e"]) < (now or self._now()).timestamp():
            raise TicketRefused(
                N_("This ticket code has expired: ask the holder to open it again."),
                code="ticket_expired",
            )
        return data


def image_path(town_slug: str, collection_slug: str) -> str:
    return f"/meta/{town_slug}/{collection_slug}/image.svg"


def collection_image_path(c: Collection) -> str:
    """The collection's image: the one uploaded in the staff console, else its generated card."""
    if c.image_type:
        return f"/meta/{c.town.slug}/{c.slug}/image"
    return image_path(c.town.slug, c.slug)
