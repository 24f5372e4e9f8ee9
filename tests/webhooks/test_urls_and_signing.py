"""Which URLs webhooks may go to (server-side request forgery), and the signature a receiver
checks: Standard Webhooks headers that the spec's own library and a plain HMAC both verify; the
secret sealed at rest and bound to its owner."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from backend.webhooks import signing
from backend.webhooks.errors import WebhookUrlRefused
from backend.webhooks.urls import UrlPolicy, is_public, policy_for


def _resolver(table: dict[str, list[str]]):
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError("no such host")
        return table[host]

    return resolve


PUBLIC = {"hooks.example.com": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]}


@pytest.mark.parametrize(
    ("url", "code_or_none"),
    [
        ("https://hooks.example.com/furusato", None),
        ("https://hooks.example.com:8443/x?y=1", None),
        ("http://hooks.example.com/furusato", "https"),
        ("ftp://hooks.example.com/", "url"),
        ("hooks.example.com/furusato", "url"),
        ("https:///nohost", "url"),
        ("https://user:pw@hooks.example.com/", "credentials"),
        ("https://hooks.example.com:99999/", "url"),
        ("https://nowhere.invalid/", "host"),
        ("https://" + "a" * 2000 + ".example.com/", "url"),
        ("", "url"),
    ],
)
def test_a_real_chains_policy(url, code_or_none):
    policy = UrlPolicy(https_only=True, allow_private=False, resolver=_resolver(PUBLIC))
    if code_or_none is None:
        assert policy.check(f"  {url} ") == url
        return
    with pytest.raises(WebhookUrlRefused) as refused:
        policy.check(url)
    assert refused.value.status == 400 and refused.value.details["field"] == "url"
    word = {"https": "https://", "url": "valid", "credentials": "user name", "host": "found"}
    assert word[code_or_none] in refused.value.message


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.9",
        "192.168.1.1",
        "169.254.169.254",  # a cloud's metadata service
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",  # noqa: S104 - an address refused, not bound
        "224.0.0.1",
        "::1",
        "fe80::1%eth0",
        "fd00::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
    ],
)
def test_private_and_local_addresses_are_refused(address):
    assert not is_public(address)
    policy = UrlPolicy(
        https_only=True,
        allow_private=False,
        resolver=_resolver({"inside.example.com": ["93.184.215.14", address]}),
    )
    with pytest.raises(WebhookUrlRefused) as refused:
        policy.check("https://inside.example.com/hook")
    assert refused.value.details["address"] == address


def test_public_addresses_pass():
    assert is_public("93.184.215.14") and is_public("2606:2800:21f:cb07:6820:80da:af6b:8b2c")


def test_policy_for_the_app():
    real = policy_for("", local_test_chain=False)
    assert (real.https_only, real.allow_private) == (True, False)
    assert policy_for("on", local_test_chain=False).allow_private
    laptop = policy_for("", local_test_chain=True)
    assert (laptop.https_only, laptop.allow_private) == (False, True)
    assert not policy_for("off", local_test_chain=True).allow_private
    # A laptop still refuses loopback when told to, with a look-up of its own.
    with pytest.raises(WebhookUrlRefused):
        policy_for("off", local_test_chain=True).check("http://127.0.0.1:9/x")
    with pytest.raises(WebhookUrlRefused):
        policy_for("off", local_test_chain=True).check("http://localhost:9/x")


def test_secret_format_and_sealing():
    secret = signing.new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 24
    assert signing.new_secret() != secret
    sealed = signing.seal("app-secret", "api_service:1", secret)
    assert secret.encode() not in sealed.ciphertext
    assert signing.unseal("app-secret", "api_service:1", sealed) == secret
    with pytest.raises(signing.SecretUnreadable):  # copied onto another owner's row
        signing.unseal("app-secret", "api_service:2", sealed)
    with pytest.raises(signing.SecretUnreadable):  # another SECRET_KEY
        signing.unseal("other-secret", "api_service:1", sealed)
    tampered = signing.SealedSecret(
        sealed.nonce, bytes([sealed.ciphertext[0] ^ 1]) + sealed.ciphertext[1:]
    )
    with pytest.raises(signing.SecretUnreadable):
        signing.unseal("app-secret", "api_service:1", tampered)


def test_headers_verify_with_the_spec_library_and_a_plain_hmac():
    secret = signing.new_secret()
    created = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)
    data = {"id": 7, "status": "confirmed", "recipient": "花子@example.jp", "amount": "500"}
    body = signing.body("issuance.confirmed", created, data)
    assert body == signing.body("issuance.confirmed", created, dict(reversed(data.items())))
    assert json.loads(body) == {
        "type": "issuance.confirmed",
        "timestamp": "2026-12-04T12:00:00Z",
        "data": data,
    }
    now = dt.datetime.now(dt.UTC)
    headers = signing.headers(secret, "issuance:7:confirmed", body, now)
    assert headers["webhook-id"] == "issuance:7:confirmed"
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert Webhook(secret).verify(body.encode(), headers) == json.loads(body)
    # The spec by hand: HMAC-SHA256 over "id.timestamp.body" with the decoded secret.
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"issuance:7:confirmed.{headers['webhook-timestamp']}.{body}".encode()
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{expected}"
    # A changed body, another secret or an old timestamp do not verify.
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace("500", "5000").encode(), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body.encode(), headers)
    stale = signing.headers(secret, "issuance:7:confirmed", body, now - dt.timedelta(hours=1))
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.encode(), stale)
