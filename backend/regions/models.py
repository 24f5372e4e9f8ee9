"""Towns on the platform. Each has its own points contract and collections."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from backend.core.db import Base, utcnow


class Town(Base):
    __tablename__ = "towns"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(60), unique=True)
    name_ja: Mapped[str] = mapped_column(String(120))
    name_en: Mapped[str] = mapped_column(String(120))
    prefecture_ja: Mapped[str] = mapped_column(String(60), default="")
    prefecture_en: Mapped[str] = mapped_column(String(60), default="")
    chain_id: Mapped[int] = mapped_column()
    points_address: Mapped[str | None] = mapped_column(String(42))
    points_symbol: Mapped[str] = mapped_column(String(16), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    def name(self, locale: str) -> str:
        return self.name_ja if locale == "ja" else self.name_en
