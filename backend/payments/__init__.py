"""Payments for the shop: orders paid with points, the test yen stablecoin or by card."""
