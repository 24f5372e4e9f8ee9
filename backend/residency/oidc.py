"""The digital-ID connector: OpenID Connect's authorization code flow with Authlib.

Japan's My Number card authentication for municipalities (and the commercial identity
providers built on it) speaks OpenID Connect. The platform is a client of one provider,
configured by settings (OIDC_ISSUER, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET; discovery at
<issuer>/.well-known/openid-configuration): `start` redirects the person to the provider with a
fresh `state` and `nonce` (kept in the signed session) and PKCE; `finish` takes the code back,
and Authlib checks the state, fetches the tokens and validates the ID token (signature against
the provider's JWKS, issuer, audience = our client id, expiry, nonce). Anything else is
refused with nothing changed.

Residency comes from the ID token's claims (ADR 0021):
- the OIDC standard `address` claim; the town matches when its Japanese name (or its English
  name) is in `address.locality` (e.g. "河西郡更別村" for 更別村), else in `address.formatted`,
  and, for a town recorded with its prefecture, `address.region` (else the formatted address)
  names that prefecture (towns of one name exist in several prefectures);
- `name`, `birthdate` and the address give the same identity hash as a visit to the town hall
  (identity.py); without them the provider's `sub` is hashed.

Authlib is imported when a client is first needed, not with this module: it brings joserfc and
its crypto back-ends, about 190 ms of CPU at the start of every web, worker and CLI process,
most of which never see a digital ID (measured with `python -X importtime`, 2026-12-05).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app

from backend.core.errors import N_
from backend.regions.models import Town
from backend.residency.errors import OidcRefused
from backend.residency.identity import normalise

CLIENT = "digital_id"
SCOPE = "openid profile address"
_EXTENSION = "residency_oidc"


@dataclass(frozen=True)
class VerifiedClaims:
    issuer: str
    claims: dict[str, Any]


def configured(app: Flask | None = None) -> bool:
    settings = (app or current_app).extensions["settings"]
    return bool(settings.oidc_issuer)


def provider_name(app: Flask | None = None) -> str:
    return str((app or current_app).extensions["settings"].oidc_name or "")


def _client(app: Flask) -> Any:
    """The app's Authlib client of the provider (registered on first use)."""
    oauth = app.extensions.get(_EXTENSION)
    if oauth is None:
        from authlib.integrations.flask_client import OAuth  # on first use: see the docstring

        settings = app.extensions["settings"]
        oauth = OAuth(app)
        oauth.register(
            CLIENT,
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret,
            server_metadata_url=settings.oidc_issuer.rstrip("/")
            + "/.well-known/openid-configuration",
            client_kwargs={"scope": SCOPE, "code_challenge_method": "S256", "timeout": 10},
        )
        app.extensions[_EXTENSION] = oauth
    return oauth.create_client(CLIENT)


def start(redirect_uri: str) -> Response:
    """The redirect to the provider's authorization endpoint (state, nonce and the PKCE
    verifier stay in the session)."""
    from authlib.common.errors import AuthlibBaseError  # on first use: see the docstring

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        return _client(app).authorize_redirect(  # type: ignore[no-any-return]
            redirect_uri, nonce=secrets.token_urlsafe(24)
        )
    except (AuthlibBaseError, OSError, ValueError) as exc:
        raise OidcRefused(
            N_("The digital-ID service is not answering. Try again later."), reason=str(exc)
        ) from None


def finish() -> VerifiedClaims:
    """The verified ID token's claims of the callback request; OidcRefused (400) for a wrong
    state, nonce, issuer, audience or signature, a provider error, or no ID token."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    client = _client(app)
    try:
        token = client.authorize_access_token()
    except Exception as exc:  # noqa: BLE001 - Authlib, joserfc and requests raise many types
        raise OidcRefused(
            N_("The digital ID could not be checked, so nothing was changed. Please try again."),
            reason=type(exc).__name__,
        ) from None
    claims = token.get("userinfo")
    if not claims:
        raise OidcRefused(
            N_("The digital ID could not be checked, so nothing was changed. Please try again."),
            reason="no id_token",
        )
    issuer = str(client.load_server_metadata()["issuer"])
    return VerifiedClaims(issuer, dict(claims))


def _in_prefecture(town: Town, address: dict[str, Any]) -> bool:
    """Whether the address is in the town's prefecture (always, for a town recorded without
    one). Many towns share a name across prefectures (池田町, 森町, 清水町, 美里町 ...): the
    name alone would let a resident of another one in. The `region` claim decides; without
    it, the formatted address must name the prefecture."""
    prefectures = [normalise(p) for p in (town.prefecture_ja, town.prefecture_en) if p]
    if not prefectures:
        return True
    region = address.get("region")
    if isinstance(region, str) and region.strip():
        text = normalise(region)
        return any(p in text for p in prefectures)
    formatted = address.get("formatted")
    text = normalise(formatted) if isinstance(formatted, str) else ""
    return any(p in text for p in prefectures)


def lives_in(town: Town, claims: dict[str, Any]) -> bool:
    """Whether the provider's address claim puts the person in `town` (and its prefecture)."""
    address = claims.get("address")
    if not isinstance(address, dict) or not _in_prefecture(town, address):
        return False
    names = [normalise(n) for n in (town.name_ja, town.name_en) if n]
    for part in ("locality", "formatted"):
        value = address.get(part)
        if isinstance(value, str) and value:
            text = normalise(value)
            return any(name and name in text for name in names)
    return False
