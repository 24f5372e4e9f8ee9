"""Demo data for `make run`: town staff, the shop 更別村農産物直売所 with its staff member
(registered on chain through the outbox; the worker sends it), and a resident's printed card."""

from __future__ import annotations

from sqlalchemy import select
from werkzeug.security import check_password_hash

from backend.accounts.roles import STAFF, grant_town_role
from backend.core.db import get_db
from backend.merchants.models import Merchant, ResidentCard
from backend.merchants.services import merchant_service
from backend.points.demo import RESIDENT_EMAIL, RESIDENT_PASSWORD, demo_user
from backend.regions.models import Town

STAFF_EMAIL = "staff@sarabetsu.example"
STAFF_PASSWORD = "furusato-demo-staff"  # noqa: S105 - public demo accounts
MERCHANT_EMAIL = "merchant@sarabetsu.example"
MERCHANT_PASSWORD = "furusato-demo-merchant"  # noqa: S105
SHOP_JA = "更別村農産物直売所"
SHOP_EN = "Sarabetsu Farm Market"
CARD_CODE = "CSARABETSU01"
CARD_PIN = "482916"  # 6 digits (issue 11 §2); the old demo card had "1234"


def load_demo(town: Town) -> None:
    session = get_db().session
    svc = merchant_service()
    staff = demo_user(STAFF_EMAIL, STAFF_PASSWORD, "更別村役場")
    grant_town_role(staff, town.id, STAFF)
    session.commit()
    shop = session.scalar(
        select(Merchant).where(Merchant.town_id == town.id, Merchant.name_en == SHOP_EN)
    )
    if shop is None:
        shop = svc.register_merchant(staff, town, SHOP_JA, SHOP_EN)
    clerk = demo_user(MERCHANT_EMAIL, MERCHANT_PASSWORD, SHOP_JA)
    svc.add_staff(staff, shop, clerk)
    resident = demo_user(RESIDENT_EMAIL, RESIDENT_PASSWORD, "更別 花子")
    card = session.scalar(
        select(ResidentCard).where(
            ResidentCard.user_id == resident.id, ResidentCard.town_id == town.id
        )
    )
    # A demo database made before 6-digit PINs holds the card with "1234": re-issue it.
    if card is None or not check_password_hash(card.pin_hash, CARD_PIN):
        card = svc.issue_card(staff, town, resident, CARD_PIN, replace=card is not None)
        card.card_code = CARD_CODE
        session.commit()
    print(f"demo shop: {SHOP_EN} (staff {MERCHANT_EMAIL} / {MERCHANT_PASSWORD})")
    print(f"demo town staff: {STAFF_EMAIL} / {STAFF_PASSWORD}")
    print(f"demo resident card: {card.card_code} PIN {CARD_PIN}")
