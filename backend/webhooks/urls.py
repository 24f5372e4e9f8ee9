"""Which URLs the platform POSTs webhooks to: a guard against server-side request forgery.

A service's staff type the URL, but the worker sends the request from inside the platform's
network, so a URL must not reach what only the platform can reach: loopback, private and
link-local networks (a cloud's metadata service at 169.254.169.254), carrier-grade NAT,
multicast, reserved ranges. Every address the host resolves to must be public, checked when the
URL is set and again before each attempt (DNS can change in between). Redirects are never
followed (a public URL could redirect inward). Each attempt connects to an address it has just
checked (`UrlPolicy.target`), never to what a second look-up answers: a name that resolves to a
public address for the check and to 127.0.0.1 a moment later (DNS rebinding) cannot move the
request inside. TLS still checks the certificate against the URL's host name.

Off a local test chain a URL must be https: the body names people's points. On a local test
chain (a laptop, the tests) plain http and private addresses are allowed by default, since the
receiver runs next to the app (WEBHOOK_PRIVATE_URLS=off refuses them there too).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, urlsplit

from backend.core.errors import N_
from backend.webhooks.errors import WebhookUrlRefused

MAX_URL = 2000

Resolver = Callable[[str, int], Iterable[str]]


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (IPv4 and IPv6)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


@dataclass(frozen=True)
class Target:
    """Where one attempt goes: the checked URL, and the addresses it may connect to (those the
    check resolved, every one public unless private ones are allowed)."""

    url: str
    https: bool
    host: str
    port: int
    path: str  # path and query, as the request line sends them
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class UrlPolicy:
    https_only: bool
    allow_private: bool
    resolver: Resolver = resolve

    def check(self, url: str) -> str:
        """`url`, stripped, if the platform may POST to it; WebhookUrlRefused otherwise."""
        url, parts, port = self._parse(url)
        if not self.allow_private:
            self._addresses(parts.hostname or "", port)
        return url

    def target(self, url: str) -> Target:
        """`check`, and the addresses the attempt connects to: resolved once, here, so what
        was checked is what is reached (WebhookUrlRefused as `check`)."""
        url, parts, port = self._parse(url)
        try:
            host = (parts.hostname or "").encode("idna").decode("ascii")
        except UnicodeError:
            raise WebhookUrlRefused(N_("The webhook URL is not a valid http(s) URL.")) from None
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        path = quote(path, safe="!#$%&'()*+,/:;=?@[]~")  # spaces, non-ASCII: %-encoded
        return Target(url, parts.scheme == "https", host, port, path, self._addresses(host, port))

    def _parse(self, url: str) -> tuple[str, SplitResult, int]:
        url = (url or "").strip()
        parts = urlsplit(url)
        if len(url) > MAX_URL or parts.scheme not in ("https", "http") or not parts.hostname:
            raise WebhookUrlRefused(N_("The webhook URL is not a valid http(s) URL."))
        if parts.scheme != "https" and self.https_only:
            raise WebhookUrlRefused(N_("The webhook URL must start with https://."))
        if parts.username is not None or parts.password is not None:
            # Credentials in a URL end up in logs and on staff pages; the signature
            # authenticates us to the receiver instead.
            raise WebhookUrlRefused(N_("The webhook URL must not contain a user name or password."))
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise WebhookUrlRefused(N_("The webhook URL is not a valid http(s) URL.")) from None
        return url, parts, port

    def _addresses(self, host: str, port: int) -> tuple[str, ...]:
        """Every address of `host`, each one public unless private ones are allowed."""
        try:
            addresses = list(self.resolver(host, port))
        except (OSError, UnicodeError):
            addresses = []
        if not addresses:
            raise WebhookUrlRefused(
                N_("The webhook URL's host %(host)s cannot be found."), host=host
            )
        for text in addresses:
            if not self.allow_private and not is_public(text):
                raise WebhookUrlRefused(
                    N_("The webhook URL points to a private or local address (%(address)s)."),
                    address=text,
                )
        return tuple(addresses)


def is_public(address: str) -> bool:
    """Whether `address` is a globally routable unicast address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone ("fe80::1%eth0")
    if isinstance(ip, ipaddress.IPv6Address):
        # ::ffff:127.0.0.1 and 64:ff9b::10.0.0.1 reach IPv4 hosts: judge the IPv4 address.
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            ip = mapped
        elif ip in ipaddress.ip_network("64:ff9b::/96"):
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return bool(ip.is_global) and not ip.is_multicast


def policy_for(private_urls: str, local_test_chain: bool) -> UrlPolicy:
    """The policy of an app: WEBHOOK_PRIVATE_URLS (on|off|unset) and where the app runs."""
    allow_private = private_urls == "on" or (private_urls == "" and local_test_chain)
    return UrlPolicy(https_only=not local_test_chain, allow_private=allow_private)
