"""Fan NFT collections as the shop lists them; ownership itself is projected from chain events."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.core.db import Base, utcnow
from backend.core.models import TokenAmount
from backend.regions.models import Town

CATEGORIES = (
    "ambassador_card",
    "resident_card",
    "event_ticket",
    "vip_ticket",
    "experience",
    "naming_right",
    "donation_certificate",
    "lodging_right",
)


class Collection(Base):
    __tablename__ = "collections"
    __table_args__ = (UniqueConstraint("town_id", "slug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), index=True)
    slug: Mapped[str] = mapped_column(String(60))
    name_ja: Mapped[str] = mapped_column(String(120))
    name_en: Mapped[str] = mapped_column(String(120))
    description_ja: Mapped[str] = mapped_column(Text, default="")
    description_en: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(32))
    contract_address: Mapped[str | None] = mapped_column(String(42))
    max_supply: Mapped[int] = mapped_column()
    price_points: Mapped[Decimal | None] = mapped_column(TokenAmount)
    price_yen: Mapped[Decimal | None] = mapped_column(TokenAmount)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    town: Mapped[Town] = relationship()

    def name(self, locale: str) -> str:
        return self.name_ja if locale == "ja" else self.name_en
