"""Imports every domain's models so that Base.metadata is complete (Alembic, checks)."""

from backend.core.db import Base
from backend.core.models import AuditLog, Heartbeat
from backend.nfts.models import Collection
from backend.regions.models import Town

__all__ = ["AuditLog", "Base", "Collection", "Heartbeat", "Town"]
