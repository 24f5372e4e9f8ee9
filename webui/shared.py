"""Helpers several page modules use (no routes here: a page module never imports another)."""

from __future__ import annotations

import io

from flask import current_app, render_template
from markupsafe import Markup

from backend.accounts.mail_flows import AccountMail
from backend.accounts.roles import current_user
from backend.core.db import get_db
from backend.core.errors import AppError
from backend.merchants.limits import town_limit
from backend.merchants.models import SETTLED
from backend.merchants.services import merchant_service
from backend.regions.services import town_by_slug


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
