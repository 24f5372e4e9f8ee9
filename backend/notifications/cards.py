"""A printed payment card issued or replaced in a person's name by town staff. Staff issue
cards by e-mail address and see the PIN, so the holder is told, in the app and by mail to a
confirmed address: a card they did not ask for shows. Called in the issuing transaction by
backend/merchants/card_issue.py's listeners (registered in backend/composition.py)."""

from __future__ import annotations

import hashlib

from sqlalchemy.orm import Session

from backend.merchants.models import ResidentCard
from backend.notifications.models import CARD_ISSUED
from backend.notifications.services import notify
from backend.regions.models import Town


def card_issued(session: Session, card: ResidentCard, town: Town, replaced: bool) -> None:
    # One fact per card code (a replacement is another fact), named by a digest: the code pays.
    code = hashlib.sha256(card.card_code.encode()).hexdigest()[:16]
    notify(
        session,
        kind=CARD_ISSUED,
        key=f"{CARD_ISSUED}:{card.id}:{code}",
        user_ids=[card.user_id],
        params={"town_ja": town.name_ja, "town_en": town.name_en, "replaced": replaced},
    )
