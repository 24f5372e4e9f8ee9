"""Points held for an e-mail address that has no verified account yet (issue 14 §3, ADR 0017)."""
