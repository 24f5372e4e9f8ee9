"""The shop: fan NFT collections, listings and check-in, and the orders that pay for them
(points, test yen from a built-in account or an external wallet, or card)."""
