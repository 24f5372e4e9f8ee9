"""Merchants (加盟店): staff, charges by QR or customer code or printed card, sales, redemption
of points (burned on chain) and the town's settlement queue."""
