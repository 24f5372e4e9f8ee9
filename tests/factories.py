"""factory_boy factories for the rows tests used to build by hand.

Use them inside an app context: every factory writes to that app's session (`get_db().session`,
looked up on each create) and flushes, so the row has its id at once; commit when the test needs
the row visible to other sessions (requests, the worker):

    with app.app_context():
        town = TownFactory(slug="toyako", chain_id=deployed.chain_id)
        user = UserFactory()
        settlement = SettlementFactory(town_id=town.id, merchant_id=..., requested_by=user.id)
        get_db().session.commit()

Anything a test asserts on should be passed explicitly; the defaults only fill what the schema
needs. `UserFactory` makes a bare row (no password, no address): accounts that sign in are made
by the service (AccountService.signup), which seals their custodial key.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory
from factory.alchemy import SQLAlchemyModelFactory

from backend.accounts.models import Membership, User
from backend.core.db import get_db
from backend.merchants.models import APPROVED, REQUESTED, Charge, ResidentCard, Settlement
from backend.regions.models import Town
from backend.shop.models import Collection, Listing

ANVIL_CHAIN_ID = 31337


def _session():  # type: ignore[no-untyped-def]
    return get_db().session


class BaseFactory(SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_factory = _session
        sqlalchemy_session_persistence = "flush"  # ids at once; the test decides when to commit


class TownFactory(BaseFactory):
    class Meta:
        model = Town

    slug = factory.Sequence(lambda n: f"town{n}")
    name_ja = factory.LazyAttribute(lambda t: t.slug)
    name_en = factory.LazyAttribute(lambda t: t.slug.title())
    chain_id = ANVIL_CHAIN_ID
    points_address = None


class UserFactory(BaseFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"factory-user{n}@example.test")


class MembershipFactory(BaseFactory):
    class Meta:
        model = Membership

    user_id = factory.LazyFunction(lambda: UserFactory().id)
    town_id = factory.LazyFunction(lambda: TownFactory().id)
    role = "staff"


class SettlementFactory(BaseFactory):
    """A redemption already past its burn (status "requested"); pass town_id, merchant_id and
    requested_by of the test's world."""

    class Meta:
        model = Settlement

    amount = Decimal(300)
    ref = factory.Sequence(lambda n: "0x" + f"{n:064x}")
    status = REQUESTED
    idempotency_key = factory.Sequence(lambda n: f"settlement-{n}")

    class Params:
        approved = factory.Trait(status=APPROVED)


class ChargeFactory(BaseFactory):
    """A pending QR charge; pass merchant_id, town_id and created_by of the test's world."""

    class Meta:
        model = Charge

    amount = Decimal(100)
    idempotency_key = factory.Sequence(lambda n: f"charge-{n}")
    code = factory.Sequence(lambda n: f"C{n:09d}")
    expires_at = factory.LazyFunction(lambda: dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5))


class ResidentCardFactory(BaseFactory):
    """A printed card; pass user_id, town_id and a pin_hash (werkzeug's generate_password_hash)."""

    class Meta:
        model = ResidentCard

    card_code = factory.Sequence(lambda n: f"CARD{n:08d}")


class CollectionFactory(BaseFactory):
    class Meta:
        model = Collection

    town_id = factory.LazyFunction(lambda: TownFactory().id)
    slug = factory.Sequence(lambda n: f"collection-{n}")
    name_ja = factory.LazyAttribute(lambda c: c.slug)
    name_en = factory.LazyAttribute(lambda c: c.slug)
    category = "event_ticket"
    max_supply = 100


class ListingFactory(BaseFactory):
    """A shop listing of a collection, open from yesterday for 30 days."""

    class Meta:
        model = Listing

    collection_id = factory.LazyFunction(lambda: CollectionFactory().id)
    town_id = factory.LazyAttribute(lambda o: _session().get(Collection, o.collection_id).town_id)
    payment_kind = "points"
    price = Decimal(100)
    supply = 10
    wallet_cap = 5
    starts_at = factory.LazyFunction(lambda: dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    ends_at = factory.LazyAttribute(lambda o: o.starts_at + dt.timedelta(days=31))
