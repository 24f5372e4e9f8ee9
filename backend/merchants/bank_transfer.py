"""Shops' bank accounts (town staff only) and the 全銀協 (Zengin) 総合振込 transfer file for a
batch of approved settlements, which Japanese banks' internet banking imports.

The file is fixed-length: 120-byte records in Shift_JIS, each followed by CRLF:
  1 header   (data kind 1, type 21 総合振込, code 0 = JIS/SJIS, originator, date, town's account)
  2 data     one per settlement (payee's bank, branch, account, name, amount)
  8 trailer  (count, total)
  9 end
Text is half-width katakana, digits, upper-case letters and ( ) . - / space, left-aligned and
space-padded; numbers right-aligned and zero-padded. Names typed in full-width kana or hiragana
are converted; small kana become large (banks refuse ｧ, ｯ...); ー becomes -.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.accounts.models import User
from backend.accounts.roles import STAFF, require_town_role
from backend.core.db import utcnow
from backend.core.errors import N_, Conflict, InvalidInput
from backend.core.models import AuditLog
from backend.core.numbers import db_id_or_none
from backend.merchants.models import (
    APPROVED,
    Merchant,
    MerchantBankAccount,
    Settlement,
    TownMoneySettings,
)
from backend.regions.models import Town

RECORD = 120
ACCOUNT_TYPES = {"1": "普通", "2": "当座", "4": "貯蓄"}
_SMALL = str.maketrans("ｧｨｩｪｫｬｭｮｯ", "ｱｲｳｴｵﾔﾕﾖﾂ")
_ALLOWED = re.compile(r"[0-9A-Z ()./\-\uff66-\uff9f]*")


class TransferFileRefused(Conflict):
    code = "transfer_file_refused"


def _full_to_half() -> dict[str, str]:
    table: dict[str, str] = {}
    halves = [chr(c) for c in range(0xFF66, 0xFF9E)]
    for h in halves:
        table.setdefault(unicodedata.normalize("NFKC", h), h)
        for mark in ("ﾞ", "ﾟ"):
            full = unicodedata.normalize("NFKC", h + mark)
            if len(full) == 1:
                table.setdefault(full, h + mark)
    return table


_KANA = _full_to_half()


def to_zengin_kana(text: str) -> str:
    """Full-width katakana, hiragana, full-width letters and digits -> the Zengin charset."""
    out = []
    for ch in text.strip():
        if "\u3041" <= ch <= "\u3096":  # hiragana -> katakana
            ch = chr(ord(ch) + 0x60)
        if ch in "ーｰ－―‐":
            out.append("-")
            continue
        if "\uff66" <= ch <= "\uff9f":  # already half-width katakana
            out.append(ch)
            continue
        if ch in _KANA:
            out.append(_KANA[ch])
            continue
        if ch in "　":
            out.append(" ")
            continue
        out.append(unicodedata.normalize("NFKC", ch).upper())
    return "".join(out).translate(_SMALL)


def _kana_field(value: object, field: str, width: int, required: bool = True) -> str:
    text = to_zengin_kana(value) if isinstance(value, str) else ""
    if (required and not text) or len(text) > width or not _ALLOWED.fullmatch(text):
        raise InvalidInput(
            N_("%(field)s must be katakana, digits or A-Z, at most %(max)d characters."),
            field=field,
            max=width,
        )
    return text


def _digits(value: object, field: str, width: int, pad: bool = False) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not text.isascii() or not text.isdigit() or not 1 <= len(text) <= width:
        raise InvalidInput(N_("%(field)s must be %(max)d digits."), field=field, max=width)
    if len(text) != width and not pad:
        raise InvalidInput(N_("%(field)s must be %(max)d digits."), field=field, max=width)
    return text.zfill(width)


def _account_type(value: object) -> str:
    if value not in ACCOUNT_TYPES:
        raise InvalidInput(
            N_("account_type must be 1 (普通), 2 (当座) or 4 (貯蓄)."), field="account_type"
        )
    return str(value)


def set_bank_account(
    session: Session, actor: User | None, merchant: Merchant, data: dict[str, object]
) -> MerchantBankAccount:
    """Town STAFF of the shop's town set its bank account (AuditLog "merchant.bank_account",
    with the account's last digits only). Bad input: InvalidInput, nothing changed. Commits."""
    actor = require_town_role(actor, merchant.town_id, STAFF)
    values = {
        "bank_code": _digits(data.get("bank_code"), "bank_code", 4),
        "bank_name": _kana_field(data.get("bank_name"), "bank_name", 15),
        "branch_code": _digits(data.get("branch_code"), "branch_code", 3),
        "branch_name": _kana_field(data.get("branch_name"), "branch_name", 15),
        "account_type": _account_type(data.get("account_type")),
        "account_number": _digits(data.get("account_number"), "account_number", 7, pad=True),
        "holder_name": _kana_field(data.get("holder_name"), "holder_name", 30),
    }
    row = session.get(MerchantBankAccount, merchant.id)
    if row is None:
        row = MerchantBankAccount(merchant_id=merchant.id, updated_by=actor.id)
        session.add(row)
    for k, v in values.items():
        setattr(row, k, v)
    row.updated_by = actor.id
    row.updated_at = utcnow()
    session.add(
        AuditLog(
            actor=f"user:{actor.id}",
            action="merchant.bank_account",
            subject_type="merchant",
            subject_id=str(merchant.id),
            reason="shop bank account set by town staff",
            details={
                "bank_code": values["bank_code"],
                "account_tail": values["account_number"][-3:],
            },
        )
    )
    session.commit()
    return row


def set_originator(
    session: Session, actor: User | None, town: Town, data: dict[str, object]
) -> TownMoneySettings:
    """Town STAFF set the town's own account, the transfer file's originator. Commits."""
    actor = require_town_role(actor, town.id, STAFF)
    values = {
        "originator_code": _digits(data.get("originator_code"), "originator_code", 10),
        "originator_name": _kana_field(data.get("originator_name"), "originator_name", 40),
        "bank_code": _digits(data.get("bank_code"), "bank_code", 4),
        "bank_name": _kana_field(data.get("bank_name"), "bank_name", 15),
        "branch_code": _digits(data.get("branch_code"), "branch_code", 3),
        "branch_name": _kana_field(data.get("branch_name"), "branch_name", 15),
        "account_type": _account_type(data.get("account_type")),
        "account_number": _digits(data.get("account_number"), "account_number", 7, pad=True),
    }
    row = session.get(TownMoneySettings, town.id)
    if row is None:
        row = TownMoneySettings(town_id=town.id)
        session.add(row)
    for k, v in values.items():
        setattr(row, k, v)
    row.updated_by = actor.id
    row.updated_at = utcnow()
    session.add(
        AuditLog(
            actor=f"user:{actor.id}",
            action="town.bank_account",
            subject_type="town",
            subject_id=str(town.id),
            reason="town's originator account set by town staff",
            details={
                "bank_code": values["bank_code"],
                "account_tail": values["account_number"][-3:],
            },
        )
    )
    session.commit()
    return row


# ---------------------------------------------------------------------- the fixed-length file


def _x(text: str, width: int) -> bytes:
    raw = text.encode("shift_jis")
    if len(raw) > width:
        raise ValueError(f"{text!r} is longer than {width} bytes")
    return raw + b" " * (width - len(raw))


def _n(value: int, width: int) -> bytes:
    text = str(value)
    if value < 0 or len(text) > width:
        raise ValueError(f"{value} does not fit {width} digits")
    return text.zfill(width).encode("ascii")


@dataclass(frozen=True)
class Payee:
    account: MerchantBankAccount
    amount: int
    customer_code: str  # our settlement id, echoed by the bank's result file


def header(o: TownMoneySettings, day: dt.date) -> bytes:
    rec = (
        b"1"
        + b"21"  # 総合振込
        + b"0"  # code kind: SJIS
        + _n(int(o.originator_code or 0), 10)
        + _x(o.originator_name or "", 40)
        + _n(day.month * 100 + day.day, 4)
        + _n(int(o.bank_code or 0), 4)
        + _x(o.bank_name or "", 15)
        + _n(int(o.branch_code or 0), 3)
        + _x(o.branch_name or "", 15)
        + _x(o.account_type or "1", 1)
        + _n(int(o.account_number or 0), 7)
        + _x("", 17)
    )
    assert len(rec) == RECORD  # noqa: S101 - the layout's own invariant
    return rec


def data_record(p: Payee) -> bytes:
    a = p.account
    rec = (
        b"2"
        + _n(int(a.bank_code), 4)
        + _x(a.bank_name, 15)
        + _n(int(a.branch_code), 3)
        + _x(a.branch_name, 15)
        + _x("", 4)  # clearing house: unused
        + _x(a.account_type, 1)
        + _n(int(a.account_number), 7)
        + _x(a.holder_name, 30)
        + _n(p.amount, 10)
        + b"0"  # new-code: none
        + _x(p.customer_code, 10)
        + _x("", 10)
        + _x("", 1)  # transfer kind: the bank's default
        + _x("", 1)
        + _x("", 7)
    )
    assert len(rec) == RECORD  # noqa: S101
    return rec


def trailer(count: int, total: int) -> bytes:
    rec = b"8" + _n(count, 6) + _n(total, 12) + _x("", 101)
    assert len(rec) == RECORD  # noqa: S101
    return rec


def end() -> bytes:
    return b"9" + _x("", 119)


def zengin_file(o: TownMoneySettings, day: dt.date, payees: list[Payee]) -> bytes:
    records = [header(o, day), *(data_record(p) for p in payees)]
    records += [trailer(len(payees), sum(p.amount for p in payees)), end()]
    return b"".join(r + b"\r\n" for r in records)


def transfer_file(
    session: Session, actor: User | None, town: Town, ids: object, day: object
) -> tuple[str, bytes]:
    """(file name, bytes) of the transfer file for approved settlements of `town` (`ids`, or
    every approved one when None), to be paid on `day` (YYYY-MM-DD). Town STAFF only; refused
    (409, nothing written) when the town's account or a shop's bank account is missing.
    AuditLog "settlement.transfer_file" with the ids and the total. Commits."""
    actor = require_town_role(actor, town.id, STAFF)
    try:
        when = dt.date.fromisoformat(day) if isinstance(day, str) else None
    except ValueError:
        when = None
    if when is None:
        raise InvalidInput(N_("Dates must look like 2026-04-30."), field="transfer_date")
    q = select(Settlement).where(Settlement.town_id == town.id, Settlement.status == APPROVED)
    if ids is not None:
        if (
            not isinstance(ids, list)
            or not ids
            or len(ids) > 1000
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
        ):
            raise InvalidInput(N_("settlement_ids must be a list of ids."), field="settlement_ids")
        # An id the database cannot hold names no settlement: refused below as one not found.
        q = q.where(Settlement.id.in_([i for i in ids if db_id_or_none(i) is not None]))
    rows = list(session.scalars(q.order_by(Settlement.id)))
    if ids is not None and len(rows) != len(set(ids)):
        found = {s.id for s in rows}
        raise TransferFileRefused(
            N_("Only approved settlements of this town can be paid: %(ids)s are not."),
            ids=", ".join(str(i) for i in sorted(set(ids) - found)),
        )
    if not rows:
        raise TransferFileRefused(N_("There is no approved settlement to pay."))
    origin = session.get(TownMoneySettings, town.id)
    if origin is None or not origin.originator_code:
        raise TransferFileRefused(N_("Set the town's bank account (the originator) first."))
    payees = []
    for s in rows:
        account = session.get(MerchantBankAccount, s.merchant_id)
        if account is None:
            raise TransferFileRefused(
                N_("Shop %(merchant)d has no bank account yet."), merchant=s.merchant_id
            )
        payees.append(Payee(account, int(s.amount), str(s.id)))
    data = zengin_file(origin, when, payees)
    session.add(
        AuditLog(
            actor=f"user:{actor.id}",
            action="settlement.transfer_file",
            subject_type="town",
            subject_id=str(town.id),
            amount=sum(p.amount for p in payees),
            reason="bank transfer file made for approved settlements",
            details={"settlement_ids": [s.id for s in rows], "transfer_date": when.isoformat()},
        )
    )
    session.commit()
    return f"zengin-{town.slug}-{when.isoformat()}.txt", data
