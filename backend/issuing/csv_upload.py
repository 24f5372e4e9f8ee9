"""Reading a town hall's recipient list: a CSV of `recipient, amount[, note]`.

Encodings: UTF-8 with or without a BOM, and Shift_JIS (as cp932, Windows' Shift_JIS, which
Excel writes for a Japanese "CSV" save). Headers may be English or Japanese. A file that cannot
be read as a whole (too big, too many rows, no header, not text) raises BadUpload and nothing
is written; a bad row is only that row's problem (the preview shows it).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from backend.core.errors import N_
from backend.issuing.errors import BadUpload

MAX_FILE_BYTES = 512 * 1024
MAX_ROWS = 5_000
HEADERS = {
    "recipient": ("recipient", "受取人", "宛先", "email", "メールアドレス"),
    "amount": ("amount", "ポイント", "ポイント数", "数量", "金額"),
    "note": ("note", "メモ", "備考"),
}


class FileTooLarge(BadUpload):
    status = 413
    code = "file_too_large"


@dataclass(frozen=True)
class RawRow:
    line: int  # the file's line number (1 is the header)
    recipient: str
    amount: str
    note: str = ""


def decode(data: bytes) -> str:
    """The file's text: UTF-8 (a BOM is dropped), else Shift_JIS (cp932); BadUpload if neither."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for encoding in ("utf-8", "cp932"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise BadUpload(N_("The file is not text in UTF-8 or Shift_JIS. Save it as CSV and try again."))


def _column(header: list[str], field: str) -> int | None:
    names = HEADERS[field]
    for i, name in enumerate(header):
        if name.strip().lower() in names:
            return i
    return None


def read_rows(data: bytes) -> list[RawRow]:
    """The rows of an uploaded CSV (blank lines skipped)."""
    if len(data) > MAX_FILE_BYTES:
        raise FileTooLarge(
            N_("The file is larger than %(max)d KB. Split it into several files."),
            max=MAX_FILE_BYTES // 1024,
        )
    if not data.strip():
        raise BadUpload(N_("The file is empty."))
    text = decode(data)
    if "\x00" in text:
        raise BadUpload(
            N_("The file is not text in UTF-8 or Shift_JIS. Save it as CSV and try again.")
        )
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[RawRow] = []
    try:
        header: list[str] | None = None
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue
            if header is None:
                header = record
                recipient, amount, note = (
                    _column(header, f) for f in ("recipient", "amount", "note")
                )
                if recipient is None or amount is None:
                    raise BadUpload(
                        N_(
                            "The first line must name the columns: recipient, amount and "
                            "optionally note."
                        )
                    )
                continue
            if len(rows) >= MAX_ROWS:
                raise BadUpload(
                    N_("The file has more than %(max)d rows. Split it into several files."),
                    max=MAX_ROWS,
                )
            assert recipient is not None and amount is not None  # noqa: S101 - set with header

            def cell(i: int | None, record: list[str] = record) -> str:
                return record[i].strip() if i is not None and i < len(record) else ""

            rows.append(RawRow(reader.line_num, cell(recipient), cell(amount), cell(note)))
    except csv.Error:
        raise BadUpload(N_("The file is not a valid CSV file.")) from None
    if header is None:
        raise BadUpload(
            N_("The first line must name the columns: recipient, amount and optionally note.")
        )
    if not rows:
        raise BadUpload(N_("The file has no recipients."))
    return rows
