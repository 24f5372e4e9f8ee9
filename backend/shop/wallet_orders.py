"""Paying from an external (SIWE) wallet in three steps (permit, forward request, order), the
user's addresses and test-yen balance, and the test-yen faucet (local test chains only).

Every public method is one unit of work: it commits, or raises an AppError and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.accounts.models import CUSTODIAL, EXTERNAL, Address, User
from backend.accounts.roles import require_user
from backend.chain import api as chain
from backend.chain.api import (
    AuditEntry,
    ChainUnavailable,
    ContractCall,
    OutboxService,
    OutboxTx,
    Sender,
    Subject,
    Web3Gateway,
    check_forward_request,
    recover_typed_data,
    split_signature,
)
from backend.core.db import utcnow
from backend.core.errors import N_, Conflict, InvalidInput, NotFound, ServiceUnavailable
from backend.shop.allowlists import voucher_for
from backend.shop.catalog import (
    is_test_chain,
    not_enough_yen,
    sale_key,
    token_key,
    token_scale,
    yen_token,
)
from backend.shop.models import Listing, Order
from backend.shop.orders import (
    PERMIT_TTL,
    PERMIT_TYPES,
    OrderService,
    PlacedOrder,
    mint_audit,
    next_url,
)
from backend.shop.supply import reserve

log = logging.getLogger(__name__)


class WalletOrderService:
    """Orders paid from the user's external wallet; the listing and supply checks are
    OrderService's."""

    def __init__(
        self,
        session: Session,
        orders: OrderService,
        *,
        chain: Callable[[], Web3Gateway],
        outbox: Callable[[], OutboxService],
        faucet_enabled: bool,
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        """`faucet_enabled`: the FAUCET setting is not "off" (it also needs a local test chain)."""
        self.session = session
        self.orders = orders
        self._chain = chain
        self._outbox = outbox
        self._faucet_enabled = faucet_enabled
        self._now = now

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
        """Whole yen of the chain's yen token held by `address`, read from the node (None when
        unknown, when the chain has no yen token or does not answer)."""
        if address is None:
            return None
        try:
            yen = self._chain().yen_token()
            return yen.yen(int(self._chain().read(yen.contract, "balanceOf", address)))
        except Exception as exc:  # a page must not break when the node is away
            log.warning("test yen balance: chain read failed: %s", exc)
            return None

    def indexed_yen_balance(self, address: str | None) -> int | None:
        """`test_yen_balance` as the indexer confirmed it, for pages (issue 16 §1: the shop page
        never asks the node). None when unknown: no address, no yen token, or a token the
        indexer does not watch."""
        if address is None:
            return None
        try:
            gateway = self._chain()
            yen = gateway.yen_token()
            chain_id = int(gateway.chain_id)
        except Exception as exc:  # noqa: BLE001 - no token, no deployments: nothing to show
            log.warning("test yen balance: %s", exc)
            return None
        if chain.synced_block(self.session, chain_id, [yen.address]) is None:
            return None
        return yen.yen(chain.balance_of(self.session, chain_id, yen.address, address))

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
        listing = self.orders.listing_on_sale(listing_id, quantity)
        quantity = cast(int, quantity)  # _listing checked it is an int within the wallet cap
        if listing.payment_kind != "stablecoin":
            raise InvalidInput(
                N_("This item cannot be paid from your wallet."), code="not_wallet_payable"
            )
        owner = self._wallet_address(user, address)
        voucher_for(self.session, listing, owner)  # not on an allowlist: refused before signing
        assert isinstance(quantity, int)  # noqa: S101 - checked by _listing
        self.orders.check_supply(listing, quantity, owner)
        amount = int(listing.price) * quantity
        token = token_key(listing.town, listing.payment_kind, self._chain())
        scale = token_scale(listing.payment_kind, self._chain())  # token units per yen
        balance = self.orders.read_int(token, "balanceOf", owner)
        in_flight = self.orders.in_flight(owner, listing.payment_kind, listing.town_id)
        if balance - int(in_flight["amount"]) * scale < amount * scale:
            raise not_enough_yen(self._chain(), balance // scale, amount)
        return user, listing, owner, amount

    def _permit_typed_data(
        self, listing: Listing, owner: str, amount: int, nonce: int, deadline: int
    ) -> dict[str, Any]:
        token = token_key(listing.town, listing.payment_kind, self._chain())
        return {
            "types": PERMIT_TYPES,
            "primaryType": "Permit",
            "domain": self._chain().eip712_domain(token).as_dict(),
            "message": {
                "owner": owner,
                "spender": self._chain().address_of(sale_key(listing.town)),
                "value": amount * token_scale(listing.payment_kind, self._chain()),
                "nonce": nonce,
                "deadline": deadline,
            },
        }

    def _permit_nonce(self, listing: Listing, owner: str) -> int:
        token = token_key(listing.town, listing.payment_kind, self._chain())
        in_flight = self.orders.in_flight(owner, listing.payment_kind, listing.town_id)
        return self.orders.read_int(token, "nonces", owner) + int(in_flight["count"])

    def wallet_permit(
        self, user: User | None, listing_id: object, quantity: object, address: object = None
    ) -> dict[str, Any]:
        """Step 1 of a wallet purchase: the ERC-20 permit (EIP-712) letting PrimarySale take
        the price from the user's external address, for eth_signTypedData_v4."""
        _user, listing, owner, amount = self._wallet_listing(user, listing_id, quantity, address)
        deadline = self.orders.chain_now() + PERMIT_TTL
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
        if not isinstance(permit, dict):
            raise InvalidInput(N_("The wallet signature is missing."), field="permit")
        deadline, nonce, signature = (permit.get(k) for k in ("deadline", "nonce", "signature"))
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (deadline, nonce)):
            raise InvalidInput(N_("The wallet signature is missing."), field="permit")
        assert isinstance(deadline, int) and isinstance(nonce, int)  # noqa: S101
        # A minute's margin on the chain's clock: the relayer must still get it mined in time.
        if deadline <= self.orders.chain_now() + 60 or nonce != self._permit_nonce(listing, owner):
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
            voucher_for(self.session, listing, owner),
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
            prepared = self._outbox().prepare_forward_request(
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
        user = user or require_user()
        replayed = self.orders.replay(user, idempotency_key, listing_id, quantity)
        if replayed is not None:
            return replayed
        user, listing, owner, amount = self._wallet_listing(user, listing_id, quantity, address)
        assert isinstance(quantity, int)  # noqa: S101
        args = self._permit_args(listing, owner, amount, quantity, permit)
        outbox = self._outbox()
        req, reason = check_forward_request(
            forward_request,
            user=owner,
            target=self._chain().address_of(sale_key(listing.town)),
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
            tx = outbox.enqueue(
                self.session,
                ContractCall(
                    sale_key(listing.town), "buyWithPermit", args, artifact_name="PrimarySale"
                ),
                sender=Sender.signed(req, town_id=listing.town_id, user_id=user.id),
                key=f"order:{public_id}",
                subject=Subject("order", order.id),
                audit=mint_audit(order, listing, f"user:{user.id}"),
            )
            order.outbox_tx_id = tx.id
            reserve(self.session, listing, order)  # last: the stock row's lock is short
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
            return PlacedOrder(first, next_url(first), created=False)
        except Exception:
            self.session.rollback()
            raise
        return PlacedOrder(order, f"/shop/orders/{public_id}", created=True)

    # ----------------------------------------------------------------- faucet (test mode)

    def faucet(self, user: User | None, amount: int = 10_000) -> OutboxTx:
        """Mint test yen to the user's built-in account, or to their wallet's address when they
        signed in with one (local test chains only, once a day)."""
        if not self._faucet_enabled or not is_test_chain(self._chain()):
            # Not a feature of real chains at all: the same answer as an unknown URL.
            raise NotFound(N_("Test yen is only available in test mode."), code="not_test_mode")
        yen = yen_token(self._chain())
        if not yen.test:  # a configured yen token is real money: never minted here
            raise NotFound(N_("Test yen is only available in test mode."), code="not_test_mode")
        user = user or require_user()
        try:
            to = self.orders.buyer_address(user, "stablecoin").address
        except InvalidInput:
            to = self._wallet_address(user)
        day = self._now().date().isoformat()
        tx = self._outbox().enqueue(
            self.session,
            ContractCall(yen.contract, "mint", [to, amount]),
            sender=Sender.role("faucet", user_id=user.id),
            key=f"faucet:{user.id}:{day}",
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
