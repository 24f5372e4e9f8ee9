"""NFT collection categories: the one Python list, in the order of `FanCollection.Category`.

A collection's category is stored by key ("event_ticket"); the contract takes the member's index
(a uint8), so the order here must be the enum's: tests/unit/test_categories.py parses the enum
from contracts/FanCollection.sol and fails when the two disagree. Everything else reads this
list: the deploy script (the index), the shop's card images (the colour), the pages (the label,
through the `category_labels` template value), the contract tests (the index by member name).

Adding a category: a member at the end of the enum in contracts/FanCollection.sol (then
regenerate its artifacts), one `Category` at the end here, and its label's translation in
webui/translations/{ja,en}/LC_MESSAGES/messages.po.
"""

from __future__ import annotations

from dataclasses import dataclass

from backend.core.errors import N_


@dataclass(frozen=True)
class Category:
    key: str  # how a collection stores it; the enum member is key.upper()
    label: str  # msgid of its label on the pages (N_-marked)
    colour: str  # the background of its generated card image

    @property
    def member(self) -> str:
        """The `FanCollection.Category` member's name, e.g. "EVENT_TICKET"."""
        return self.key.upper()


CATEGORIES: tuple[Category, ...] = (
    Category("ambassador_card", N_("Ambassador card"), "#1b6e53"),
    Category("resident_card", N_("Digital resident card"), "#2a5ba8"),
    Category("event_ticket", N_("Event ticket"), "#b2472c"),
    Category("vip_ticket", N_("VIP ticket"), "#7a3fa0"),
    Category("experience", N_("Experience"), "#a06a12"),
    Category("naming_right", N_("Naming right"), "#3c6e8f"),
    Category("donation_certificate", N_("Donation certificate"), "#8f3c5d"),
    Category("lodging_right", N_("Lodging right"), "#4f6e1b"),
)

KEYS: tuple[str, ...] = tuple(c.key for c in CATEGORIES)
BY_KEY: dict[str, Category] = {c.key: c for c in CATEGORIES}


def index(key: str) -> int:
    """The `FanCollection.Category` value of a category key (ValueError for an unknown key)."""
    return KEYS.index(key)
