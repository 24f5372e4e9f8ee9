"""Images the shop generates: a collection's card (no external asset needed) and ticket QR codes."""

from __future__ import annotations

import io

import qrcode
import qrcode.image.svg
from markupsafe import escape

from backend.shop.categories import BY_KEY
from backend.shop.models import Collection


def collection_svg(collection: Collection) -> str:
    """A generated card image for a collection (no external asset needed)."""
    category = BY_KEY.get(collection.category)
    colour = category.colour if category else "#1b6e53"
    name = escape(collection.name_en)
    town = escape(collection.town.name_en)
    cat = escape(collection.category.replace("_", " ").title())
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 600 380" role="img" '
        f'aria-label="{name}">'
        f'<rect width="600" height="380" rx="28" fill="{colour}"/>'
        '<circle cx="500" cy="90" r="120" fill="#ffffff" opacity="0.12"/>'
        '<path d="M0 300 Q150 240 300 300 T600 300 V380 H0 Z" fill="#ffffff" opacity="0.18"/>'
        f'<text x="36" y="70" font-family="sans-serif" font-size="26" fill="#fff">{town}</text>'
        f'<text x="36" y="200" font-family="sans-serif" font-size="34" font-weight="bold" '
        f'fill="#fff">{name}</text>'
        f'<text x="36" y="250" font-family="sans-serif" font-size="22" fill="#fff">{cat}</text>'
        "</svg>"
    )


def qr_svg(text: str) -> str:
    """An inline SVG QR code of `text`."""
    img = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=10, border=2)
    buf = io.BytesIO()
    img.save(buf)
    svg = buf.getvalue().decode()
    return svg[svg.index("<svg") :] if "<svg" in svg else svg
