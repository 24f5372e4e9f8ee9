"""Orders: buy a listing with points or test yen (permit + buy, signed by the user's built-in
account and relayed gaslessly) or by card (provider checkout, then a mint by the minter key).

Every public method is one unit of work: it commits, or raises an AppError and changes nothing.
A card payment whose mint finally fails is refunded (`reconcile`); a webhook delivered twice is
processed once (`PaymentEventRecord`), and a mint has the payment reference as its idempotency key.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from flask import current_app
from sqlalchemy import func, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.accounts.models import CUSTODIAL, EXTERNAL, Address, User
from backend.accounts.roles import require_user
from backend.chain.gateway import ChainUnavailable
from backend.chain.outbox import AuditEntry, outbox_service
from backend.chain.outbox_models import OutboxTx
from backend.core.db import utcnow
from backend.core.errors import N_, Conflict, InvalidInput, NotFound, ServiceUnavailable
from backend.core.idempotency import first_answer
from backend.core.models import AuditLog
from backend.core.numbers import db_id_or_none
from backend.nfts.errors import (
    InsufficientBalance,
    NotOnSale,
    SoldOut,
    UnknownListing,
    WalletCapExceeded,
)
from backend.nfts.models import Listing
from backend.nfts.services import ShopService, chain_listing, gateway, sale_key, token_key
from backend.payments.models import Order, PaymentEventRecord
from backend.payments.providers import (
    DECLINED,
    PAID,
    CheckoutOrder,
    PaymentProvider,
    StripeProvider,
    TestCardProvider,
)

log = logging.getLogger(__name__)

MAX_MINT_ATTEMPTS = 3
PERMIT_TTL = 3600
FAILED_TX_STATES = ("failed", "reverted", "cancelled")
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


def payment_provider() -> PaymentProvider:
    """The configured card provider: PAYMENT_PROVIDER=stripe with STRIPE_SECRET_KEY and
    STRIPE_WEBHOOK_SECRET, else the built-in test provider (TEST MODE, local test chains only:
    create_app refuses it elsewhere, see backend/core/safety.py)."""
    from backend.core.purpose_keys import TEST_CARD_WEBHOOK, purpose_key_hex

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    provider = app.extensions.get("payment_provider")
    if provider is None:
        settings = app.extensions["settings"]
        kind = app.config.get("PAYMENT_PROVIDER") or settings.payment_provider or "test"
        if kind == "stripe":
            provider = StripeProvider(settings.stripe_secret_key, settings.stripe_webhook_secret)
        else:
            provider = TestCardProvider(
                purpose_key_hex(app.config["SECRET_KEY"], TEST_CARD_WEBHOOK),
                "/shop/test-checkout/{order}",
            )
        app.extensions["payment_provider"] = provider
    return provider  # type: ignore[no-any-return]


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


class OrderService:
    def __init__(self, session: Session, shop: ShopService) -> None:
        self.session = session
        self.shop = shop

    # ----------------------------------------------------------------- placing

    def _buyer_address(self, user: User, kind: str) -> Address:
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
        if not isinstance(idempotency_key, str) or not 8 <= len(idempotency_key) <= 100:
            raise InvalidInput(N_("A request key of 8 to 100 characters is required."))
        existing = self.session.scalar(
            select(Order).where(Order.user_id == user.id, Order.idempotency_key == idempotency_key)
        )
        if existing is not None:
            if existing.listing_id != listing_id or existing.quantity != quantity:
                raise Conflict(N_("This request key was already used for another order."))
            return PlacedOrder(existing, self._next_url(existing), created=False)
        listing = self._listing(listing_id, quantity)
        quantity = cast(int, quantity)  # _listing checked it is an int within the wallet cap
        buyer = self._buyer_address(user, listing.payment_kind)
        self._check_supply(listing, quantity, buyer.address)
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
                provider = payment_provider()
                order.status = "pending_payment"
                order.provider = provider.name
                self.session.add(order)
                self.session.flush()  # a concurrent twin's key fails here, or at the commit
                redirect = provider.create_checkout(self._checkout(order, listing))
            else:
                self._pay_with_token(user, order, listing, buyer, amount)
            self.session.commit()
            return PlacedOrder(order, redirect, created=True)

        def first() -> PlacedOrder | None:
            found = self.session.scalar(
                select(Order).where(
                    Order.user_id == user.id, Order.idempotency_key == idempotency_key
                )
            )
            return PlacedOrder(found, self._next_url(found), created=False) if found else None

        return first_answer(self.session, write, first)

    def _listing(self, listing_id: object, quantity: object) -> Listing:
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
        now = utcnow()
        starts, ends = _aware(listing.starts_at), _aware(listing.ends_at)
        if listing.chain_listing_id is None or not starts <= now < ends:
            raise NotOnSale(N_("This item is not on sale now."))
        return listing

    def _check_supply(self, listing: Listing, quantity: int, buyer: str) -> None:
        """Refuse a quantity over what is left or over the buyer's per-wallet cap."""
        town = listing.town
        assert listing.chain_listing_id is not None  # noqa: S101 - checked by _listing
        on_chain = chain_listing(listing.chain_listing_id, town)
        if on_chain is None:
            raise ServiceUnavailable(N_("The shop cannot be reached right now; try again soon."))
        if on_chain["paused"]:
            raise NotOnSale(N_("This item is not on sale now."))
        remaining = on_chain["supply"] - on_chain["sold"] - self.shop.pending_quantity(listing)
        if remaining <= 0:
            raise SoldOut(N_("Sold out."), remaining=0)
        if quantity > remaining:
            raise SoldOut(N_("Only %(remaining)s left."), remaining=remaining)
        minted = self._read_int(sale_key(town), "mintedBy", listing.chain_listing_id, buyer)
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

    def _next_url(self, order: Order) -> str:
        if order.status == "pending_payment" and order.provider == "test":
            return f"/shop/test-checkout/{order.public_id}"
        return f"/shop/orders/{order.public_id}"

    def _checkout(self, order: Order, listing: Listing) -> CheckoutOrder:
        base = current_app.extensions["settings"].public_url.rstrip("/")
        return CheckoutOrder(
            public_id=order.public_id,
            payment_ref=order.payment_ref,
            amount_yen=int(order.amount),
            quantity=order.quantity,
            description=listing.collection.name_en,
            success_url=f"{base}/shop/orders/{order.public_id}",
            cancel_url=f"{base}/towns/{listing.town.slug}",
        )

    def _read_int(self, contract: str, fn: str, *args: Any, artifact: str | None = None) -> int:
        try:
            return int(gateway().read(contract, fn, *args, artifact_name=artifact))
        except ChainUnavailable:
            raise ServiceUnavailable(
                N_("The shop cannot be reached right now; try again soon.")
            ) from None

    def _pay_with_token(
        self, user: User, order: Order, listing: Listing, buyer: Address, amount: int
    ) -> None:
        from backend.accounts.services import AccountService
        from backend.chain.custody import get_vault

        town = listing.town
        token = token_key(town, listing.payment_kind)
        balance = self._read_int(token, "balanceOf", buyer.address)
        # Points already promised to buys the chain has not run yet are not spendable twice.
        in_flight = self._in_flight(buyer.address, listing.payment_kind, town.id)
        if balance - int(in_flight["amount"]) < amount:
            message = (
                N_("Not enough points: you have %(balance)s and this costs %(amount)s.")
                if listing.payment_kind == "points"
                else N_("Not enough test yen: you have %(balance)s and this costs %(amount)s.")
            )
            raise InsufficientBalance(message, balance=balance, amount=amount)
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        signer = AccountService(self.session, lambda: get_vault(app)).custodial_signer(user)
        sale = gateway().address_of(sale_key(town))
        nonce = self._read_int(token, "nonces", buyer.address) + int(in_flight["count"])
        deadline = int(utcnow().timestamp()) + PERMIT_TTL
        permit = {
            "types": PERMIT_TYPES,
            "primaryType": "Permit",
            "domain": gateway().eip712_domain(token).as_dict(),
            "message": {
                "owner": buyer.address,
                "spender": sale,
                "value": amount,
                "nonce": nonce,
                "deadline": deadline,
            },
        }
        sig = signer.sign_typed_data(permit)
        order.status = "processing"
        self.session.add(order)
        self.session.flush()
        tx = outbox_service().enqueue_call(
            self.session,
            idempotency_key=f"order:{order.public_id}",
            sender_kind="relayer",
            contract=sale_key(town),
            function="buyWithPermit",
            args=[
                listing.chain_listing_id,
                order.quantity,
                [0, 0, 0, "0x"],
                deadline,
                sig.v,
                "0x" + sig.r.to_bytes(32, "big").hex(),
                "0x" + sig.s.to_bytes(32, "big").hex(),
            ],
            signer=signer,
            town_id=town.id,
            user_id=user.id,
            audit=self._mint_audit(order, listing, f"user:{user.id}"),
        )
        order.outbox_tx_id = tx.id

    def _in_flight(self, address: str, kind: str, town_id: int) -> dict[str, int]:
        rows = self.session.execute(
            select(Order.amount)
            .join(OutboxTx, OutboxTx.id == Order.outbox_tx_id)
            .join(Listing, Listing.id == Order.listing_id)
            .where(
                Order.buyer_address == address,
                Order.payment_kind == kind,
                Order.status == "processing",
                OutboxTx.state.in_(ACTIVE_TX_STATES),
                Listing.town_id == town_id if kind == "points" else true(),
            )
        ).all()
        return {"amount": sum(int(r[0]) for r in rows), "count": len(rows)}

    @staticmethod
    def _mint_audit(order: Order, listing: Listing, actor: str) -> AuditEntry:
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

    # ----------------------------------------------------------------- external wallets

    def wallets(self, user: User | None) -> dict[str, str | None]:
        """The user's built-in address and first external (SIWE) address, each or None."""
        if user is None:
            return {"builtin": None, "wallet": None}
        rows = self.session.scalars(
            select(Address).where(Address.user_id == user.id).order_by(Address.id)
        ).all()
        return {
            "builtin": next((a.address for a in rows if a.kind == CUSTODIAL), None),
            "wallet": next((a.address for a in rows if a.kind == EXTERNAL), None),
        }

    def test_yen_balance(self, address: str | None) -> int | None:
        """Test yen held by `address` (None when unknown or the chain does not answer)."""
        if address is None:
            return None
        try:
            return int(gateway().read("TestYenStablecoin", "balanceOf", address))
        except Exception as exc:  # a page must not break when the node is away
            log.warning("test yen balance: chain read failed: %s", exc)
            return None

    def _wallet_address(self, user: User, address: object = None) -> str:
        """The user's external (SIWE) address: `address` if given and theirs, else the first."""
        rows = self.session.scalars(
            select(Address.address)
            .where(Address.user_id == user.id, Address.kind == EXTERNAL)
            .order_by(Address.id)
        ).all()
        if address is not None:
            rows = [a for a in rows if isinstance(address, str) and a.lower() == address.lower()]
        if not rows:
            raise InvalidInput(
                N_("Sign in with your wallet to pay from it."), code="no_wallet", field="address"
            )
        return str(rows[0])

    def _wallet_listing(
        self, user: User | None, listing_id: object, quantity: object, address: object
    ) -> tuple[User, Listing, str, int]:
        """Checks shared by every step of a wallet purchase: (user, listing, address, amount)."""
        user = user or require_user()
        listing = self._listing(listing_id, quantity)
        quantity = cast(int, quantity)  # _listing checked it is an int within the wallet cap
        if listing.payment_kind != "stablecoin":
            raise InvalidInput(
                N_("This item cannot be paid from your wallet."), code="not_wallet_payable"
            )
        owner = self._wallet_address(user, address)
        assert isinstance(quantity, int)  # noqa: S101 - checked by _listing
        self._check_supply(listing, quantity, owner)
        amount = int(listing.price) * quantity
        token = token_key(listing.town, listing.payment_kind)
        balance = self._read_int(token, "balanceOf", owner)
        in_flight = self._in_flight(owner, listing.payment_kind, listing.town_id)
        if balance - int(in_flight["amount"]) < amount:
            raise InsufficientBalance(
                N_("Not enough test yen: you have %(balance)s and this costs %(amount)s."),
                balance=balance,
                amount=amount,
            )
        return user, listing, owner, amount

    def _permit_typed_data(
        self, listing: Listing, owner: str, amount: int, nonce: int, deadline: int
    ) -> dict[str, Any]:
        token = token_key(listing.town, listing.payment_kind)
        return {
            "types": PERMIT_TYPES,
            "primaryType": "Permit",
            "domain": gateway().eip712_domain(token).as_dict(),
            "message": {
                "owner": owner,
                "spender": gateway().address_of(sale_key(listing.town)),
                "value": amount,
                "nonce": nonce,
                "deadline": deadline,
            },
        }

    def _permit_nonce(self, listing: Listing, owner: str) -> int:
        token = token_key(listing.town, listing.payment_kind)
        in_flight = self._in_flight(owner, listing.payment_kind, listing.town_id)
        return self._read_int(token, "nonces", owner) + int(in_flight["count"])

    def wallet_permit(
        self, user: User | None, listing_id: object, quantity: object, address: object = None
    ) -> dict[str, Any]:
        """Step 1 of a wallet purchase: the ERC-20 permit (EIP-712) letting PrimarySale take
        the price from the user's external address, for eth_signTypedData_v4."""
        _user, listing, owner, amount = self._wallet_listing(user, listing_id, quantity, address)
        deadline = int(utcnow().timestamp()) + PERMIT_TTL
        nonce = self._permit_nonce(listing, owner)
        return {
            "address": owner,
            "amount": amount,
            "permit": {"deadline": deadline, "nonce": nonce},
            "typed_data": self._permit_typed_data(listing, owner, amount, nonce, deadline),
        }

    def _permit_args(
        self, listing: Listing, owner: str, amount: int, quantity: int, permit: object
    ) -> list[Any]:
        """buyWithPermit's arguments from a permit the owner signed; refused if it is not
        theirs, not for this price, or out of date."""
        from backend.chain.typed_signatures import recover_typed_data, split_signature

        if not isinstance(permit, dict):
            raise InvalidInput(N_("The wallet signature is missing."), field="permit")
        deadline, nonce, signature = (permit.get(k) for k in ("deadline", "nonce", "signature"))
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (deadline, nonce)):
            raise InvalidInput(N_("The wallet signature is missing."), field="permit")
        assert isinstance(deadline, int) and isinstance(nonce, int)  # noqa: S101
        if deadline <= int(utcnow().timestamp()) + 60 or nonce != self._permit_nonce(
            listing, owner
        ):
            raise Conflict(
                N_("The wallet signature is out of date; please try again."),
                code="stale_signature",
            )
        typed = self._permit_typed_data(listing, owner, amount, nonce, deadline)
        if recover_typed_data(typed, signature) != owner:
            raise InvalidInput(
                N_("The wallet signature does not match your wallet address."),
                code="bad_signature",
                field="permit",
            )
        assert isinstance(signature, str)  # noqa: S101 - it recovered
        v, r, s = split_signature(signature)
        return [
            listing.chain_listing_id,
            quantity,
            [0, 0, 0, "0x"],
            deadline,
            v,
            "0x" + r.to_bytes(32, "big").hex(),
            "0x" + s.to_bytes(32, "big").hex(),
        ]

    def wallet_forward_request(
        self,
        user: User | None,
        listing_id: object,
        quantity: object,
        permit: object,
        address: object = None,
    ) -> dict[str, Any]:
        """Step 2: with the signed permit, the ERC-2771 forward request for
        PrimarySale.buyWithPermit that the wallet signs next (relayed: no gas for the user)."""
        _user, listing, owner, amount = self._wallet_listing(user, listing_id, quantity, address)
        assert isinstance(quantity, int)  # noqa: S101
        args = self._permit_args(listing, owner, amount, quantity, permit)
        try:
            prepared = outbox_service().prepare_forward_request(
                self.session,
                user_address=owner,
                contract=sale_key(listing.town),
                function="buyWithPermit",
                args=args,
                artifact_name="PrimarySale",
            )
        except ChainUnavailable:
            raise ServiceUnavailable(
                N_("The shop cannot be reached right now; try again soon.")
            ) from None
        return {
            "address": owner,
            "forward_request": prepared["request"],
            "typed_data": prepared["typed_data"],
        }

    def place_wallet(
        self,
        user: User | None,
        listing_id: object,
        quantity: object,
        idempotency_key: object,
        permit: object,
        forward_request: object,
        address: object = None,
    ) -> PlacedOrder:
        """Step 3: place the order with both wallet signatures. They must recover to the user's
        external address and be exactly this purchase; the forward request is relayed through
        the outbox (status processing until the mint is indexed). The same key returns the
        first order."""
        from backend.chain.typed_signatures import check_forward_request

        user = user or require_user()
        if not isinstance(idempotency_key, str) or not 8 <= len(idempotency_key) <= 100:
            raise InvalidInput(N_("A request key of 8 to 100 characters is required."))
        existing = self.session.scalar(
            select(Order).where(Order.user_id == user.id, Order.idempotency_key == idempotency_key)
        )
        if existing is not None:
            if existing.listing_id != listing_id or existing.quantity != quantity:
                raise Conflict(N_("This request key was already used for another order."))
            return PlacedOrder(existing, self._next_url(existing), created=False)
        user, listing, owner, amount = self._wallet_listing(user, listing_id, quantity, address)
        assert isinstance(quantity, int)  # noqa: S101
        args = self._permit_args(listing, owner, amount, quantity, permit)
        outbox = outbox_service()
        req, reason = check_forward_request(
            forward_request,
            user=owner,
            target=gateway().address_of(sale_key(listing.town)),
            artifact_name="PrimarySale",
            function="buyWithPermit",
            args=args,
            chain_id=outbox.chain_id,
            forwarder=outbox.forwarder_address,
        )
        if req is None:
            raise InvalidInput(
                N_("The wallet signature does not match this purchase; please try again."),
                code="bad_signature",
                field="forward_request",
                reason=reason,
            )
        public_id = uuid.uuid4().hex
        order = Order(
            public_id=public_id,
            user_id=user.id,
            idempotency_key=idempotency_key,
            listing_id=listing.id,
            quantity=quantity,
            amount=Decimal(amount),
            payment_kind=listing.payment_kind,
            buyer_address=owner,
            payment_ref=f"ord_{public_id}",
            status="processing",
        )
        self.session.add(order)
        try:
            self.session.flush()
            tx = outbox.enqueue_call(
                self.session,
                idempotency_key=f"order:{public_id}",
                sender_kind="relayer",
                contract=sale_key(listing.town),
                function="buyWithPermit",
                args=args,
                forward_request=req,
                artifact_name="PrimarySale",
                town_id=listing.town_id,
                user_id=user.id,
                audit=self._mint_audit(order, listing, f"user:{user.id}"),
            )
            order.outbox_tx_id = tx.id
            self.session.commit()
        except IntegrityError:  # a double submit with the same key won the race
            self.session.rollback()
            first = self.session.scalar(
                select(Order).where(
                    Order.user_id == user.id, Order.idempotency_key == idempotency_key
                )
            )
            if first is None:
                raise
            return PlacedOrder(first, self._next_url(first), created=False)
        except Exception:
            self.session.rollback()
            raise
        return PlacedOrder(order, f"/shop/orders/{public_id}", created=True)

    # ----------------------------------------------------------------- reading

    def get(self, user: User | None, public_id: str) -> Order:
        """The user's own order; NotFound for someone else's (no hint that it exists)."""
        from backend.core.errors import NotFound

        user = user or require_user()
        order = self.session.scalar(select(Order).where(Order.public_id == public_id))
        if order is None or order.user_id != user.id:
            raise NotFound(N_("There is no such order."))
        return order

    def my_orders(self, user: User) -> list[Order]:
        return list(
            self.session.scalars(
                select(Order).where(Order.user_id == user.id).order_by(Order.id.desc()).limit(20)
            )
        )

    # ----------------------------------------------------------------- card payments

    def handle_webhook(self, provider: PaymentProvider, payload: bytes, headers: Any) -> str:
        """Apply a provider event once: paid -> mint (minter key, via the outbox), declined ->
        declined. Returns "processed", "duplicate" or "ignored"; BadSignature changes nothing."""
        event = provider.parse_webhook(payload, headers)
        if self.session.scalar(
            select(PaymentEventRecord.id).where(
                PaymentEventRecord.provider == provider.name,
                PaymentEventRecord.event_id == event.event_id,
            )
        ):
            return "duplicate"
        return first_answer(
            self.session, lambda: self._apply_event(provider, event), lambda: "duplicate"
        )

    def _apply_event(self, provider: PaymentProvider, event: Any) -> str:
        # The event's row is flushed with the order's lock below: a concurrent delivery of the
        # same event fails on its UNIQUE key there or at the commit (then: "duplicate").
        self.session.add(
            PaymentEventRecord(
                provider=provider.name,
                event_id=event.event_id,
                kind=event.kind,
                order_public_id=event.order_public_id,
            )
        )
        order = None
        if event.order_public_id:
            order = self.session.scalar(
                select(Order).where(Order.public_id == event.order_public_id).with_for_update()
            )
        result = "ignored"
        if order is not None and order.status == "pending_payment":
            if event.kind == PAID:
                if event.amount_yen is not None and int(event.amount_yen) != int(order.amount):
                    order.status = "failed"
                    order.error = "amount mismatch"
                    log.error(
                        "order %s: paid %s, expected %s",
                        order.public_id,
                        event.amount_yen,
                        order.amount,
                    )
                else:
                    order.provider_payment_id = event.payment_id
                    order.status = "processing"
                    self._enqueue_mint(order)
                result = "processed"
            elif event.kind == DECLINED:
                order.status = "declined"
                result = "processed"
        self.session.commit()
        return result

    def _enqueue_mint(self, order: Order) -> None:
        listing = order.listing
        order.mint_attempts += 1
        tx = outbox_service().enqueue_call(
            self.session,
            idempotency_key=f"mint:{order.payment_ref}:{order.mint_attempts}",
            sender_kind="minter",
            contract=sale_key(listing.town),
            function="mintPaidOffChain",
            args=[
                listing.chain_listing_id,
                order.buyer_address,
                order.quantity,
                _payment_ref_bytes(order.payment_ref),
            ],
            town_id=listing.town_id,
            audit=self._mint_audit(order, listing, f"payment:{order.provider}"),
        )
        order.outbox_tx_id = tx.id

    # ----------------------------------------------------------------- reconciliation

    def reconcile(self) -> dict[str, int]:
        """Orders whose chain transaction failed: token orders fail (nothing was taken); card
        orders are minted again, and refunded after MAX_MINT_ATTEMPTS (the user sees it)."""
        done = {"failed": 0, "retried": 0, "refunded": 0}
        rows = self.session.execute(
            select(Order, OutboxTx)
            .join(OutboxTx, OutboxTx.id == Order.outbox_tx_id)
            .where(Order.status == "processing", OutboxTx.state.in_(FAILED_TX_STATES))
            .with_for_update(of=Order, skip_locked=True)
        ).all()
        for order, tx in rows:
            reason = tx.error or tx.state
            if order.payment_kind != "card":
                order.status = "failed"
                order.error = reason
                done["failed"] += 1
            elif order.mint_attempts < MAX_MINT_ATTEMPTS:
                self._enqueue_mint(order)
                done["retried"] += 1
            else:
                self._refund(order, reason)
                done["refunded"] += 1
            self.session.commit()
        return done

    def _refund(self, order: Order, reason: str) -> None:
        provider = payment_provider()
        refund_ref = provider.refund(order.provider_payment_id or order.payment_ref)
        order.status = "refunded"
        order.refund_ref = refund_ref
        order.error = reason
        self.session.add(
            AuditLog(
                actor=f"payment:{order.provider}",
                action="payment.refund",
                subject_type="order",
                subject_id=order.public_id,
                amount=order.amount,
                reason=f"mint failed {order.mint_attempts} times: {reason}",
                details={"refund_ref": refund_ref, "payment_ref": order.payment_ref},
            )
        )

    # ----------------------------------------------------------------- faucet (test mode)

    def faucet(self, user: User | None, amount: int = 10_000) -> OutboxTx:
        """Mint test yen to the user's built-in account, or to their wallet's address when they
        signed in with one (local test chains only, once a day)."""
        from backend.nfts.services import is_test_chain

        settings = current_app.extensions["settings"]
        if settings.faucet == "off" or not is_test_chain():
            # Not a feature of real chains at all: the same answer as an unknown URL.
            raise NotFound(N_("Test yen is only available in test mode."), code="not_test_mode")
        user = user or require_user()
        try:
            to = self._buyer_address(user, "stablecoin").address
        except InvalidInput:
            to = self._wallet_address(user)
        day = utcnow().date().isoformat()
        tx = outbox_service().enqueue_call(
            self.session,
            idempotency_key=f"faucet:{user.id}:{day}",
            sender_kind="faucet",
            contract="TestYenStablecoin",
            function="mint",
            args=[to, amount],
            user_id=user.id,
            audit=AuditEntry(
                actor=f"user:{user.id}",
                action="testyen.mint",
                subject_type="address",
                subject_id=to,
                amount=amount,
                reason="test-mode faucet",
            ),
        )
        self.session.commit()
        return tx


def _payment_ref_bytes(ref: str) -> str:
    """The on-chain paymentRef: sha256 of our reference (bytes32 hex, unique per order)."""
    import hashlib

    return "0x" + hashlib.sha256(ref.encode()).hexdigest()


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
