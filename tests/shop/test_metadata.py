"""Token metadata for wallets and marketplaces (issue 10 §5): a resident pass's tokenURI
answers OpenSea JSON (name, description, image, attributes) with an image that loads; a pass
that does not exist (never issued, or revoked) is a JSON 404; every error under /meta/ is JSON,
even for a client that prefers HTML."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from eth_utils import keccak
from flask import Flask
from web3 import Web3
from web3.logs import DISCARD

from backend.chain.registry import Deployments
from backend.deploy import demo_town
from tests.chain_admin import role_address
from tests.shop.shop_helpers import contract, drive

TOWN = demo_town().slug
BROWSER_ACCEPT = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def _issue(w3: Web3, deployed: Deployments, holder: str, person: str) -> tuple[Any, int]:
    rp = contract(w3, deployed, f"towns.{TOWN}.ResidentPass")
    registrar = role_address("registrar")  # the registrar role key (ADR 0008)
    tx = rp.functions.issue(holder, keccak(text=person)).transact({"from": registrar})
    rcpt = w3.eth.wait_for_transaction_receipt(tx)
    (ev,) = rp.events.PassIssued().process_receipt(rcpt, errors=DISCARD)
    return rp, int(ev.args.tokenId)


def _error(resp: Any) -> dict[str, Any]:
    assert resp.mimetype == "application/json", resp.get_data(as_text=True)[:200]
    return resp.get_json()["error"]


def test_resident_pass_token_uri_serves_opensea_json(
    shop_app: Flask, w3: Web3, deployed: Deployments
) -> None:
    holder = w3.eth.accounts[5]
    rp, tid = _issue(w3, deployed, holder, "meta-person-1")
    drive(shop_app, w3)
    client = shop_app.test_client()

    uri = rp.functions.tokenURI(tid).call()
    assert urlsplit(uri).path == f"/meta/{TOWN}/resident/{tid}"
    resp = client.get(urlsplit(uri).path, headers=BROWSER_ACCEPT)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    assert resp.mimetype == "application/json"
    meta = resp.get_json()
    assert meta["name"] == f"Sarabetsu Resident Pass #{tid}"
    assert "soulbound" in meta["description"]
    traits = {a["trait_type"]: a["value"] for a in meta["attributes"]}
    assert traits["Town"] == "Sarabetsu"
    assert traits["Chamber"] == "Resident"
    assert traits["Transferable"].startswith("No")
    assert meta["external_url"].endswith(f"/towns/{TOWN}")

    image = client.get(urlsplit(meta["image"]).path)
    assert image.status_code == 200
    assert image.mimetype == "image/svg+xml"
    assert b"Resident Pass" in image.data and b"<svg" in image.data


def test_missing_or_revoked_pass_is_a_json_404(
    shop_app: Flask, w3: Web3, deployed: Deployments
) -> None:
    rp, tid = _issue(w3, deployed, w3.eth.accounts[6], "meta-person-2")
    drive(shop_app, w3)
    client = shop_app.test_client()
    assert client.get(f"/meta/{TOWN}/resident/{tid}").status_code == 200

    for path in (f"/meta/{TOWN}/resident/{tid + 50}", f"/meta/{TOWN}/resident/0"):
        resp = client.get(path, headers=BROWSER_ACCEPT)
        assert resp.status_code == 404
        assert _error(resp)["code"] == "not_found"

    rp.functions.revoke(tid).transact({"from": role_address("registrar")})
    drive(shop_app, w3)
    resp = client.get(f"/meta/{TOWN}/resident/{tid}", headers=BROWSER_ACCEPT)
    assert resp.status_code == 404
    assert _error(resp)["details"] == {"token_id": tid}


def test_every_error_under_meta_is_json(shop_app: Flask) -> None:
    client = shop_app.test_client()
    for path in (
        "/meta/nowhere/resident/1",  # no such town
        "/meta/nowhere/resident/image.svg",
        f"/meta/{TOWN}/no-such-collection/1",
        f"/meta/{TOWN}/ambassador/999999",  # a collection's token never minted
        f"/meta/{TOWN}/resident/not-a-number",  # no route at all
    ):
        resp = client.get(path, headers=BROWSER_ACCEPT)
        assert resp.status_code == 404, path
        assert _error(resp)["code"] == "not_found", path
