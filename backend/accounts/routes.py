"""Accounts JSON API: /api/accounts (sign-up, me, key export, wallets) and /api/auth (sessions,
SIWE).

Login is a Flask session cookie, cleared and rewritten on every sign-in. Every POST needs the
CSRF token from GET /api/csrf in an ``X-CSRFToken`` header; sign-in rewrites the session, so
sign-in responses carry the new token.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, session
from flask_wtf.csrf import generate_csrf
from sqlalchemy import select

from backend.accounts import sessions
from backend.accounts.mail_flows import AccountMail
from backend.accounts.models import User
from backend.accounts.services import AccountService, address_key_store, siwe_site
from backend.chain.api import get_vault, register_key_store, siwe_auth
from backend.core.db import get_db
from backend.core.errors import N_, InvalidInput, json_object
from backend.regions.models import Town

bp = Blueprint("accounts", __name__)

_USER_ID = "user_id"
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


@bp.record_once
def _register_key_store(state: Any) -> None:
    # Master-key rotation (backend.chain.custody) reaches our table through this factory.
    register_key_store(state.app, lambda: address_key_store(get_db().session()))


def _service() -> AccountService:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return AccountService(get_db().session(), lambda: get_vault(app))


def _current_user(service: AccountService) -> User:
    return service.get_user(session.get(_USER_ID))


def _optional_user(service: AccountService) -> User | None:
    return service.get_user(session[_USER_ID]) if _USER_ID in session else None


def _log_in(user: User) -> None:
    sessions.log_in(user)


@bp.before_app_request
def _drop_revoked_session() -> None:
    # A cookie from before a logout or password change signs nobody in (sessions.py). Static
    # files and the health check need no user (and /healthz must answer when the DB is down).
    if request.endpoint in ("static", "health.healthz"):
        return
    sessions.drop_if_revoked(get_db().session())


def _user_json(user: User) -> dict[str, Any]:
    # An explicit allow-list: sealed key columns can never leak through here.
    return {
        "id": user.id,
        "email": user.email,
        "display_name": user.display_name,
        "locale": user.locale,
        "email_verified": user.email_verified_at is not None,
        "created_at": user.created_at.isoformat(),
        "addresses": [
            {
                "address": a.address,
                "kind": a.kind,
                "created_at": a.created_at.isoformat(),
                # A password reset paused its sign-in until the owner confirms it again.
                "sign_in_paused": a.sign_in_paused_at is not None,
            }
            for a in user.addresses
        ],
    }


def _signed_in(user: User, status: int = 200, **extra: Any) -> tuple[Response, int]:
    return jsonify(user=_user_json(user), csrf_token=generate_csrf(), **extra), status


@bp.get("/api/csrf")
def csrf_token() -> Response:
    """The token to send back in ``X-CSRFToken`` with every POST."""
    return jsonify(csrf_token=generate_csrf())


@bp.post("/api/accounts/signup")
def signup() -> tuple[Response, int]:
    data = json_object()
    town = _signup_town(data.get("town"))
    service = _service()
    user = service.signup(
        data.get("email"),
        data.get("password"),
        data.get("display_name", ""),
        data.get("locale", "ja"),
    )
    _log_in(user)
    # No welcome points before the address is verified by the mailed link; the link carries the
    # town whose welcome points it unlocks, as the sign-up page's does.
    AccountMail(get_db().session(), current_app.extensions["settings"]).send_verification(
        user, town
    )
    return _signed_in(user, 201)


def _signup_town(value: object) -> str | None:
    """The optional `town` of a sign-up: the slug of an existing town, checked before anything
    is created."""
    if value is None:
        return None
    town = None
    if isinstance(value, str) and len(value) <= 64:
        town = get_db().session().scalar(select(Town).where(Town.slug == value))
    if town is None:
        raise InvalidInput(N_("This town does not exist."), field="town")
    return town.slug


@bp.post("/api/auth/login")
def login() -> tuple[Response, int]:
    data = json_object()
    user = _service().authenticate(data.get("email"), data.get("password"))
    _log_in(user)
    return _signed_in(user)


@bp.post("/api/auth/logout")
def logout() -> tuple[Response, int]:
    sessions.log_out(get_db().session())
    return jsonify(ok=True, csrf_token=generate_csrf()), 200


@bp.get("/api/accounts/me")
def me() -> Response:
    return jsonify(user=_user_json(_current_user(_service())))


@bp.get("/api/auth/siwe/nonce")
def siwe_nonce() -> Response:
    """Issue a nonce for this session, with the fields the wallet's message must carry."""
    site = siwe_site()
    address = request.args.get("address")
    if address is not None and not _ADDRESS.fullmatch(address):
        # Checked before a nonce is issued: bad input changes nothing.
        raise InvalidInput(N_("Enter a valid wallet address."), field="address")
    row = _service().issue_siwe_nonce()
    session[sessions.SIWE_NONCE] = row.nonce
    message = None
    if address is not None:
        # The exact text to sign, so a browser needs no EIP-55 or EIP-4361 code of its own.
        try:
            message = siwe_auth.build_message(
                address,
                site.domain,
                site.uri,
                site.chain_id,
                row.nonce,
                "Sign in to furusato.",
                row.issued_at,
                row.expires_at,
            )
        except ValueError:
            raise InvalidInput(N_("Enter a valid wallet address."), field="address") from None
    resp = jsonify(
        nonce=row.nonce,
        domain=site.domain,
        uri=site.uri,
        chain_id=site.chain_id,
        issued_at=row.issued_at.isoformat(),
        expires_at=row.expires_at.isoformat(),
        message=message,
    )
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.post("/api/auth/siwe/verify")
def siwe_verify() -> tuple[Response, int]:
    data = json_object()
    service = _service()
    current = _optional_user(service)
    # One attempt per issued nonce, whatever the outcome.
    expected = session.pop(sessions.SIWE_NONCE, None)
    result = service.sign_in_with_ethereum(
        data.get("message"),
        data.get("signature"),
        expected_nonce=expected,
        site=siwe_site(),
        current_user=current,
    )
    if current is None:
        _log_in(result.user)
    return _signed_in(
        result.user,
        201 if result.created_user else 200,
        address=result.address,
        created_user=result.created_user,
        linked=result.linked,
    )


@bp.post("/api/accounts/export-key")
def export_key() -> Response:
    """Return the custodial private key after re-checking the password; audit-logged."""
    data = json_object()
    service = _service()
    address, private_key = service.export_private_key(_current_user(service), data.get("password"))
    resp = jsonify(address=address, private_key=private_key)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.post("/api/accounts/wallets")
def link_wallet() -> tuple[Response, int]:
    """Link the wallet that signed the message (nonce from /api/auth/siwe/nonce), or confirm
    one a password reset paused; an account with a password gives it again (ADR 0027)."""
    data = json_object()
    service = _service()
    user = _current_user(service)
    expected = session.pop(sessions.SIWE_NONCE, None)  # one attempt per nonce, as sign-in
    result = service.link_wallet(
        user,
        data.get("message"),
        data.get("signature"),
        data.get("password"),
        expected_nonce=expected,
        site=siwe_site(),
    )
    return jsonify(
        user=_user_json(result.user),
        address=result.address,
        linked=result.linked,
        resumed=result.resumed,
    ), 201 if result.linked else 200


@bp.post("/api/accounts/wallets/remove")
def remove_wallet() -> Response:
    """Unlink one of the account's own wallets after re-checking the password."""
    data = json_object()
    service = _service()
    user = _current_user(service)
    address = service.remove_wallet(user, data.get("address"), data.get("password"))
    return jsonify(user=_user_json(user), address=address)
