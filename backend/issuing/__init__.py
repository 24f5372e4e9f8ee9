"""Issuing points by town staff: to one person or to many from a CSV (issue 13 §2)."""
