"""Outgoing webhooks, signed as Standard Webhooks and delivered by the worker (issue 14 §2)."""
