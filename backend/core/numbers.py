"""Numbers from requests, read strictly (issue 11 §6).

- Only ASCII digits make a number: Python's int() and str.isdigit() also take "²", "１２" or
  "1_000", which either crash later (int("²") raises) or mean something the user did not type.
- A database id is 1..2^31-1 (PostgreSQL INTEGER; SQLite raises OverflowError at 2^63): a
  larger one cannot exist, so it is "not found", never a 500.
"""

from __future__ import annotations

import re
from typing import TypeGuard

from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter, ValidationError

MAX_DB_ID = 2**31 - 1
_DIGITS = re.compile(r"[0-9]+")
MAX_DIGITS = 1000  # the longest number `ascii_int` reads (far past any amount or id)


def is_ascii_digits(value: object) -> TypeGuard[str]:
    """Whether `value` is a string of ASCII digits (surrounding spaces allowed)."""
    return isinstance(value, str) and _DIGITS.fullmatch(value.strip(" \t\r\n")) is not None


def ascii_int(value: object) -> int | None:
    """An int from a JSON int or a string of ASCII digits; None for anything else (bools too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if is_ascii_digits(value):
        digits = str(value).strip(" \t\r\n").lstrip("0") or "0"
        # Python refuses to parse 4,300 digits or more (ValueError: a 500 from a form field);
        # no amount or id comes near this many, so such a number is simply not one.
        return int(digits) if len(digits) <= MAX_DIGITS else None
    return None


def db_id_or_none(value: object) -> int | None:
    """`value` as a database id, or None when it cannot be one (then: not found)."""
    n = ascii_int(value) if not isinstance(value, int) or isinstance(value, bool) else value
    return n if n is not None and 1 <= n <= MAX_DB_ID else None


class DbIdConverter(IntegerConverter):
    """`<int:...>` in URLs: ASCII digits, at most MAX_DB_ID, so /x/9223372036854775808 is 404.

    Replaces Flask's default `int` converter for every route (registered before any blueprint);
    a route that needs larger numbers names its own `max`."""

    # At most 10 digits (2^31-1 has 10): a longer number never matches, so no rule matches and
    # the answer is a plain 404 (a match that failed only its max check could answer 405 when
    # another method is routed on the same path).
    regex = r"\d{1,10}"

    def __init__(self, map, *args, **kwargs):  # type: ignore[no-untyped-def]  # noqa: A002
        kwargs.setdefault("max", MAX_DB_ID)
        super().__init__(map, *args, **kwargs)

    def to_python(self, value: str) -> int:
        try:
            return int(super().to_python(value))
        except ValidationError:
            # Up to ten digits but past the maximum (e.g. 2147483648): no row has this id, so
            # "not found" here. Letting the rule fail instead makes werkzeug answer 405 when
            # another method is routed on the same path (POST next to GET), a status the API
            # does not declare (found by the API fuzz test).
            raise NotFound() from None
