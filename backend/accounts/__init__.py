"""Accounts: users, their custodial and external addresses, and Sign-In with Ethereum."""
