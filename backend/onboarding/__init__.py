"""Onboarding a town: its contracts set up through the outbox, its first admin invited, and the
platform operators who may do it (`flask --app backend towns create`, /operator/towns)."""
