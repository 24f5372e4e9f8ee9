"""The site's fixed pages: terms of use, privacy policy, 特定商取引法に基づく表記, contact and
"about" (the one page that explains the blockchain; the journeys never name it).

Legal texts are whole documents per language (templates/legal/<page>_<lang>.html) rather than
sentence-by-sentence catalog entries: a lawyer reviews each as one text. The operator's details
come from the settings (OPERATOR_*); while they are unset the pages say so instead of inventing
them.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, current_app, render_template
from flask_babel import get_locale
from sqlalchemy import select

from backend.core.db import get_db
from backend.regions.models import Town

bp = Blueprint("legal", __name__)

PAGES = ("terms", "privacy", "tokushoho", "contact", "about")


@dataclass(frozen=True)
class Operator:
    name: str
    address: str
    phone: str
    email: str
    manager: str

    @property
    def given(self) -> bool:
        return bool(self.name and self.address and self.email)


def _operator() -> Operator:
    s = current_app.extensions["settings"]
    return Operator(
        s.operator_name, s.operator_address, s.operator_phone, s.operator_email, s.operator_manager
    )


def _page(name: str):
    lang = "ja" if str(get_locale()) == "ja" else "en"
    towns = get_db().session.scalars(select(Town).order_by(Town.id)).all()
    return render_template(
        "legal/page.html",
        page=name,
        body=f"legal/{name}_{lang}.html",
        operator=_operator(),
        towns=towns,
    )


@bp.get("/terms")
def terms():
    return _page("terms")


@bp.get("/privacy")
def privacy():
    return _page("privacy")


@bp.get("/tokushoho")
def tokushoho():
    return _page("tokushoho")


@bp.get("/contact")
def contact():
    return _page("contact")


@bp.get("/about")
def about():
    return _page("about")
