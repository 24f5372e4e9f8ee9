"""A small OpenID Connect provider for tests: a threaded HTTP server on 127.0.0.1 serving
discovery, JWKS, authorize (consents at once: redirects back with a code) and token (an ID token
signed RS256 with the request's nonce). Each test sets who signs in (`person`: the claims) and
may make the provider misbehave (`tamper`: a wrong nonce, issuer, audience, state, key, or no
ID token) to see the client refuse. Never exposed outside the test process."""

from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

from joserfc import jwt
from joserfc.jwk import RSAKey

CLIENT_ID = "furusato-test"
CLIENT_SECRET = "test-client-secret"  # noqa: S105 - a test provider's client secret

HANAKO = {
    "sub": "jpki-0001",
    "name": "更別 花子",
    "birthdate": "1950-04-01",
    "address": {
        "formatted": "北海道河西郡更別村字更別123",
        "region": "北海道",
        "locality": "河西郡更別村",
        "street_address": "字更別123",
    },
}


class OidcProvider:
    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-1", "use": "sig"})
        self.other_key = RSAKey.generate_key(2048, parameters={"kid": "test-1", "use": "sig"})
        self.person: dict[str, Any] = dict(HANAKO)
        self.tamper: str | None = None  # nonce | issuer | audience | state | key | no_id_token
        self.codes: dict[str, dict[str, Any]] = {}
        self.requests: list[str] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _json(self, body: Any, status: int = 200) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                provider.requests.append(url.path)
                if url.path == "/.well-known/openid-configuration":
                    self._json(provider.discovery())
                elif url.path == "/jwks":
                    self._json({"keys": [provider.key.as_dict(private=False)]})
                elif url.path == "/authorize":
                    q = {k: v[0] for k, v in parse_qs(url.query).items()}
                    self.send_response(302)
                    self.send_header("Location", provider.authorize(q))
                    self.end_headers()
                else:
                    self._json({"error": "not_found"}, 404)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                provider.requests.append(self.path)
                if self.path != "/token":
                    self._json({"error": "not_found"}, 404)
                    return
                body, status = provider.token(form, self.headers.get("Authorization", ""))
                self._json(body, status)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> OidcProvider:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "jwks_uri": f"{self.url}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "address"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
        }

    def authorize(self, q: dict[str, str]) -> str:
        """Consent at once: the redirect back to the client with a one-time code."""
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"nonce": q.get("nonce"), "client_id": q.get("client_id")}
        state = q.get("state", "")
        if self.tamper == "state":
            state = "forged-" + state
        return q["redirect_uri"] + "?" + urlencode({"code": code, "state": state})

    def token(self, form: dict[str, str], authorization: str) -> tuple[dict[str, Any], int]:
        grant = self.codes.pop(form.get("code", ""), None)
        if grant is None:
            return {"error": "invalid_grant"}, 400
        now = int(time.time())
        claims = {
            **self.person,
            "iss": "https://evil.example" if self.tamper == "issuer" else self.url,
            "aud": "someone-else" if self.tamper == "audience" else CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": "not-the-nonce" if self.tamper == "nonce" else grant["nonce"],
        }
        key = self.other_key if self.tamper == "key" else self.key
        id_token = jwt.encode({"alg": "RS256", "kid": "test-1"}, claims, key)
        body: dict[str, Any] = {
            "access_token": secrets.token_urlsafe(16),
            "token_type": "Bearer",
            "expires_in": 300,
        }
        if self.tamper != "no_id_token":
            body["id_token"] = id_token
        return body, 200


def settings(provider: OidcProvider) -> dict[str, str]:
    """The app's settings overrides for this provider."""
    return {
        "oidc_issuer": provider.url,
        "oidc_client_id": CLIENT_ID,
        "oidc_client_secret": CLIENT_SECRET,
        "oidc_name": "テストID",
    }
