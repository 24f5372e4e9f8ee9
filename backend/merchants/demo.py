"""Demo data for `make run`, per demo town: town staff, a shop with its staff member (registered
on chain through the outbox; the worker sends it), and the town's resident's printed card."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from werkzeug.security import check_password_hash

from backend.accounts.roles import STAFF, grant_town_role
from backend.core.db import get_db
from backend.merchants.models import Merchant, ResidentCard
from backend.merchants.services import merchant_service
from backend.points.demo import demo_resident, demo_user
from backend.regions.models import Town

STAFF_PASSWORD = "furusato-demo-staff"  # noqa: S105 - public demo accounts
MERCHANT_PASSWORD = "furusato-demo-merchant"  # noqa: S105


@dataclass(frozen=True)
class DemoTown:
    staff_email: str
    staff_name: str
    merchant_email: str
    shop_ja: str
    shop_en: str
    card_code: str  # C and 10 letters or digits, as every card (merchants/card_issue.py)
    card_pin: str  # 6 digits (issue 11 §2); the old demo card had "1234"


TOWNS = {
    "sarabetsu": DemoTown(
        "staff@sarabetsu.example",
        "更別村役場",
        "merchant@sarabetsu.example",
        "更別村農産物直売所",
        "Sarabetsu Farm Market",
        "CSARABETSU1",
        "482916",
    ),
    "toyako": DemoTown(
        "staff@toyako.example",
        "洞爺湖町役場",
        "merchant@toyako.example",
        "洞爺湖温泉 湖畔のおみやげ店",
        "Lake Toya Lakeside Gift Shop",
        "CTOYAKO0001",
        "530718",
    ),
}
# Sarabetsu's, as the README and older tests name them
STAFF_EMAIL = TOWNS["sarabetsu"].staff_email
MERCHANT_EMAIL = TOWNS["sarabetsu"].merchant_email
SHOP_JA, SHOP_EN = TOWNS["sarabetsu"].shop_ja, TOWNS["sarabetsu"].shop_en
CARD_CODE, CARD_PIN = TOWNS["sarabetsu"].card_code, TOWNS["sarabetsu"].card_pin


def load_demo(town: Town) -> None:
    demo = TOWNS.get(town.slug, TOWNS["sarabetsu"])
    session = get_db().session
    svc = merchant_service()
    staff = demo_user(demo.staff_email, STAFF_PASSWORD, demo.staff_name)
    grant_town_role(staff, town.id, STAFF)
    session.commit()
    shop = session.scalar(
        select(Merchant).where(Merchant.town_id == town.id, Merchant.name_en == demo.shop_en)
    )
    if shop is None:
        shop = svc.register_merchant(staff, town, demo.shop_ja, demo.shop_en)
    clerk = demo_user(demo.merchant_email, MERCHANT_PASSWORD, demo.shop_ja)
    svc.add_staff(staff, shop, clerk)
    resident = demo_resident(town)
    card = session.scalar(
        select(ResidentCard).where(
            ResidentCard.user_id == resident.id, ResidentCard.town_id == town.id
        )
    )
    # A demo database made before 6-digit PINs holds the card with "1234": re-issue it.
    if card is None or not check_password_hash(card.pin_hash, demo.card_pin):
        card = svc.issue_card(staff, town, resident, demo.card_pin, replace=card is not None)
        card.card_code = demo.card_code
        session.commit()
    elif card.card_code != demo.card_code:
        # Demo databases made before hold a 12-character code that the event check-in and
        # issuing forms refuse (a card code is C and 10 characters): give the card this one.
        card.card_code = demo.card_code
        session.commit()
    print(f"demo shop ({town.slug}): {demo.shop_en}")
    print(f"demo shop staff ({town.slug}): {demo.merchant_email} / {MERCHANT_PASSWORD}")
    print(f"demo town staff ({town.slug}): {demo.staff_email} / {STAFF_PASSWORD}")
    print(f"demo resident card ({town.slug}): {card.card_code} PIN {demo.card_pin}")
