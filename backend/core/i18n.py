"""Japanese first, English always: the locale comes from the user's choice (a cookie), then the
browser's Accept-Language, then the town default.

Catalogs live in webui/translations, one Babel domain per area of the UI (messages.po, and e.g.
points.po, dao.po); Flask-Babel merges every domain that has a Japanese catalog.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, current_app, request
from flask_babel import Babel

LOCALES = ("ja", "en")
LANG_COOKIE = "lang"


def select_locale() -> str:
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in LOCALES:
        return chosen
    best = request.accept_languages.best_match(LOCALES)
    return best or current_app.config["BABEL_DEFAULT_LOCALE"]


def catalog_domains(translations_dir: str) -> list[str]:
    """Every domain with a Japanese catalog, "messages" first."""
    names = sorted(p.stem for p in (Path(translations_dir) / "ja" / "LC_MESSAGES").glob("*.po"))
    return sorted(names, key=lambda n: n != "messages") or ["messages"]


def init_i18n(app: Flask, translations_dir: str) -> Babel:
    domains = catalog_domains(translations_dir)
    # Flask-Babel pairs directories and domains by position, so the directory repeats.
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = ";".join([translations_dir] * len(domains))
    app.config["BABEL_DOMAIN"] = ";".join(domains)
    return Babel(app, locale_selector=select_locale)
