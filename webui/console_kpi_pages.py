"""The staff console's KPIs (/towns/<slug>/admin/kpis): one JST month of the town's figures
(this month unless ?month=YYYY-MM), aggregates only, read from SQL (never the node); the
town's STAFF, admins and DATA staff read it (KpiService checks). Data staff download the
month's anonymised events (/towns/<slug>/admin/kpis.csv; 403 for anyone else, each export
audited). A bad month is a 400 that shows the form again and changes nothing.
"""

from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as Redirect

from backend.accounts.roles import current_user
from backend.core.errors import AppError
from backend.insights.services import (
    kpi_export_service,
    kpi_service,
    parse_period,
)
from backend.regions.services import town_by_slug

bp = Blueprint("console_kpi", __name__)


def _login() -> Redirect:
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


@bp.get("/towns/<slug>/admin/kpis")
def kpis(slug: str):
    user = current_user()
    if user is None:
        return _login()
    town = town_by_slug(slug)
    error: AppError | None = None
    try:
        period = parse_period(request.args.get("month"))
    except AppError as exc:
        error, period = exc, parse_period(None)
    report = kpi_service().report(user, town, period)  # 403 unless staff or data staff
    return render_template(
        "console/kpi.html",
        town=town,
        report=report,
        period=period,
        month_typed=request.args.get("month", "") if error else period.month,
        can_export=kpi_export_service().can_export(user, town),
        error=error and error.translated(),
    ), (error.status if error else 200)


@bp.get("/towns/<slug>/admin/kpis.csv")
def kpis_csv(slug: str):
    user = current_user()
    if user is None:
        return _login()
    name, text = kpi_export_service().export_csv(
        user, town_by_slug(slug), request.args.get("month")
    )
    resp = Response(
        "\ufeff" + text,  # a BOM so spreadsheet software reads UTF-8
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
    resp.headers["Cache-Control"] = "no-store"  # pseudonymous rows: not kept by caches
    return resp
