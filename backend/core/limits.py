"""Rate limits on the endpoints an attacker would hammer: passwords, PINs, codes, sign-ups.

Limits are declared here by endpoint name, not by decorators spread over the blueprints, so one
table says what is limited and how much (docs/adr/0011-abuse-limits-and-mail.md). Each entry
gives the limit per client address and, where a request names its target (an email, a card or
customer code), a second limit per target: guessing one account's password from many addresses
is stopped too. The per-target limits count failures only (a 4xx answer), so nobody can lock a
resident out by sending correct requests in their name.

Counters live in Redis when Redis is configured, so every web host shares them; the embedded
run keeps them in memory (one process). A breach answers 429 with a translated message: JSON
for the API, the error page for pages.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app, request, session
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from flask_limiter.util import get_remote_address
from redis.backoff import NoBackoff
from redis.retry import Retry
from werkzeug.middleware.proxy_fix import ProxyFix

from backend.config import Settings
from backend.core.errors import too_many_requests

log = logging.getLogger(__name__)


def _field(*names: str) -> Callable[[], str]:
    """A limit key from the request's first non-empty field among `names` (JSON or form)."""

    def key() -> str:
        data: Any = request.get_json(silent=True) if request.is_json else request.form
        for name in names:
            value = data.get(name) if isinstance(data, dict) or hasattr(data, "get") else None
            if isinstance(value, str) and value.strip():
                return f"{name}:{value.strip().lower()[:254]}"
        return f"ip:{get_remote_address()}"

    return key


def _user_or_ip() -> str:
    # "user_id" is backend.accounts.sessions.USER_ID; core does not import the domains.
    user_id = session.get("user_id")
    return f"user:{user_id}" if user_id is not None else f"ip:{get_remote_address()}"


def _api_key() -> str:
    """Per API key (/api/v1): a digest of the bearer token, never the token itself."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return "key:" + hashlib.sha256(token.strip().encode()).hexdigest()[:32]
    return f"ip:{get_remote_address()}"


def _failed(resp: Response) -> bool:
    return 400 <= resp.status_code < 500


@dataclass(frozen=True)
class Rule:
    limit: str
    key: Callable[[], str] = get_remote_address
    failures_only: bool = False  # count only 4xx answers
    methods: tuple[str, ...] = ("POST",)
    # Endpoints with the same scope share counters: the page and the API of one action.
    scope: str = ""


_by_email = _field("email")
_by_code = _field("card_code", "customer_code")

_LOGIN = (
    Rule("10/minute;100/hour", scope="login"),
    Rule("10/15 minutes", _by_email, failures_only=True, scope="login"),
)
_PASSWORD_CHECK = (Rule("5/15 minutes", _user_or_ip, failures_only=True, scope="password"),)
_SIGNUP = (Rule("5/minute;30/hour", scope="signup"),)
_CHARGE = (
    Rule("30/minute", _user_or_ip, scope="charge"),
    Rule("10/10 minutes", _by_code, failures_only=True, scope="charge"),
)
_PIN = (Rule("10/10 minutes", _user_or_ip, failures_only=True, scope="pin"),)
# The services' API, per key; and per client address for refused requests (wrong keys: a
# guesser gets a new counter with every key it tries, not a new address).
_API_GUESS = Rule("120/minute", failures_only=True, methods=("GET", "POST"), scope="api_v1")
_API_WRITE = (Rule("300/minute", _api_key, scope="api_v1_write"), _API_GUESS)
_API_READ = (Rule("1200/minute", _api_key, methods=("GET",), scope="api_v1_read"), _API_GUESS)

# endpoint -> its rules. An endpoint that does not exist (yet) is skipped, so the table may name
# endpoints that other branches add.
LIMITED_ENDPOINTS: dict[str, tuple[Rule, ...]] = {
    # Password sign-in: per address, and per account (failed attempts only).
    "accounts.login": _LOGIN,
    "auth.login": _LOGIN,
    # Sign-up: each one costs a wallet key and, once verified, welcome points.
    "accounts.signup": _SIGNUP,
    "auth.signup": _SIGNUP,
    # Password re-checks of a signed-in user (key export), per user.
    "accounts.export_key": _PASSWORD_CHECK,
    "account_pages.change_password": _PASSWORD_CHECK,
    "holders.export_key": _PASSWORD_CHECK,
    "holders.give": _PASSWORD_CHECK,
    # Linking a wallet, confirming one a password reset paused, removing one (ADR 0027).
    "accounts.link_wallet": _PASSWORD_CHECK,
    "accounts.remove_wallet": _PASSWORD_CHECK,
    "wallet_pages.link": _PASSWORD_CHECK,
    "wallet_pages.remove": _PASSWORD_CHECK,
    # A town's admin invite opens an existing account with its password (backend/onboarding).
    "towns_admin.invite": _PASSWORD_CHECK,
    # Mail-sending endpoints: nobody mail-bombs an address through us.
    "account_pages.forgot_password": (Rule("5/hour"), Rule("3/hour", _by_email)),
    "account_pages.resend_verification": (Rule("5/hour", _user_or_ip),),
    "account_pages.change_email": (Rule("5/hour", _user_or_ip),),
    "account_pages.reset_password": (Rule("10/hour"),),
    # Charging a customer code or a printed card with its PIN, per shop session and per code.
    "merchants.charge_customer": _CHARGE,
    "merchants_pages.charge_customer": _CHARGE,
    # A new single-use customer code (docs/adr/0009-money-paths.md), per customer.
    "money.issue_customer_code": (Rule("30/minute", _user_or_ip),),
    # The resident's PIN on the PIN pad, per shop session (wrong PINs only); the card's own
    # lock-out (5 per card and shop, one conditional UPDATE) holds behind it.
    "money.pin_pad_submit": _PIN,
    "money_pages.pin_pad_submit": _PIN,
    "points_pages.my_code": (Rule("30/minute", _user_or_ip, methods=("GET",)),),
    # Paying a charge by its code (the customer's side).
    "merchants.pay": (Rule("20/minute", _user_or_ip),),
    # Opening a card checkout for points (backend/premium): each holds part of the month's
    # limits for an hour and calls the card provider.
    "premium.checkout": (Rule("30/minute;200/hour", _user_or_ip, scope="premium_checkout"),),
    # Sign-In with Ethereum: each nonce is a DB row, each verify a signature recovery.
    "accounts.siwe_nonce": (Rule("30/minute", methods=("GET",)),),
    "accounts.siwe_verify": (Rule("10/minute"),),
    # /api/v1 (backend/integrations): a batch counts as one write (it holds up to 1,000).
    "integrations.create_issuance": _API_WRITE,
    "integrations.create_batch": _API_WRITE,
    "integrations.get_issuance": _API_READ,
    "integrations.list_issuances": _API_READ,
    "integrations.service": _API_READ,
}


def storage_uri(settings: Settings) -> str:
    return settings.ratelimit_storage_uri or "memory://"


def init_limits(app: Flask, settings: Settings) -> Limiter:
    """Trust `settings.proxy_hops` proxies for the client address, create the limiter and apply
    LIMITED_ENDPOINTS to the registered views. Call after every blueprint is registered."""
    if settings.proxy_hops:
        hops = settings.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    # The limits' Redis is the broker's by default: its outage must not hang every limited
    # request (issue 11 §7). Short socket timeouts, and per-process memory counting while it
    # is away (Flask-Limiter re-checks the storage with a backoff and switches back).
    # redis-py retries a timed-out call 3 times by default: once is enough here.
    storage_options: Any = (
        {"socket_timeout": 0.3, "socket_connect_timeout": 0.3, "retry": Retry(NoBackoff(), 0)}
        if storage_uri(settings).startswith(("redis://", "rediss://"))
        else {}
    )
    limiter = Limiter(
        get_remote_address,
        app=app,
        storage_uri=storage_uri(settings),
        storage_options=storage_options,
        in_memory_fallback_enabled=True,
        key_prefix=settings.ratelimit_key_prefix,
        headers_enabled=True,
        strategy="moving-window",
    )
    # /healthz must answer within 1 s: never wait on the limits' storage (not even its re-check).
    if "health.healthz" in app.view_functions:
        limiter.exempt(app.view_functions["health.healthz"])
    for endpoint, rules in LIMITED_ENDPOINTS.items():
        view: Any = app.view_functions.get(endpoint)
        if view is None:
            continue
        for rule in rules:
            options: dict[str, Any] = {
                "key_func": rule.key,
                "methods": list(rule.methods),
                "deduct_when": _failed if rule.failures_only else None,
            }
            # Each rule counts on its own (two rules may share a key function); a rule with a
            # scope shares its counter with every endpoint of that scope.
            if rule.scope:
                scope = f"{rule.scope}:{rule.key.__name__}"
                view = limiter.shared_limit(rule.limit, scope, **options)(view)
            else:
                view = limiter.limit(rule.limit, scope=rule.key.__name__, **options)(view)
        app.view_functions[endpoint] = view
    app.extensions["limiter"] = limiter
    log.info("rate limits on %s", storage_uri(settings).split("://")[0])

    @app.errorhandler(RateLimitExceeded)
    def _too_many(exc: RateLimitExceeded):  # type: ignore[no-untyped-def]
        return too_many_requests(exc)

    return limiter


def document_limits(paths: dict[str, Any]) -> None:
    """Add the 429 answer to every documented operation that LIMITED_ENDPOINTS limits."""
    from backend.core.openapi import error_response  # noqa: PLC0415 - openapi imports us

    for rule in current_app.url_map.iter_rules():
        rules = LIMITED_ENDPOINTS.get(rule.endpoint)
        if not rules:
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in {m for r in rules for m in r.methods} & (rule.methods or set()):
            op = paths.get(path, {}).get(method.lower())
            if op is not None:
                op.setdefault("responses", {})["429"] = error_response(
                    "Too many attempts from this client or for this account; see Retry-After."
                )
