"""The merchants' sealed keys as master-key rotation sees them (backend.chain.custody)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from backend.chain.api import ModelKeyStore
from backend.merchants.models import Merchant


def merchant_key_store(session: Session) -> ModelKeyStore:
    return ModelKeyStore("merchants.merchants", session, Merchant)
