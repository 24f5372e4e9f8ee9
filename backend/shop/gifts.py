"""Holders own what they bought (issue 15 §4): a person whose card or ticket we keep in their
built-in wallet gives it to another person (by e-mail or address) or moves it to their own
wallet.

Rules, all checked here before anything is sent:
- the password again (a stolen session must not empty a collection), rate-limited per user;
- the token is the person's now (the projection of the chain), held in their built-in wallet,
  whose key we keep (a token in their own wallet they move themselves);
- not soulbound (the contract would revert: say so first), not to oneself;
- a recipient by e-mail must have an account whose owner confirmed that address (its wallet
  receives the token; an unconfirmed sign-up could be anyone's); an address must
  be a real address (a contract that cannot hold cards makes the transfer revert: the gift
  fails and the giver keeps the card);
- at most one gift of a token is on its way (a partial UNIQUE index), and the same form sent
  twice is one gift (`request_key` UNIQUE), so ten requests at once send one transfer.

The transfer is a relayed `safeTransferFrom` signed with the giver's custodial key, queued in the
outbox with the gift row and an audit row ("nft.gift") in one transaction; the gift follows the
outbox (`refresh`): done when confirmed, failed (the giver keeps the token) otherwise. The new
holder's "my collection" shows the token with its perks and uses left, read from the chain like
any other token; ticket codes are bound to the holder, so the giver's old code stops working.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash

from backend.accounts.errors import InvalidCredentials
from backend.accounts.models import CUSTODIAL, EXTERNAL, Address, User
from backend.accounts.services import AccountService, users_by_email
from backend.chain import api as chain
from backend.chain.api import (
    FAILED_CALL_STATES,
    AuditEntry,
    ContractCall,
    OutboxService,
    Sender,
    Subject,
)
from backend.core.db import utcnow
from backend.core.errors import N_, Conflict, InvalidInput, NotFound
from backend.shop.models import GIFT_DONE, GIFT_FAILED, GIFT_QUEUED, Collection, Gift

GIVE = "give"
MOVE = "move"
_OUTBOX_DONE = ("confirmed",)
_OUTBOX_FAILED = FAILED_CALL_STATES  # the outbox's: the call was never executed


class GiftRefused(Conflict):
    code = "gift_refused"


class GiftService:
    def __init__(
        self,
        session: Session,
        *,
        accounts: AccountService,
        outbox: Callable[[], OutboxService],
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.session = session
        self.accounts = accounts
        self._outbox = outbox
        self._now = now

    # ------------------------------------------------------------------ reading

    def token(self, user: User, collection_id: object, token_id: object) -> tuple[Collection, int]:
        """The collection and token id, if `user` holds it in their built-in wallet now."""
        collection, tid = self._find(collection_id, token_id)
        built_in = self._built_in(user)
        owner = chain.owner_of(self.session, collection.contract_address or "", tid)
        if built_in is None or owner is None or owner.lower() != built_in.lower():
            raise NotFound(N_("You do not hold this card in your built-in account."))
        return collection, tid

    def own_wallets(self, user: User) -> list[str]:
        """The person's own wallets (signed in with), where "move to my wallet" can send."""
        return [
            a.address
            for a in self.session.scalars(
                select(Address).where(Address.user_id == user.id, Address.kind == EXTERNAL)
            )
        ]

    def in_flight(self, user: User) -> list[Gift]:
        self.refresh(self.session.scalars(select(Gift).where(Gift.giver_id == user.id)).all())
        return list(
            self.session.scalars(
                select(Gift)
                .where(Gift.giver_id == user.id, Gift.state != GIFT_DONE)
                .order_by(Gift.id.desc())
                .limit(20)
            )
        )

    def refresh(self, gifts: Iterable[Gift]) -> None:
        """Follow the outbox: a gift is done once its transfer is confirmed, failed if it failed."""
        open_ = [g for g in gifts if g.state == GIFT_QUEUED and g.outbox_tx_id]
        states = chain.outbox_states(
            self.session, [g.outbox_tx_id for g in open_ if g.outbox_tx_id]
        )
        changed = False
        for g in open_:
            st = states.get(int(g.outbox_tx_id or 0))
            if st is None:
                continue
            if st.state in _OUTBOX_DONE:
                g.state, g.finished_at, changed = GIFT_DONE, self._now(), True
            elif st.state in _OUTBOX_FAILED:
                g.state, g.finished_at, changed = GIFT_FAILED, self._now(), True
                g.error = st.error or ""
        if changed:
            self.session.commit()

    # ------------------------------------------------------------------ giving

    def give(
        self,
        user: User,
        collection_id: object,
        token_id: object,
        *,
        recipient: object,
        password: object,
        request_key: object,
        kind: str = GIVE,
    ) -> Gift:
        """Queue the transfer of the token to `recipient` (an e-mail or a 0x address)."""
        key = str(request_key or "").strip()
        if not key or len(key) > 80:
            raise InvalidInput(N_("This form has expired. Open the page again."))
        done = self.session.scalar(select(Gift).where(Gift.request_key == f"{user.id}:{key}"))
        if done is not None:  # the same form again: the same gift
            return done
        if user.password_hash is None or not check_password_hash(
            user.password_hash, password if isinstance(password, str) else ""
        ):
            raise InvalidCredentials(N_("The password is incorrect."))
        collection, tid = self.token(user, collection_id, token_id)
        if collection.soulbound:
            raise GiftRefused(N_("This card is bound to you and cannot be given or moved."))
        giver = self._built_in(user)
        assert giver is not None  # self.token checked it
        to_address, recipient_user = self._recipient(recipient, kind)
        if to_address.lower() == giver.lower():
            raise InvalidInput(N_("This is your own account already."), field="recipient")
        # A gift of this token whose transfer failed on chain no longer holds it (the index
        # below allows one on its way): follow its outbox row first.
        self.refresh(
            self.session.scalars(
                select(Gift).where(
                    Gift.collection_id == collection.id,
                    Gift.token_id == tid,
                    Gift.state == GIFT_QUEUED,
                )
            ).all()
        )
        gift = Gift(
            town_id=collection.town_id,
            collection_id=collection.id,
            token_id=tid,
            giver_id=user.id,
            from_address=giver,
            to_address=to_address,
            recipient_id=recipient_user.id if recipient_user else None,
            kind=kind,
            state=GIFT_QUEUED,
            request_key=f"{user.id}:{key}",
            created_at=self._now(),
        )
        # No SAVEPOINT around the row's write: on SQLite a savepoint opened before the
        # transaction's first write commits when released, so the gift would be committed
        # without its transfer (the card "on its way" for ever if queueing it then fails).
        # Nothing else is written before it, so a conflict rolls the whole transaction back.
        self.session.add(gift)
        try:
            self.session.flush()
        except IntegrityError:
            self.session.rollback()
            again = self.session.scalar(select(Gift).where(Gift.request_key == f"{user.id}:{key}"))
            if again is not None:
                return again
            raise GiftRefused(N_("This card is already on its way to someone.")) from None
        signer = self.accounts.custodial_signer(user)
        tx = self._outbox().enqueue(
            self.session,
            ContractCall(
                collection.contract_address or "",
                "safeTransferFrom",
                [giver, to_address, tid],
                artifact_name="FanCollection",
            ),
            sender=Sender.user(signer, town_id=collection.town_id, user_id=user.id),
            key=f"gift:{gift.id}",
            subject=Subject("nft_gift", gift.id),
            audit=AuditEntry(
                actor=f"user:{user.id}",
                action="nft.gift",
                subject_type="nft_gift",
                subject_id=str(gift.id),
                reason="moved to own wallet" if kind == MOVE else "given to another person",
                details={
                    "collection_id": collection.id,
                    "token_id": tid,
                    "from": giver,
                    "to": to_address,
                    "recipient_user_id": gift.recipient_id,
                },
            ),
        )
        gift.outbox_tx_id = tx.id
        self.session.commit()
        return gift

    # ------------------------------------------------------------------ helpers

    def _find(self, collection_id: object, token_id: object) -> tuple[Collection, int]:
        try:
            cid, tid = int(str(collection_id)), int(str(token_id))
        except ValueError:
            raise NotFound(N_("There is no such card.")) from None
        if not (0 < cid < 2**31 and 0 <= tid < 2**63):
            raise NotFound(N_("There is no such card."))
        collection = self.session.get(Collection, cid)
        if collection is None or not collection.contract_address:
            raise NotFound(N_("There is no such card."))
        return collection, tid

    def _built_in(self, user: User) -> str | None:
        return self.session.scalar(
            select(Address.address).where(Address.user_id == user.id, Address.kind == CUSTODIAL)
        )

    def _recipient(self, value: object, kind: str) -> tuple[str, User | None]:
        text = str(value or "").strip()
        if not text or len(text) > 254:
            raise InvalidInput(
                N_("Give the e-mail address of the person, or a wallet address."),
                field="recipient",
            )
        if text.lower().startswith("0x"):
            address = chain.checksum_address(text)
            if address is None:
                raise InvalidInput(
                    N_("This is not a wallet address (0x and 40 hexadecimal digits)."),
                    field="recipient",
                )
            # A contract that cannot hold cards makes safeTransferFrom revert: the gift fails
            # and the giver keeps the card, so no address needs refusing here.
            owner = self.session.scalar(select(Address).where(Address.address == address))
            return address, (self.session.get(User, owner.user_id) if owner else None)
        if kind == MOVE:
            raise InvalidInput(N_("Give the address of your own wallet."), field="recipient")
        # Only an account whose owner confirmed the address: anyone can sign up with someone
        # else's e-mail, and the card must not go to them.
        person_id = users_by_email(self.session, [text.lower()], verified_only=True).get(
            text.lower()
        )
        person = self.session.get(User, person_id) if person_id else None
        if person is None:
            raise InvalidInput(
                N_(
                    "Nobody with an account has confirmed this e-mail address. Ask them to sign "
                    "up (or to confirm their address) first."
                ),
                field="recipient",
            )
        address = self._built_in(person) or next(iter(self.own_wallets(person)), None)
        if address is None:
            raise InvalidInput(N_("This person has no wallet yet."), field="recipient")
        return address, person
