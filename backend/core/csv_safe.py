"""CSV cells that a spreadsheet will not run as formulas (OWASP "CSV injection").

Excel, LibreOffice and Google Sheets evaluate a cell that starts with = + - @ (or a tab or
carriage return followed by one); "=HYPERLINK(...)" in a bank reference would run on the town's
accounting PC. Such a text cell gets a leading apostrophe, which spreadsheets show as text.
Numbers the app writes itself (amounts, possibly negative) go in as ints and are left alone.
"""

from __future__ import annotations

FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def csv_cell(value: object) -> object:
    """`value` safe to open in a spreadsheet: text starting like a formula is quoted."""
    if isinstance(value, str) and value.lstrip(" ").startswith(FORMULA_START):
        return "'" + value
    return value
