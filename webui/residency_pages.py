"""A person's resident pass (/me/residency, issue 15 §3).

The page lists the towns with the person's pass in each (being issued, issued with its number,
revoked). Where they hold none and the platform has a digital-ID provider, "Verify with
<provider>" starts OpenID Connect (a link, GET /me/residency/<slug>/verify: the page's CSP lets
forms post only to this origin, and starting only puts a fresh state in the session); the
provider sends them back to /me/residency/callback, where ResidencyService issues the pass if
the verified address is in the town. Otherwise the page says to visit the town hall. Errors
are shown on the page with their 4xx status and change nothing.
"""

from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template, request, session, url_for

from backend.accounts.roles import current_user
from backend.core.db import get_db
from backend.core.errors import N_, AppError, InvalidInput
from backend.regions.services import town_by_slug
from backend.residency import oidc
from backend.residency.services import residency_service

bp = Blueprint("residency_pages", __name__)
# My page's link here (templates/auth/me.html) says this; marked here so that it is extracted
# into this area's catalog with the page it leads to.
MY_PAGE_LINK = N_("Your vote in the resident chamber")
_TOWN = "residency_oidc_town"  # the town a verification started for (the session)


def _login() -> Response:
    return redirect(url_for("auth.login", next=request.path))


def _page(error: AppError | None = None) -> tuple[str, int]:
    svc = residency_service()
    rows = {r.town_id: r for r in svc.my_passes(current_user())}
    return render_template(
        "residency/me.html",
        towns=svc.towns(),
        rows=rows,
        oidc_on=oidc.configured(),
        provider=oidc.provider_name(),
        notice=request.args.get("notice"),
        error=error and error.translated(),
    ), (error.status if error else 200)


@bp.get("/me/residency")
def me():
    if current_user() is None:
        return _login()
    return _page()


@bp.get("/me/residency/<slug>/verify")
def verify(slug: str):
    if current_user() is None:
        return _login()
    town = town_by_slug(slug)
    if not oidc.configured():
        return _page(InvalidInput(N_("Verification with a digital ID is not available here.")))
    session[_TOWN] = town.slug
    try:
        return oidc.start(url_for(".callback", _external=True))
    except AppError as exc:
        return _page(exc)


@bp.get("/me/residency/callback")
def callback():
    if current_user() is None:
        return _login()
    slug = session.pop(_TOWN, None)
    try:
        if not oidc.configured() or not isinstance(slug, str):
            raise InvalidInput(N_("This verification was not started here; start again."))
        town = town_by_slug(slug)
        verified = oidc.finish()
        residency_service().verify_by_oidc(current_user(), town, verified)
    except AppError as exc:
        get_db().session.rollback()
        return _page(exc)
    return redirect(url_for(".me", notice="issued"), code=303)
