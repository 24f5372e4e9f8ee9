"""Orders: buy a listing with points or test yen (permit + buy, signed by the user's built-in
account and relayed gaslessly) or by card (provider checkout; the mint follows the provider's
webhook, see backend/shop/card_payments.py). Paying from an external wallet is in
backend/shop/wallet_orders.py.

Every public method is one unit of work: it commits, or raises an AppError and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import func, select, true
from sqlalchemy.orm import Session

from backend.accounts.models import CUSTODIAL, Address, User
from backend.accounts.roles import require_user
from backend.accounts.services import AccountService
from backend.chain import api as chain
from backend.chain.api import (
    AuditEntry,
    ChainUnavailable,
    ContractCall,
    OutboxService,
    Sender,
    Subject,
    Web3Gateway,
)
from backend.core.db import utcnow
from backend.core.errors import (
    N_,
    AppError,
    Conflict,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
)
from backend.core.idempotency import first_answer
from backend.core.numbers import db_id_or_none
from backend.core.times import as_utc
from backend.shop.allowlists import voucher_for
from backend.shop.catalog import ShopService, not_enough_yen, sale_key, token_key, token_scale
from backend.shop.errors import (
    InsufficientBalance,
    NotOnSale,
    SoldOut,
    UnknownListing,
    WalletCapExceeded,
)
from backend.shop.models import Listing, Order
from backend.shop.providers import CheckoutOrder, PaymentProvider
from backend.shop.supply import remaining as supply_left
from backend.shop.supply import reserve

PERMIT_TTL = 3600  # seconds of the chain's clock (OrderService.chain_now)
ACTIVE_TX_STATES = ("queued", "sent", "replaced")
PERMIT_TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "Permit": [
        {"name": "owner", "type": "address"},
        {"name": "spender", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
}


@dataclass
class PlacedOrder:
    order: Order
    redirect_url: str
    created: bool


def order_json(order: Order) -> dict[str, Any]:
    return {
        "id": order.public_id,
        "status": order.status,
        "payment_kind": order.payment_kind,
        "listing_id": order.listing_id,
        "quantity": order.quantity,
        "amount": int(order.amount),
        "first_token_id": order.first_token_id,
        "error": order.error,
    }


def next_url(order: Order) -> str:
    if order.status == "pending_payment" and order.provider == "test":
        return f"/shop/test-checkout/{order.public_id}"
    return f"/shop/orders/{order.public_id}"


def mint_audit(order: Order, listing: Listing, actor: str) -> AuditEntry:
    return AuditEntry(
        actor=actor,
        action="nft.mint",
        subject_type="order",
        subject_id=order.public_id,
        amount=int(order.amount),
        reason=f"{order.quantity} x {listing.collection.slug} paid by {order.payment_kind}",
        details={
            "listing": listing.chain_listing_id,
            "to": order.buyer_address,
            "payment_ref": order.payment_ref,
        },
    )


class OrderService:
    """Placing and reading orders. `provider` gives the card provider, `accounts` signs a
    built-in account's permit, `public_url` is where the provider sends the buyer back."""

    def __init__(
        self,
        session: Session,
        shop: ShopService,
        *,
        chain: Callable[[], Web3Gateway],
        outbox: Callable[[], OutboxService],
        provider: Callable[[], PaymentProvider],
        accounts: AccountService,
        public_url: str,
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.session = session
        self.shop = shop
        self._chain = chain
        self._outbox = outbox
        self._provider = provider
        self.accounts = accounts
        self._public_url = public_url.rstrip("/")
        self._now = now

    # ----------------------------------------------------------------- placing

    def read_int(self, contract: str, fn: str, *args: Any, artifact: str | None = None) -> int:
        try:
            return int(self._chain().read(contract, fn, *args, artifact_name=artifact))
        except ChainUnavailable:
            raise ServiceUnavailable(
                N_("The shop cannot be reached right now; try again soon.")
            ) from None

    def chain_now(self) -> int:
        """The chain's clock (Unix seconds): permits' deadlines are checked against
        block.timestamp, so they start from it and not from this server's wall clock."""
        try:
            return self._chain().chain_now()
        except ChainUnavailable:
            raise ServiceUnavailable(
                N_("The shop cannot be reached right now; try again soon.")
            ) from None

    def buyer_address(self, user: User, kind: str) -> Address:
        rows = self.session.scalars(
            select(Address).where(Address.user_id == user.id).order_by(Address.id)
        ).all()
        custodial = [a for a in rows if a.kind == CUSTODIAL]
        if custodial:
            return custodial[0]
        if kind == "card" and rows:
            return rows[0]
        raise InvalidInput(
            N_("Paying this way needs an account with a built-in wallet; pay by card instead."),
            code="no_builtin_account",
        )

    def replay(
        self, user: User, idempotency_key: object, listing_id: object, quantity: object
    ) -> PlacedOrder | None:
        """The order this request key already placed (None: a new key), for every way of
        placing one. Raises InvalidInput (not a key of 8-100 characters) and Conflict (the key
        placed another order)."""
        if not isinstance(idempotency_key, str) or not 8 <= len(idempotency_key) <= 100:
            raise InvalidInput(N_("A request key of 8 to 100 characters is required."))
        existing = self.session.scalar(
            select(Order).where(Order.user_id == user.id, Order.idempotency_key == idempotency_key)
        )
        if existing is None:
            return None
        if existing.listing_id != listing_id or existing.quantity != quantity:
            raise Conflict(N_("This request key was already used for another order."))
        return PlacedOrder(existing, next_url(existing), created=False)

    def place(
        self, user: User | None, listing_id: object, quantity: object, idempotency_key: object
    ) -> PlacedOrder:
        """Place an order for `quantity` tokens of a listing. Points and test yen are paid at
        once (permit + buy relayed for the user); a card order returns the checkout URL.

        Raises AuthenticationRequired, InvalidInput (key, quantity), UnknownListing, NotOnSale,
        SoldOut, WalletCapExceeded, InsufficientBalance, Conflict (the key was used for another
        order) and ServiceUnavailable (chain down). The same key returns the first order.
        """
        user = user or require_user()
        replayed = self.replay(user, idempotency_key, listing_id, quantity)
        if replayed is not None:
            return replayed
        # A twin with this key may commit after the look-up above and use the stock, the wallet
        # cap or the balance: the refusal that follows gives way to the twin's order (one key,
        # one answer), as a lost race on the key's UNIQUE constraint does.
        return first_answer(
            self.session,
            lambda: self._place_new(user, listing_id, quantity, idempotency_key),
            lambda: self.replay(user, idempotency_key, listing_id, quantity),
            also=(AppError,),
        )

    def _place_new(
        self, user: User, listing_id: object, quantity: object, idempotency_key: object
    ) -> PlacedOrder:
        listing = self.listing_on_sale(listing_id, quantity)
        quantity = cast(int, quantity)  # _listing checked it is an int within the wallet cap
        buyer = self.buyer_address(user, listing.payment_kind)
        # An allowlist-only listing: refused here, before anything is sent, for a buyer not on
        # the list (card payments skip the voucher on chain, so the check is this one).
        voucher = voucher_for(self.session, listing, buyer.address)
        self.check_supply(listing, quantity, buyer.address)
        amount = int(listing.price) * quantity
        public_id = uuid.uuid4().hex
        order = Order(
            public_id=public_id,
            user_id=user.id,
            idempotency_key=idempotency_key,
            listing_id=listing.id,
            quantity=quantity,
            amount=Decimal(amount),
            payment_kind=listing.payment_kind,
            buyer_address=buyer.address,
            payment_ref=f"ord_{public_id}",
        )

        def write() -> PlacedOrder:
            redirect = f"/shop/orders/{public_id}"
            if listing.payment_kind == "card":
                provider = self._provider()
                order.status = "pending_payment"
                order.provider = provider.name
                self.session.add(order)
                self.session.flush()  # a concurrent twin's key fails here, or at the commit
                redirect = provider.create_checkout(self._checkout(order, listing))
            else:
                self._pay_with_token(user, order, listing, buyer, amount, voucher)
            # Last before the commit: the listing's stock row stays locked only till then.
            reserve(self.session, listing, order)
            self.session.commit()
            return PlacedOrder(order, redirect, created=True)

        return write()

    def listing_on_sale(self, listing_id: object, quantity: object) -> Listing:
        """The listing, if it is on sale now and `quantity` is within its wallet cap."""
        if isinstance(listing_id, bool) or not isinstance(listing_id, int):
            raise InvalidInput(N_("Choose something to buy."), field="listing_id")
        # An id no row can have (past 2^31-1) is simply unknown, not a database overflow.
        listing = self.session.get(Listing, listing_id) if db_id_or_none(listing_id) else None
        if listing is None:
            raise UnknownListing(N_("This item is not in the shop."))
        if (
            isinstance(quantity, bool)
            or not isinstance(quantity, int)
            or not (1 <= quantity <= listing.wallet_cap)
        ):
            raise InvalidInput(
                N_("Choose a quantity from 1 to %(max)s."), field="quantity", max=listing.wallet_cap
            )
        # The chain's clock: PrimarySale refuses a buy outside the window by block.timestamp.
        now = dt.datetime.fromtimestamp(self.chain_now(), dt.UTC)
        starts, ends = as_utc(listing.starts_at), as_utc(listing.ends_at)
        if listing.chain_listing_id is None or not starts <= now < ends:
            raise NotOnSale(N_("This item is not on sale now."))
        return listing

    def check_supply(self, listing: Listing, quantity: int, buyer: str) -> None:
        """Refuse a quantity over what is left or over the buyer's per-wallet cap: the early
        answer. What is left is the supply less what orders hold (backend/shop/supply.py), and
        never more than the chain has left (tokens bought outside the platform). The order
        takes its quantity only at its commit (`reserve`), which is what holds under a rush."""
        town = listing.town
        assert listing.chain_listing_id is not None  # noqa: S101 - checked by _listing
        on_chain = self.shop.chain_listing(listing.chain_listing_id, town)
        if on_chain is None:
            raise ServiceUnavailable(N_("The shop cannot be reached right now; try again soon."))
        if on_chain["paused"]:
            raise NotOnSale(N_("This item is not on sale now."))
        remaining = min(supply_left(self.session, listing), on_chain["supply"] - on_chain["sold"])
        if remaining <= 0:
            raise SoldOut(N_("Sold out."), remaining=0)
        if quantity > remaining:
            raise SoldOut(N_("Only %(remaining)s left."), remaining=remaining)
        minted = self.read_int(sale_key(town), "mintedBy", listing.chain_listing_id, buyer)
        pending_mine = self.session.scalar(
            select(func.coalesce(func.sum(Order.quantity), 0)).where(
                Order.listing_id == listing.id,
                Order.buyer_address == buyer,
                Order.status.in_(("pending_payment", "processing")),
            )
        )
        left = listing.wallet_cap - minted - int(pending_mine or 0)
        if quantity > left:
            raise WalletCapExceeded(
                N_("You can buy at most %(cap)s of these; %(left)s more for you."),
                cap=listing.wallet_cap,
                left=max(left, 0),
            )

    def _checkout(self, order: Order, listing: Listing) -> CheckoutOrder:
        base = self._public_url
        return CheckoutOrder(
            public_id=order.public_id,
            payment_ref=order.payment_ref,
            amount_yen=int(order.amount),
            quantity=order.quantity,
            description=listing.collection.name_en,
            success_url=f"{base}/shop/orders/{order.public_id}",
            cancel_url=f"{base}/towns/{listing.town.slug}",
        )

    def _pay_with_token(
        self,
        user: User,
        order: Order,
        listing: Listing,
        buyer: Address,
        amount: int,
        voucher: list[Any],
    ) -> None:

        town = listing.town
        token = token_key(town, listing.payment_kind, self._chain())
        # Points are whole units; a yen token's units are 10**decimals to the yen.
        scale = token_scale(listing.payment_kind, self._chain())
        balance = self.read_int(token, "balanceOf", buyer.address)
        # Points already promised to buys the chain has not run yet are not spendable twice.
        in_flight = self.in_flight(buyer.address, listing.payment_kind, town.id)
        if balance - int(in_flight["amount"]) * scale < amount * scale:
            if listing.payment_kind != "points":
                raise not_enough_yen(self._chain(), balance // scale, amount)
            raise InsufficientBalance(
                N_("Not enough points: you have %(balance)s and this costs %(amount)s."),
                balance=balance // scale,
                amount=amount,
            )
        signer = self.accounts.custodial_signer(user)
        sale = self._chain().address_of(sale_key(town))
        nonce = self.read_int(token, "nonces", buyer.address) + int(in_flight["count"])
        deadline = self.chain_now() + PERMIT_TTL
        permit = {
            "types": PERMIT_TYPES,
            "primaryType": "Permit",
            "domain": self._chain().eip712_domain(token).as_dict(),
            "message": {
                "owner": buyer.address,
                "spender": sale,
                "value": amount * scale,
                "nonce": nonce,
                "deadline": deadline,
            },
        }
        sig = signer.sign_typed_data(permit)
        order.status = "processing"
        self.session.add(order)
        self.session.flush()
        buy = [
            listing.chain_listing_id,
            order.quantity,
            voucher,
            deadline,
            sig.v,
            "0x" + sig.r.to_bytes(32, "big").hex(),
            "0x" + sig.s.to_bytes(32, "big").hex(),
        ]
        tx = self._outbox().enqueue(
            self.session,
            ContractCall(sale_key(town), "buyWithPermit", buy),
            sender=Sender.user(signer, town_id=town.id, user_id=user.id),
            key=f"order:{order.public_id}",
            subject=Subject("order", order.id),
            audit=mint_audit(order, listing, f"user:{user.id}"),
        )
        order.outbox_tx_id = tx.id

    def in_flight(self, address: str, kind: str, town_id: int) -> dict[str, int]:
        rows = self.session.execute(
            select(Order.amount)
            .join(Listing, Listing.id == Order.listing_id)
            .where(
                Order.buyer_address == address,
                Order.payment_kind == kind,
                Order.status == "processing",
                chain.outbox_state_in(Order.outbox_tx_id, ACTIVE_TX_STATES),
                Listing.town_id == town_id if kind == "points" else true(),
            )
        ).all()
        return {"amount": sum(int(r[0]) for r in rows), "count": len(rows)}

    # ----------------------------------------------------------------- reading

    def get(self, user: User | None, public_id: str) -> Order:
        """The user's own order; NotFound for someone else's (no hint that it exists)."""
        user = user or require_user()
        order = self.session.scalar(select(Order).where(Order.public_id == public_id))
        if order is None or order.user_id != user.id:
            raise NotFound(N_("There is no such order."))
        return self.catch_up(order)

    def my_orders(self, user: User, limit: int = 20) -> list[Order]:
        """The user's orders, newest first (the purchase history, my collection's notices)."""
        orders = list(
            self.session.scalars(
                select(Order)
                .where(Order.user_id == user.id)
                .order_by(Order.created_at.desc(), Order.id.desc())
                .limit(limit)
            )
        )
        for order in orders:
            self.catch_up(order)
        return orders

    def catch_up(self, order: Order) -> Order:
        """Complete a processing order whose buy or mint is already indexed (issue 15 §7: the
        page said 処理中 with the token in the collection). The handler finds an order by its
        outbox row's hash; when the event was indexed while the row still held another
        attempt's hash (a replaced transaction mined under its first hash), it found none and
        never looks again. The confirmed event of the row's hash settles it here, as the
        handler would have (same values, so two readers at once write the same)."""
        if order.status != "processing" or order.outbox_tx_id is None:
            return order
        tx = chain.outbox_tx(self.session, order.outbox_tx_id)
        if tx is None or tx.state != "confirmed" or not tx.tx_hash:
            return order
        for name in ("Purchased", "PaidOffChainMinted"):
            events = chain.events_of_tx(self.session, tx.tx_hash, name)
            if events:
                order.status = "completed"
                order.first_token_id = int(events[0].args["firstTokenId"])
                order.error = None
                self.session.commit()
                break
        return order
