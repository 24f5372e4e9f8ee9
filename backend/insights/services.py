"""The insights domain's services for the current app: the KPI report (kpis.py) and the
anonymised export (export.py), and the period helpers pages use (period.py)."""

from __future__ import annotations

from flask import current_app

from backend.core.db import get_db
from backend.core.purpose_keys import KPI_PSEUDONYM, purpose_key
from backend.insights.export import KpiExportService
from backend.insights.kpis import Kpis, KpiService
from backend.insights.period import Period, parse_period

__all__ = [
    "KpiExportService",
    "KpiService",
    "Kpis",
    "Period",
    "kpi_export_service",
    "kpi_service",
    "parse_period",
]


def kpi_service() -> KpiService:
    """A KpiService for the current app and request."""
    return KpiService(get_db().session())


def kpi_export_service() -> KpiExportService:
    """A KpiExportService keyed with the app's KPI_PSEUDONYM purpose key."""
    key = purpose_key(str(current_app.config["SECRET_KEY"]), KPI_PSEUDONYM)
    return KpiExportService(get_db().session(), key)
