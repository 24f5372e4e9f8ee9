"""Events that grant points (issue 14 §4)."""
