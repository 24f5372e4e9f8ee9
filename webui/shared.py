"""Helpers several page modules use (no routes here: a page module never imports another)."""

from __future__ import annotations

import io
from collections.abc import Callable

from flask import current_app, render_template
from flask_babel import get_locale, gettext
from markupsafe import Markup

from backend.accounts.mail_flows import AccountMail
from backend.accounts.roles import current_user, current_user_id
from backend.core.db import get_db
from backend.core.errors import AppError
from backend.core.page_cache import Holes, PageCache
from backend.merchants.limits import town_limit
from backend.merchants.models import SETTLED
from backend.merchants.services import merchant_service
from backend.regions.services import town_by_slug
from backend.shop.services import yen_currency


def qr_svg(data: str) -> Markup:
    """A QR code of `data` as inline SVG (server-rendered, no script needed)."""
    import qrcode
    import qrcode.image.svg

    img = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=10, border=2)
    buf = io.BytesIO()
    img.save(buf)
    svg = buf.getvalue().decode()
    svg = svg[svg.index("<svg") :]
    return Markup(svg.replace("<svg", '<svg role="img" class="qr"', 1))  # noqa: S704


def account_mail() -> AccountMail:
    return AccountMail(get_db().session(), current_app.extensions["settings"])


def settlements_page(slug: str, error: AppError | None = None):  # type: ignore[no-untyped-def]
    """The town staff's settlement queue, with `error` shown (merchants' and money pages)."""
    svc = merchant_service()
    town = town_by_slug(slug)
    rows = svc.settlement_queue(current_user(), town)
    names = {m.id: m for m in svc.merchants_in(town)}
    return render_template(
        "merchants/settlements.html",
        town=town,
        settlements=rows,
        merchants=names,
        settled=SETTLED,
        error=error and error.translated(),
        four_eyes=town_limit(get_db().session(), town.id, "four_eyes_amount"),
        me=current_user(),
    ), (error.status if error else 200)


def yen_name() -> str:
    """The chain's yen token as users read it: "test yen" (テスト用の円) for the local test
    token (test money), else its symbol (JPYC, for instance)."""
    yen = yen_currency()
    if yen is None or yen.test:
        return gettext("test yen")
    return yen.symbol


def cached_page(name: str, render: Callable[[Holes], str]) -> str:
    """The page `name` for this request through the page cache (backend/core/page_cache.py):
    rendered by `render(holes)` (which passes `holes.key` as the page's request key) only when
    the data changed since it was last rendered for this path, language and user."""
    cache: PageCache = current_app.extensions["page_cache"]
    return cache.page(
        get_db().session(),
        name,
        render,
        user_id=current_user_id(),  # the user is loaded only when the page renders
        locale=str(get_locale() or "ja"),
    )
