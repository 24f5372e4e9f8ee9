"""The town's staff console at /towns/<slug>/admin: the overview that links every staff page.

Each area of the console has its own page module (webui/console_<area>_pages.py), its own
templates under webui/templates/console/ extending console/base.html, and its own Babel domain;
console/_nav.html lists the sections. Rights are checked in the services; this page shows a
section only to someone who may use it.
"""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for

from backend.accounts.roles import current_user, require_town_role, roles_held
from backend.regions.services import town_by_slug

bp = Blueprint("console", __name__)


@bp.get("/towns/<slug>/admin")
def index(slug: str):
    town = town_by_slug(slug)
    user = current_user()
    if user is None:
        return redirect(url_for("auth.login", next=request.path))
    require_town_role(user, town.id)  # any role in the town; each section checks its own
    held = roles_held(user, town.id)  # as given (an admin is not listed as staff too)
    return render_template("console/index.html", town=town, roles=held)
