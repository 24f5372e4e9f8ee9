"""The shop page and API, NFT metadata and the demo listings."""

from __future__ import annotations


def test_shop_lists_demo_listings_with_remaining_supply_and_perk(shop_app):
    client = shop_app.test_client()
    body = client.get("/api/shop/towns/sarabetsu/listings").get_json()
    by_slug = {c["collection"]["slug"]: c for c in body["collections"]}
    assert list(by_slug) == ["ambassador", "ticket", "experience", "supporter"]
    # the ticket, the experience and the donation certificate, for points, all on chain
    items = {s: (c["collection"]["category"], c["listings"]) for s, c in by_slug.items()}
    assert [(items[s][0], [li["price"] for li in items[s][1]]) for s in list(items)[1:]] == [
        ("event_ticket", [500]),
        ("experience", [1500]),
        ("donation_certificate", [300]),
    ]
    assert all(li["open"] for c in body["collections"] for li in c["listings"])
    coll = by_slug["ambassador"]
    kinds = {li["payment_kind"]: li for li in coll["listings"]}
    assert set(kinds) == {"points", "stablecoin", "card"}
    assert kinds["points"]["price"] == 5000 and kinds["points"]["remaining"] == 200
    assert all(li["open"] for li in kinds.values())
    assert coll["perks"][0]["uses_per_token"] == 3
    client.get("/lang/en")
    html = client.get("/towns/sarabetsu").get_data(as_text=True)
    assert "5,000 points" in html and "5,000 yen by card" in html and "Village event entry" in html
    assert "Remaining: 200" in html and "Log in to buy" in html
