"""Every domain's models, so that Base.metadata is complete (Alembic, table checks)."""

from backend.core.db import Base
from backend.core.discovery import import_all

MODEL_MODULES = import_all("models")

__all__ = ["MODEL_MODULES", "Base"]
