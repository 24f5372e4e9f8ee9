"""Metadata of a town's resident passes (ResidentPass.tokenURI = /meta/<town>/resident/<id>).

A pass is soulbound (ERC-5192 locked): the JSON says so in its description and attributes, so a
wallet shows it as a non-transferable credential. Whether a pass exists comes from the indexer's
ownership projection (a revoked pass is burned and disappears), never from a chain call: a
marketplace crawling tokenURIs must not load the node.
"""

from __future__ import annotations

from typing import Any

from markupsafe import escape
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.chain import api as chain
from backend.core.errors import N_, NotFound
from backend.regions.models import Town

RESIDENT_SLUG = "resident"  # the path segment deploy.py puts in the pass's base URI


def resident_image_path(town_slug: str) -> str:
    return f"/meta/{town_slug}/{RESIDENT_SLUG}/image.svg"


class ResidentMetadata:
    def __init__(self, session: Session) -> None:
        self.session = session

    def town(self, slug: str) -> Town:
        town = self.session.scalar(select(Town).where(Town.slug == slug))
        if town is None:
            raise NotFound(N_("There is no such town."), town=slug)
        return town

    def holder(self, town: Town, token_id: int) -> str | None:
        """The pass's holder from the indexed Transfer events (None: never issued, or revoked)."""
        return chain.owner_by_key(self.session, f"towns.{town.slug}.ResidentPass", token_id)

    def metadata(self, town_slug: str, token_id: int, base_url: str) -> dict[str, Any]:
        """OpenSea-compatible JSON of an existing pass; NotFound (JSON 404) otherwise."""
        town = self.town(town_slug)
        if token_id < 1 or self.holder(town, token_id) is None:
            raise NotFound(N_("This resident pass does not exist."), token_id=token_id)
        base = base_url.rstrip("/")
        return {
            "name": f"{town.name_en} Resident Pass #{token_id}",
            "description": (
                f"A resident pass of {town.name_en}: one verified resident, one vote in the "
                "town's resident chamber. It is soulbound (ERC-5192 locked): it cannot be "
                "transferred or sold, only issued and revoked by the town's registry."
            ),
            "image": base + resident_image_path(town.slug),
            "external_url": f"{base}/towns/{town.slug}",
            "attributes": [
                {"trait_type": "Town", "value": town.name_en},
                {"trait_type": "Chamber", "value": "Resident"},
                {"trait_type": "Voting power", "value": 1, "display_type": "number"},
                {"trait_type": "Transferable", "value": "No (soulbound)"},
            ],
        }

    def image_svg(self, town_slug: str) -> str:
        """The pass's card image, generated (no external asset)."""
        town = self.town(town_slug)
        name = escape(town.name_en)
        return (
            '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 600 380" role="img" '
            f'aria-label="{name} Resident Pass">'
            '<rect width="600" height="380" rx="28" fill="#24425e"/>'
            '<circle cx="500" cy="90" r="120" fill="#ffffff" opacity="0.12"/>'
            f'<text x="36" y="70" font-family="sans-serif" font-size="26" fill="#fff">{name}</text>'
            '<text x="36" y="200" font-family="sans-serif" font-size="38" font-weight="bold" '
            'fill="#fff">Resident Pass</text>'
            '<text x="36" y="250" font-family="sans-serif" font-size="22" fill="#fff">'
            "1 resident, 1 vote · soulbound</text>"
            "</svg>"
        )
