"""A town's verified residents: one row per (town, person), the pass the registrar key issues.

`identity_hash` is the pass's on-chain `personId`: an HMAC of the person's identity under a
server secret (identity.py), never the identity itself. It is UNIQUE per town, so one person
has at most one row, and so one pass, however often or by whichever route they come. An
account holds at most one row per town too (UNIQUE town_id, user_id).

States: issuing (the issue call is queued) -> issued (PassIssued indexed: token_id set) ->
revoking (the revoke call is queued) -> revoked (PassRevoked indexed). A revoked row may be
issued again (a person who moves back): `generation` counts the issues, and names the outbox
key of each.

When the outbox ends a call as failed (reverted, or given up: failures.py), issuing -> failed
(no pass; verifying the person again issues it anew, as for a revoked row) and revoking ->
issued (the pass still exists; staff revoke it again).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backend.core.db import Base, utcnow
from backend.core.models import register_audit_town_table

ISSUING, ISSUED, REVOKING, REVOKED = "issuing", "issued", "revoking", "revoked"
FAILED = "failed"  # the issue call failed on chain: no pass, and none on its way
STATES = (ISSUING, ISSUED, REVOKING, REVOKED, FAILED)
ACTIVE_STATES = (ISSUING, ISSUED)
IN_PERSON, OIDC = "in_person", "oidc"


class Resident(Base):
    __tablename__ = "residents"
    __table_args__ = (
        UniqueConstraint("town_id", "identity_hash"),
        UniqueConstraint("town_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    # "0x" + 64 hex digits: HMAC-SHA256 (identity.py), also the pass's personId on chain.
    identity_hash: Mapped[str] = mapped_column(String(66))
    holder: Mapped[str] = mapped_column(String(42))  # the address the pass goes to
    state: Mapped[str] = mapped_column(String(16), default=ISSUING)
    method: Mapped[str] = mapped_column(String(16))  # IN_PERSON | OIDC
    verified_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # staff, in person
    oidc_issuer: Mapped[str | None] = mapped_column(String(300))
    verified_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    token_id: Mapped[int | None] = mapped_column(BigInteger)
    generation: Mapped[int] = mapped_column(default=1)
    issue_tx_id: Mapped[int | None] = mapped_column()
    revoke_tx_id: Mapped[int | None] = mapped_column()
    revoke_reason: Mapped[str] = mapped_column(Text, default="")
    revoked_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


# Audit rows about a resident belong to the resident's town (the console's audit log).
register_audit_town_table("resident", Resident)
