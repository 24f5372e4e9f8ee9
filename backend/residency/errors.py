"""Errors of residency; each maps to a 4xx with a translated message."""

from __future__ import annotations

from backend.core.errors import Conflict


class AlreadyResident(Conflict):
    """The account or the person already holds (or is being issued) a pass of the town."""

    code = "already_resident"


class ResidencyWrongState(Conflict):
    code = "residency_wrong_state"


class OidcRefused(Conflict):
    """The digital-ID provider's answer did not prove residency (or was not valid)."""

    status = 400
    code = "oidc_refused"
