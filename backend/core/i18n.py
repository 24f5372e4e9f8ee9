"""Japanese first, English always: the locale comes from the user's choice (a cookie), then the
browser's Accept-Language, then the town default."""

from __future__ import annotations

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


def init_i18n(app: Flask, translations_dir: str) -> Babel:
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = translations_dir
    return Babel(app, locale_selector=select_locale)
