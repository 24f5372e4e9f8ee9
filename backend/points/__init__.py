"""Regional points: balances, lots with their expiry, history, welcome points."""
