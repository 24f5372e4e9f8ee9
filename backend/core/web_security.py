"""Security headers and request limits for every response (issue 11 §6), with flask-talisman.

- Content-Security-Policy: scripts only from this origin and only with the per-request nonce
  (`nonce="{{ csp_nonce() }}"` on every <script>, checked by tests/security/test_templates.py),
  no inline event handlers, no plugins, no framing (frame-ancestors 'none'), forms post only to
  this origin or Stripe's checkout.
- X-Content-Type-Options: nosniff, Referrer-Policy, X-Frame-Options: DENY for old browsers.
- HSTS on https responses (talisman sends it when the request is https, directly or through a
  proxy's X-Forwarded-Proto). Redirecting http to https is the proxy's job: force_https would
  loop behind a TLS-terminating proxy, so it stays off.
- MAX_CONTENT_LENGTH: no request body over 1 MiB is read (413 in the platform's error shape).
"""

from __future__ import annotations

from flask import Flask, request
from flask_talisman import Talisman

from backend.core.errors import N_, InvalidInput

MAX_CONTENT_LENGTH = 1024 * 1024

CSP = {
    "default-src": "'self'",
    # + the request's nonce (content_security_policy_nonce_in). 'strict-dynamic' makes the nonce
    # the only way in (browsers that know it ignore 'self'), so even a same-origin script tag
    # that an injection adds does not run; scripts that a nonced script loads still do.
    "script-src": "'self' 'strict-dynamic'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "connect-src": "'self'",
    "font-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
    "form-action": "'self' https://checkout.stripe.com",
}


def init_web_security(app: Flask, *, https: bool) -> None:
    app.config["MAX_CONTENT_LENGTH"] = MAX_CONTENT_LENGTH

    @app.before_request
    def _refuse_nul() -> None:
        # PostgreSQL cannot store NUL in text: a NUL in the path, query or form would reach a
        # query and fail there as a 500. JSON bodies are checked by errors.json_object.
        texts = [request.path, *request.args.values()]
        if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            texts += request.form.values()
        if any("\x00" in t for t in texts):
            raise InvalidInput(N_("Text must not contain NUL characters."))

    Talisman(
        app,
        force_https=False,
        strict_transport_security=True,
        strict_transport_security_max_age=365 * 24 * 3600,
        strict_transport_security_include_subdomains=False,
        content_security_policy=CSP,
        content_security_policy_nonce_in=["script-src"],
        frame_options="DENY",
        referrer_policy="strict-origin-when-cross-origin",
        # Talisman owns the session cookie flags from here on: Secure only behind https (a
        # Secure cookie is never sent back over http://127.0.0.1 on a laptop).
        session_cookie_secure=https,
        session_cookie_http_only=True,
        session_cookie_samesite="Lax",
    )
