"""NFT categories: backend/shop/categories.py is the one Python list, and it is the enum
`FanCollection.Category` of contracts/FanCollection.sol, member for member and in order (the
contract takes a category as the member's index)."""

from __future__ import annotations

import re

from backend.shop.categories import BY_KEY, CATEGORIES, KEYS, index
from tests.conftest import ROOT

SOURCE = ROOT / "contracts" / "FanCollection.sol"


def solidity_enum(source: str, name: str) -> list[str]:
    """The members of `enum <name> { ... }` in Solidity source, in order (comments dropped)."""
    source = re.sub(r"//[^\n]*|/\*.*?\*/", "", source, flags=re.S)
    found = re.search(rf"\benum\s+{name}\s*\{{([^}}]*)\}}", source)
    assert found, f"no enum {name}"
    return [m.strip() for m in found.group(1).split(",") if m.strip()]


def test_the_python_list_is_the_solidity_enum_in_order():
    members = solidity_enum(SOURCE.read_text(), "Category")
    assert [c.member for c in CATEGORIES] == members
    assert [index(k) for k in KEYS] == list(range(len(members)))


def test_the_check_notices_a_reordered_or_added_member():
    enum = "enum Category {\n    AMBASSADOR_CARD, // first\n    /* a note */ RESIDENT_CARD\n}"
    assert solidity_enum(enum, "Category") == ["AMBASSADOR_CARD", "RESIDENT_CARD"]
    text = SOURCE.read_text()
    swapped = text.replace("EVENT_TICKET,", "X,").replace("VIP_TICKET,", "EVENT_TICKET,")
    assert solidity_enum(swapped.replace("X,", "VIP_TICKET,"), "Category") != [
        c.member for c in CATEGORIES
    ]
    added = text.replace("LODGING_RIGHT", "LODGING_RIGHT,\n        FARM_SHARE")
    assert solidity_enum(added, "Category")[-1] == "FARM_SHARE"


def test_each_category_has_its_own_key_label_and_colour():
    for attr in ("key", "label", "colour"):
        values = [getattr(c, attr) for c in CATEGORIES]
        assert all(values) and len(set(values)) == len(values), attr
    assert BY_KEY["event_ticket"].label == "Event ticket"
