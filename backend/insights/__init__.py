"""The town's KPIs for its staff and the anonymised export for its data staff: a read-only
domain that counts what the other domains recorded (ADR 0028). It imports their models; no
domain imports it (pyproject's import-linter contracts), and it writes nothing but the audit
row of an export.
"""
