"""What a notification says, written when it is shown: in the page's language on the list, in
the person's language (ja unless they chose en) in a mail. A row holds only `params`; names come
in both languages (`shop_ja`, `shop_en`, ...) and the reader's is picked here. Never an address
or a transaction hash: people read shop, town and card names, amounts and titles.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask_babel import gettext

from backend.core.errors import N_
from backend.notifications.models import (
    CARD_ISSUED,
    CHARGE_PAID,
    EMAIL,
    IN_APP,
    POINTS_ARRIVED,
    TICKET_USED,
    VOTE_OPENED,
)

# The settings page's rows and the mails' "switch off" line.
KIND_LABELS = {
    CHARGE_PAID: N_("A charge was paid from your points"),
    POINTS_ARRIVED: N_("Points arrived in your account"),
    TICKET_USED: N_("A use of your ticket was marked"),
    VOTE_OPENED: N_("A poll or proposal opened in your town"),
    CARD_ISSUED: N_("A printed payment card was issued in your name"),
}
CHANNEL_LABELS = {IN_APP: N_("In the app"), EMAIL: N_("By e-mail")}


@dataclass(frozen=True)
class Text:
    title: str
    body: str
    link: str  # a path of this site (the mail prefixes PUBLIC_URL)


def _pick(params: Mapping[str, Any], name: str, locale: str) -> str:
    """The `name` in the reader's language, else the other one."""
    first, second = (f"{name}_ja", f"{name}_en") if locale == "ja" else (f"{name}_en", f"{name}_ja")
    return str(params.get(first) or params.get(second) or "")


def _amount(params: Mapping[str, Any]) -> str:
    return f"{int(params.get('amount', 0)):,}"


def describe(kind: str, params: Mapping[str, Any], locale: str) -> Text:
    """Title, sentence and link of a notification, in the current locale (`locale` picks the
    names; the caller forces the mail's)."""
    town = _pick(params, "town", locale)
    if kind == CHARGE_PAID:
        return Text(
            gettext("Payment made"),
            gettext(
                "You paid %(amount)s points at %(shop)s (%(town)s).",
                amount=_amount(params),
                shop=_pick(params, "shop", locale),
                town=town,
            ),
            "/points",
        )
    if kind == POINTS_ARRIVED:
        return Text(
            gettext("Points arrived"),
            gettext(
                "%(amount)s points of %(town)s arrived in your account.",
                amount=_amount(params),
                town=town,
            ),
            "/points",
        )
    if kind == TICKET_USED:
        perk = _pick(params, "perk", locale) or _pick(params, "collection", locale)
        return Text(
            gettext("Ticket used"),
            gettext(
                "One use of “%(perk)s” on your %(collection)s (No. %(token)s) was marked. "
                "Uses left: %(left)s.",
                perk=perk,
                collection=_pick(params, "collection", locale),
                token=int(params.get("token_id", 0)),
                left=int(params.get("uses_left", 0)),
            ),
            "/my/collection",
        )
    if kind == VOTE_OPENED:
        slug, row = str(params.get("town_slug", "")), int(params.get("row_id", 0))
        title = _pick(params, "title", locale)
        if params.get("what") == "poll":
            return Text(
                gettext("New poll in %(town)s", town=town),
                gettext("“%(title)s” is open for votes.", title=title),
                f"/towns/{slug}/dao/polls/{row}",
            )
        return Text(
            gettext("New proposal in %(town)s", town=town),
            gettext("“%(title)s” is open for votes.", title=title),
            f"/towns/{slug}/dao/proposals/{row}",
        )
    if kind == CARD_ISSUED:
        if params.get("replaced"):
            return Text(
                gettext("Printed card replaced"),
                gettext(
                    "Your printed payment card for %(town)s was replaced at the town hall; the"
                    " old card no longer works. If you did not ask for this, tell the town hall.",
                    town=town,
                ),
                "/points",
            )
        return Text(
            gettext("Printed card issued"),
            gettext(
                "A printed payment card for %(town)s was issued in your name at the town hall."
                " If you did not ask for it, tell the town hall.",
                town=town,
            ),
            "/points",
        )
    raise ValueError(f"unknown notification kind {kind!r}")
