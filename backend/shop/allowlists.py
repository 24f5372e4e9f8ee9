"""Allowlists of invitation-only listings: the uploaded list read, stored, and the buyer's
signed voucher found at purchase (the worker signs them: CollectionConsole.sign_pending_vouchers).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.accounts.services import custodial_addresses, users_by_email
from backend.chain import api as chain
from backend.core.db import utcnow
from backend.core.errors import N_, AppError, Conflict, InvalidInput
from backend.core.times import as_utc
from backend.core.upsert import insert_for
from backend.shop.models import AllowlistEntry, Listing, Order

MAX_ALLOWLIST_BYTES = 256 * 1024
MAX_ALLOWLIST_ROWS = 5_000
_ALLOWLIST_CHUNK = 500  # rows per INSERT (6 parameters each: well under SQLite's limit)
_EMAIL = re.compile(r"[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+")
EMPTY_VOUCHER: list[Any] = [0, 0, 0, "0x"]


class NotOnAllowlist(AppError):
    status = 403
    code = "not_on_allowlist"


def parse_allowlist(session: Session, data: bytes) -> list[tuple[str, str | None]]:
    """(address, e-mail or None) per line of an uploaded list: e-mails become the person's
    built-in wallet address. Any unreadable line or unknown e-mail refuses the whole list."""
    if not data or len(data) > MAX_ALLOWLIST_BYTES:
        raise InvalidInput(
            N_("Upload a list of at most 256 KB: one e-mail or address per line."),
            field="allowlist",
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(N_("The list must be a UTF-8 text file."), field="allowlist") from None
    lines = [ln.split(",")[0].strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and ln.lower() not in ("email", "address", "e-mail")]
    if not lines or len(lines) > MAX_ALLOWLIST_ROWS:
        raise InvalidInput(
            N_("The list must have 1 to %(max)s lines."),
            field="allowlist",
            max=MAX_ALLOWLIST_ROWS,
        )
    # E-mails are looked up together (one query per 500, not one per line) and count only
    # where the account confirmed them: an unconfirmed address may be someone else's typo.
    emails = [ln.lower() for ln in lines if chain.checksum_address(ln) is None]
    emails = [e for e in emails if _EMAIL.fullmatch(e)]
    user_ids = users_by_email(session, emails, verified_only=True)
    wallets = custodial_addresses(session, user_ids.values())
    out: dict[str, tuple[str, str | None]] = {}
    bad: list[str] = []
    for n, line in enumerate(lines, start=1):
        address = chain.checksum_address(line)
        email = None
        if address is None and _EMAIL.fullmatch(line):
            email = line.lower()
            user_id = user_ids.get(email)
            address = wallets.get(user_id) if user_id is not None else None
        if address is None:
            bad.append(f"{n}: {line[:60]}")
            continue
        out.setdefault(address, (address, email))
    if bad:
        raise InvalidInput(
            N_(
                "These lines are neither an address nor an e-mail its account holder has"
                " confirmed: %(lines)s"
            ),
            field="allowlist",
            lines="; ".join(bad[:10]),
        )
    return list(out.values())


def store_allowlist(
    session: Session, listing: Listing, entries: list[tuple[str, str | None]]
) -> int:
    """Add the entries the listing's list lacks; returns how many were new. INSERT ... ON
    CONFLICT DO NOTHING on UNIQUE(listing_id, address): two uploads at once store each line
    once, and neither fails (a read-then-insert answered the second with a 500). Sorted, so
    that two uploads lock the same index entries in the same order (no deadlock)."""
    deadline = int(as_utc(listing.ends_at).timestamp())
    now = utcnow()
    rows = [
        {
            "listing_id": listing.id,
            "address": address,
            "email": email,
            "max_quantity": listing.wallet_cap,
            "deadline": deadline,
            "created_at": now,
        }
        for address, email in sorted(entries)
    ]
    added = 0
    for i in range(0, len(rows), _ALLOWLIST_CHUNK):
        stmt = (
            insert_for(session, AllowlistEntry)
            .values(rows[i : i + _ALLOWLIST_CHUNK])
            .on_conflict_do_nothing(index_elements=["listing_id", "address"])
            .returning(AllowlistEntry.id)  # only the rows inserted come back
        )
        added += len(session.execute(stmt).all())
    return added


def voucher_for(session: Session, listing: Listing, buyer: str) -> list[Any]:
    """The voucher argument of PrimarySale.buy for `buyer`: empty for an open listing, the
    signed voucher of the buyer's allowlist row otherwise. Raises NotOnAllowlist (not on the
    list), Conflict (the voucher is not signed yet, or was used by an earlier order)."""
    if not listing.allowlist_only:
        return EMPTY_VOUCHER
    entry = session.scalar(
        select(AllowlistEntry).where(
            AllowlistEntry.listing_id == listing.id,
            func.lower(AllowlistEntry.address) == buyer.lower(),
        )
    )
    if entry is None:
        raise NotOnAllowlist(
            N_("This sale is for invited buyers only, and you are not on its list.")
        )
    if entry.signature is None:
        raise Conflict(
            N_("Your invitation is being prepared; try again in a minute."), code="voucher_pending"
        )
    used = session.scalar(
        select(Order.id).where(
            Order.listing_id == listing.id,
            func.lower(Order.buyer_address) == buyer.lower(),
            Order.status.in_(("pending_payment", "processing", "completed")),
        )
    )
    if used is not None:
        raise Conflict(
            N_("You have already used your invitation to this sale."), code="voucher_used"
        )
    return [entry.max_quantity, entry.id, entry.deadline, entry.signature]
