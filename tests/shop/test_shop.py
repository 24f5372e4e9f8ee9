"""The shop page and API, NFT metadata and the demo listings."""

from __future__ import annotations


def test_shop_lists_demo_listings_with_remaining_supply_and_perk(shop_app):
    client = shop_app.test_client()
    body = client.get("/api/shop/towns/sarabetsu/listings").get_json()
    (coll,) = body["collections"]
    kinds = {li["payment_kind"]: li for li in coll["listings"]}
    assert set(kinds) == {"points", "stablecoin", "card"}
    assert kinds["points"]["price"] == 5000 and kinds["points"]["remaining"] == 200
    assert all(li["open"] for li in kinds.values())
    assert coll["perks"][0]["uses_per_token"] == 3
    client.get("/lang/en")
    html = client.get("/towns/sarabetsu").get_data(as_text=True)
    assert "5,000 points" in html and "5,000 yen by card" in html and "Village event entry" in html
    assert "Remaining: 200" in html and "Log in to buy" in html
