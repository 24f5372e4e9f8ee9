"""Residency (issue 15 §3): who is a verified resident of a town and holds its ResidentPass.

Staff verify a person in person (webui/console_residents_pages.py), or the person verifies with
a digital-ID provider over OpenID Connect (oidc.py, webui/residency_pages.py); either way one
person gets one pass per town (keyed by a hash of their identity, identity.py), issued and
revoked by the `registrar` role key through the outbox (services.py), and the rows follow the
chain's PassIssued / PassRevoked events (handlers.py). ADR 0021.
"""
