"""furusato backend: create_app(settings) is the composition root."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask
from flask_wtf import CSRFProtect

from backend.config import Settings

if TYPE_CHECKING:
    from backend.chain.gateway import Web3Gateway

WEBUI = Path(__file__).resolve().parent.parent / "webui"


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app (pages, JSON API, healthz) with its database, Celery and chain."""
    from backend.accounts.people_cli import grant_admin
    from backend.chain.custody import keys_cli
    from backend.chain.gateway import Web3Gateway
    from backend.chain.role_config import role_addresses
    from backend.chain.roles_check import roles_cli
    from backend.chain.yen import YenSetting
    from backend.core.celery_app import celery_init_app
    from backend.core.db import Database
    from backend.core.errors import register_error_handlers
    from backend.core.health import bp as health_bp
    from backend.core.health import register_check
    from backend.core.i18n import init_i18n
    from backend.core.limits import init_limits
    from backend.core.numbers import DbIdConverter
    from backend.core.openapi import bp as openapi_bp
    from backend.core.page_cache import init_app as init_page_cache
    from backend.core.routing import LazyBuilderRule
    from backend.core.safety import check_startup
    from backend.core.static_files import init_static_files
    from backend.core.web_security import init_web_security
    from backend.integrations.cli import services_cli
    from backend.onboarding.cli import operators_cli, towns_cli
    from webui.auth import bp as auth_bp
    from webui.pages import bp as pages_bp

    settings = settings or Settings.from_env()
    # Refuse a retired `admin` key, an unknown role or a key/address mismatch before serving.
    role_addresses(settings.role_private_keys, settings.role_addresses)
    app = Flask(
        "furusato",
        template_folder=str(WEBUI / "templates"),
        static_folder=str(WEBUI / "static"),
        instance_path=str(settings.instance_path),
    )
    # Before any route exists: ids in URLs are bounded (an id past 2^31-1 is 404, not 500),
    # and url_for builders are compiled when first used (backend/core/routing.py).
    app.url_map.converters["int"] = DbIdConverter
    app.url_rule_class = LazyBuilderRule
    app.config.update(
        SECRET_KEY=settings.secret_key,
        TESTING=settings.testing,
        BABEL_DEFAULT_LOCALE=settings.default_locale,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
        WTF_CSRF_TIME_LIMIT=None,
        JSON_SORT_KEYS=False,
    )
    app.extensions["settings"] = settings
    settings.instance_path.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    Database(settings.database_url).init_app(app)
    celery_init_app(app, settings)
    app.extensions["chain"] = Web3Gateway(
        settings.rpc_url,
        settings.deployments_dir,
        timeout=settings.rpc_timeout,
        yen=YenSetting(
            settings.yen_token_address, settings.yen_token_symbol, settings.yen_token_decimals or 0
        ),
    )
    register_check(app, "chain", _chain_check(app.extensions["chain"]))
    # Before anything is served: refuse a laptop-only configuration on a real chain.
    app.extensions["chain_id"] = check_startup(settings, app.extensions["chain"])
    CSRFProtect(app)
    init_web_security(app, https=settings.public_url.startswith("https://"))
    init_page_cache(app)  # after CSRFProtect and Talisman: it wraps their Jinja globals
    init_static_files(app)  # versioned static URLs, kept by browsers for a year
    init_i18n(app, str(WEBUI / "translations"))
    register_error_handlers(app)

    import importlib

    import backend.models  # noqa: F401  (every domain's tables on Base.metadata)
    from backend.composition import register_handlers, register_payment_targets
    from backend.core.discovery import import_all

    register_handlers()  # every domain's indexer handlers, in one fixed order
    register_payment_targets()  # other domains' card purchases on the provider's webhook
    celery = app.extensions["celery"]
    for name in import_all("tasks"):  # registers every domain's Celery tasks with this app
        # A tasks module may declare BEAT_SCHEDULE = {entry: {"task": ..., "schedule": ...}}.
        celery.conf.beat_schedule.update(
            getattr(importlib.import_module(name), "BEAT_SCHEDULE", {})
        )
    for name in import_all("routes"):  # every domain's JSON API blueprint, `bp`
        app.register_blueprint(importlib.import_module(name).bp)
    for path in sorted(WEBUI.glob("*_pages.py")):  # every area's pages: webui/<area>_pages.py
        app.register_blueprint(importlib.import_module(f"webui.{path.stem}").bp)

    app.register_blueprint(health_bp)
    app.register_blueprint(openapi_bp)
    app.register_blueprint(pages_bp)
    app.register_blueprint(auth_bp)
    init_limits(app, settings)  # after every blueprint: limits are applied by endpoint name
    app.cli.add_command(roles_cli)
    towns_cli.add_command(grant_admin)  # towns grant-admin: an existing town's first admin
    app.cli.add_command(towns_cli)  # onboarding a town (issue 13)
    app.cli.add_command(operators_cli)
    app.cli.add_command(keys_cli)  # keys rotate: walks the key stores the domains registered
    app.cli.add_command(services_cli)  # services create: a town's service and its API key
    return app


def _chain_check(chain: Web3Gateway) -> Callable[[], dict[str, Any]]:
    """/healthz's "chain" part: the node's chain id, head block and whether we deployed there."""
    from backend.chain.gateway import ChainUnavailable

    def check() -> dict[str, Any]:
        try:
            st = chain.status()
        except ChainUnavailable as exc:
            return {"ok": False, "reason": str(exc)}
        return {
            "ok": True,
            "chain_id": st.chain_id,
            "head_block": st.head_block,
            "contracts_deployed": st.contracts_deployed,
        }

    return check
