"""The staff console's collections on real anvil (issue 13 §2, ADR 0014): town staff create a
collection with an uploaded image; the `collections` key creates it through the factory, sets it
up (the sale may mint, venue staff may check in, the first perk) and hands it to the town's
timelock, keeping only PERK_ADMIN_ROLE. A listing with an allowlist sells to an allowlisted
tourist (voucher signed by the `voucher_signer` key) and refuses one not on the list before
anything is sent. Perks are edited through PERK_ADMIN_ROLE. Bad input, a wrong person, a chain
without the catalogue key and a double submit change nothing (or one thing)."""

from __future__ import annotations

import base64
import datetime as dt
import io
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from web3 import Web3

from backend.accounts.models import Address, User
from backend.accounts.roles import STAFF, grant_town_role
from backend.chain.outbox import outbox_service
from backend.chain.outbox_models import OutboxTx
from backend.chain.registry import artifact
from backend.core.db import get_db
from backend.core.errors import InvalidInput
from backend.core.models import AuditLog
from backend.regions.models import Town
from backend.shop import console
from backend.shop.categories import index
from backend.shop.models import AllowlistEntry, Collection, Listing, Order, Perk
from backend.shop.services import collection_console
from tests.chain_admin import ROLE_PRIVATE_KEYS, role_address, timelock_of
from tests.concurrency import in_app, n_at_once, twin_first
from tests.factories import CollectionFactory, ListingFactory
from tests.shop.shop_helpers import Api, confirm_email, contract, drive, mine

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64)
GIF = b"GIF89a" + bytes(64)
STAFF_EMAIL = "console-staff@sarabetsu.example"


def _address(app: Flask, email: str) -> str:
    with app.app_context():
        return str(
            get_db().session.scalar(
                sa.select(Address.address).join(User).where(User.email == email)
            )
        )


def _staff(app: Flask) -> Api:
    api = Api(app.test_client())
    api.signup(STAFF_EMAIL)
    with app.app_context():
        s = get_db().session
        town = s.scalar(sa.select(Town).where(Town.slug == "sarabetsu"))
        grant_town_role(s.scalar(sa.select(User).where(User.email == STAFF_EMAIL)), town.id, STAFF)
        s.commit()
    return api


def _form(api: Api, url: str, data: dict[str, Any]) -> Any:
    if api.token is None:
        api.token = api.client.get("/api/csrf").get_json()["csrf_token"]
    return api.client.post(
        url,
        data={"csrf_token": api.token, **data},
        content_type="multipart/form-data",
        headers={"Accept-Language": "en"},
    )


def _collection_form(**over: Any) -> dict[str, Any]:
    return {
        "key": "create-key-0001",
        "category": "event_ticket",
        "slug": "autumn-fest",
        "symbol": "AUT",
        "name_ja": "秋祭りチケット",
        "name_en": "Autumn Festival Ticket",
        "description_ja": "村の秋祭りの入場券です。",
        "description_en": "Entry to the village autumn festival.",
        "max_supply": "50",
        "royalty_bps": "250",
        "soulbound": "1",
        "image": (io.BytesIO(PNG), "card.png"),
        **over,
    }


def _collection_json(key: str, **numbers: Any) -> dict[str, Any]:
    """The collection form as the JSON API takes it (numbers as numbers, the image inline)."""
    body: dict[str, Any] = {k: v for k, v in _collection_form().items() if k != "image"}
    return body | {
        "idempotency_key": key,
        "image_base64": base64.b64encode(PNG).decode(),
        **numbers,
    }


def _counts(app: Flask) -> dict[str, int]:
    with app.app_context():
        s = get_db().session
        return {
            m.__tablename__: s.scalar(sa.select(sa.func.count()).select_from(m))
            for m in (Collection, Listing, Perk, AllowlistEntry, Order, OutboxTx, AuditLog)
        }


def _chain_now(w3: Web3) -> dt.datetime:
    return dt.datetime.fromtimestamp(w3.eth.get_block("latest").timestamp, dt.UTC)


def _window(w3: Web3) -> tuple[str, str]:
    start = min(_chain_now(w3), dt.datetime.now(dt.UTC)) - dt.timedelta(hours=1)
    end = max(_chain_now(w3), dt.datetime.now(dt.UTC)) + dt.timedelta(days=30)
    return start.isoformat(timespec="seconds"), end.isoformat(timespec="seconds")


def _listing_form(w3: Web3, key: str) -> dict[str, str]:
    """A valid listing form: 5 tokens for 100 points each, one per wallet, on sale now."""
    start, end = _window(w3)
    return {
        "key": key,
        "payment_kind": "points",
        "price": "100",
        "supply": "5",
        "wallet_cap": "1",
        "starts_at": start,
        "ends_at": end,
    }


def test_staff_create_a_collection_that_the_town_owns_and_sell_it_to_an_allowlist(shop_app, w3):
    app = shop_app
    staff = _staff(app)
    # A first perk given before the collection exists on chain is set during its set-up.
    with app.app_context():
        deployed = app.extensions["chain"].deployments()
    resp = _form(api := staff, "/towns/sarabetsu/admin/collections", _collection_form())
    assert resp.status_code == 303, resp.get_data(as_text=True)
    with app.app_context():
        c = get_db().session.scalar(sa.select(Collection).where(Collection.slug == "autumn-fest"))
        assert c.status == "creating" and c.contract_address is None and c.image_type == "image/png"
        cid = c.id
        audit = get_db().session.scalar(
            sa.select(AuditLog).where(AuditLog.action == "nft.collection.create")
        )
        assert audit is not None and audit.actor.startswith("user:")
        assert audit.town_id == c.town_id  # shown in the town's audit log
    page = api.client.get(f"/towns/sarabetsu/admin/collections/{cid}")
    assert page.status_code == 200 and 'data-status="creating"' in page.get_data(as_text=True)
    perk = _form(
        api,
        f"/towns/sarabetsu/admin/collections/{cid}/perks",
        {
            "key": "perk-key-0001",
            "perk_id": "1",
            "name_ja": "入場",
            "name_en": "Entry",
            "uses_per_token": "2",
            "valid_until": "",
        },
    )
    assert perk.status_code == 303, perk.get_data(as_text=True)

    drive(app, w3)
    drive(app, w3)
    page = api.client.get(f"/towns/sarabetsu/admin/collections/{cid}").get_data(as_text=True)
    assert 'data-status="live"' in page, page
    with app.app_context():
        c = get_db().session.get(Collection, cid)
        address = c.contract_address
    on_chain = w3.eth.contract(address=address, abi=artifact("FanCollection").abi)
    fn = on_chain.functions
    assert fn.name().call() == "Autumn Festival Ticket" and fn.symbol().call() == "AUT"
    assert fn.maxSupply().call() == 50 and fn.category().call() == index("event_ticket")
    assert fn.soulbound().call() and not fn.votesEnabled().call()
    treasury = timelock_of(deployed)
    assert fn.royaltyInfo(1, 10_000).call() == [treasury, 250]
    assert fn.tokenURI  # metadata base: the platform's /meta/<town>/<collection>/
    assert fn.perk(1).call() == [2, 0]

    def has(role: str, who: str) -> bool:
        rid = b"\x00" * 32 if role == "DEFAULT_ADMIN_ROLE" else Web3.keccak(text=role)
        return bool(fn.hasRole(rid, who).call())

    sale = deployed.address("towns.sarabetsu.PrimarySale")
    key = role_address("collections")
    assert has("MINTER_ROLE", sale) and has("VERIFIER_ROLE", role_address("verifier"))
    assert has("DEFAULT_ADMIN_ROLE", treasury)
    # The console's key kept nothing but the perk editing (ADR 0014).
    assert not any(has(r, key) for r in ("DEFAULT_ADMIN_ROLE", "MINTER_ROLE", "VERIFIER_ROLE"))
    assert has("PERK_ADMIN_ROLE", key)
    # The uploaded image is served as the collection's image (checked from its bytes).
    img = api.client.get("/meta/sarabetsu/autumn-fest/image")
    assert img.status_code == 200 and img.mimetype == "image/png" and img.data == PNG

    # A listing in test yen for an allowlist of one tourist (by e-mail).
    invited, stranger = Api(app.test_client()), Api(app.test_client())
    invited.signup("invited@example.com")
    confirm_email(app, "invited@example.com")  # only confirmed e-mails are taken
    stranger.signup("stranger@example.com")
    start, end = _window(w3)
    listed = _form(
        api,
        f"/towns/sarabetsu/admin/collections/{cid}/listings",
        {
            "key": "listing-key-01",
            "payment_kind": "stablecoin",
            "price": "300",
            "supply": "10",
            "wallet_cap": "2",
            "starts_at": start,
            "ends_at": end,
            "allowlist_only": "1",
            "allowlist": (io.BytesIO(b"email\nInvited@Example.com\n"), "list.csv"),
        },
    )
    assert listed.status_code == 303, listed.get_data(as_text=True)
    drive(app, w3)
    with app.app_context():
        listing = get_db().session.scalar(sa.select(Listing).where(Listing.collection_id == cid))
        assert listing.chain_listing_id is not None and listing.allowlist_only
        lid = listing.id
        # the worker signs the vouchers (shop.sign_vouchers)
        assert collection_console().sign_pending_vouchers() == 1
    yen = contract(w3, deployed, "TestYenStablecoin")
    for who in ("invited@example.com", "stranger@example.com"):
        yen.functions.mint(_address(app, who), 1_000).transact({"from": role_address("faucet")})
    mine(w3)

    before = _counts(app)
    refused = stranger.post(
        "/api/shop/orders", {"listing_id": lid, "quantity": 1, "idempotency_key": "stranger-01"}
    )
    assert refused.status_code == 403, refused.get_json()
    assert refused.get_json()["error"]["code"] == "not_on_allowlist"
    assert _counts(app) == before

    bought = invited.post(
        "/api/shop/orders", {"listing_id": lid, "quantity": 2, "idempotency_key": "invited-01"}
    )
    assert bought.status_code == 201, bought.get_json()
    drive(app, w3)
    with app.app_context():
        order = get_db().session.scalar(sa.select(Order).where(Order.listing_id == lid))
        assert order.status == "completed", order.error
    buyer = _address(app, "invited@example.com")
    assert fn.ownerOf(1).call() == buyer and fn.ownerOf(2).call() == buyer
    assert yen.functions.balanceOf(buyer).call() == 400
    # The voucher was used once: a second purchase is refused before anything is sent.
    again = invited.post(
        "/api/shop/orders", {"listing_id": lid, "quantity": 1, "idempotency_key": "invited-02"}
    )
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "voucher_used"
    # The metadata of a minted token points at the uploaded image.
    meta = api.client.get("/meta/sarabetsu/autumn-fest/1").get_json()
    assert meta["image"].endswith("/meta/sarabetsu/autumn-fest/image")

    # Perks later: the console's key changes the perk through PERK_ADMIN_ROLE only.
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=10)).replace(microsecond=0)
    edited = _form(
        api,
        f"/towns/sarabetsu/admin/collections/{cid}/perks",
        {
            "key": "perk-key-0002",
            "perk_id": "1",
            "name_ja": "入場",
            "name_en": "Entry",
            "uses_per_token": "5",
            "valid_until": until.isoformat(),
        },
    )
    assert edited.status_code == 303, edited.get_data(as_text=True)
    drive(app, w3)
    assert fn.perk(1).call() == [5, int(until.timestamp())]
    assert not has("DEFAULT_ADMIN_ROLE", key)


def test_bad_input_and_the_wrong_person_change_nothing(shop_app, w3):
    app = shop_app
    staff = _staff(app)
    customer = Api(app.test_client())
    customer.signup("customer@example.com")
    before = _counts(app)
    url = "/towns/sarabetsu/admin/collections"
    cases = [
        ({"image": (io.BytesIO(GIF), "card.png")}, "image"),  # a GIF named .png
        ({"image": (io.BytesIO(PNG + bytes(600 * 1024)), "big.png")}, "image"),
        ({"votes": "1"}, "votes"),
        ({"max_supply": "0"}, "max_supply"),
        ({"max_supply": "1.5"}, "max_supply"),
        ({"royalty_bps": "5000"}, "royalty_bps"),
        ({"royalty_bps": "-1"}, "royalty_bps"),
        ({"category": "rocket"}, "category"),
        ({"slug": "Bad Slug"}, "slug"),
        ({"name_en": ""}, "name_en"),
        ({"key": "short"}, "key"),
    ]
    for over, field in cases:
        resp = _form(staff, url, _collection_form(**over))
        assert resp.status_code == 400, (field, resp.status_code)
        assert 'role="alert"' in resp.get_data(as_text=True), field
    assert "only the collection the town" in _form(
        staff, url, _collection_form(votes="1")
    ).get_data(as_text=True)
    assert _form(customer, url, _collection_form()).status_code == 403
    assert customer.client.get(url).status_code == 403
    assert _counts(app) == before
    # Listing numbers on an existing collection: refused, nothing written.
    with app.app_context():
        cid = get_db().session.scalar(
            sa.select(Collection.id).where(Collection.slug == "ambassador")
        )
    good = _listing_form(w3, "listing-key-02")
    start = good["starts_at"]
    for over in (
        {"price": "0"},
        {"supply": "100000"},
        {"wallet_cap": "6"},
        {"payment_kind": "bitcoin"},
        # a card payment the card networks do not take: under ¥50, or over ¥99,999,999 at the
        # most one buyer may take
        {"payment_kind": "card", "price": "49"},
        {"payment_kind": "card", "price": "50000000", "wallet_cap": "2", "supply": "5"},
        {"ends_at": start},
        {"starts_at": "tomorrow"},
        {"allowlist_only": "1"},  # no list
        {"allowlist": (io.BytesIO(b"nobody@example.com\n0x1234\n"), "list.txt")},
        # an account's e-mail its owner has not confirmed (perhaps someone else's typo)
        {"allowlist_only": "1", "allowlist": (io.BytesIO(b"customer@example.com\n"), "l.txt")},
    ):
        resp = _form(staff, f"{url}/{cid}/listings", {**good, **over})
        assert resp.status_code == 400, (over, resp.status_code)
    assert _form(customer, f"{url}/{cid}/listings", good).status_code == 403
    perk = {"key": "perk-key-0003", "perk_id": "1", "name_ja": "x", "name_en": "x"}
    assert _form(staff, f"{url}/{cid}/perks", {**perk, "uses_per_token": "-1"}).status_code == 400
    assert _form(customer, f"{url}/{cid}/perks", {**perk, "uses_per_token": "1"}).status_code == 403
    assert _counts(app) == before


def test_listing_needs_the_towns_vote_where_there_is_no_catalogue_key(make_app, deployed, w3):
    """On a real chain the platform holds no listing key (ADR 0008): the page says a listing
    needs the town's vote. Configured here by leaving `catalogue` out of the role keys."""
    keys = ",".join(p for p in ROLE_PRIVATE_KEYS.split(",") if not p.startswith("catalogue="))
    app = make_app(role_private_keys=keys)
    with app.app_context():
        outbox_service().auto_dispatch = False
        s = get_db().session
        town = Town(
            slug="sarabetsu", name_ja="更別村", name_en="Sarabetsu", chain_id=deployed.chain_id
        )
        s.add(town)
        s.flush()
        s.add(
            Collection(
                town_id=town.id,
                slug="ambassador",
                name_ja="カード",
                name_en="Card",
                category="ambassador_card",
                max_supply=10,
                contract_address=deployed.address("towns.sarabetsu.collections.ambassador"),
            )
        )
        s.commit()
    staff = _staff(app)
    with app.app_context():
        cid = get_db().session.scalar(sa.select(Collection.id))
    before = _counts(app)
    resp = _form(
        staff,
        f"/towns/sarabetsu/admin/collections/{cid}/listings",
        _listing_form(w3, "listing-key-03"),
    )
    assert resp.status_code == 409
    assert "town&#39;s vote" in resp.get_data(as_text=True) or "town's vote" in resp.get_data(
        as_text=True
    )
    assert _counts(app) == before


@pytest.fixture
def race_app(make_app, deployed, any_db_url):
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False
        s = get_db().session
        town = Town(
            slug="sarabetsu", name_ja="更別村", name_en="Sarabetsu", chain_id=deployed.chain_id
        )
        s.add(town)
        s.commit()
    return app


def _staff_creating_one_collection(app: Flask) -> Callable[[], int]:
    """A member of staff's "create this collection" (one form, one request key), to call from
    any thread inside an app context; answers the collection's id."""
    _staff(app)
    with app.app_context():
        user_id = get_db().session.scalar(sa.select(User.id).where(User.email == STAFF_EMAIL))
        town_id = get_db().session.scalar(sa.select(Town.id))
    form = {k: v for k, v in _collection_form().items() if k != "image"}

    def create() -> int:
        s = get_db().session
        c = collection_console().create(
            s.get(User, user_id), s.get(Town, town_id), form, PNG, form["key"]
        )
        return c.id

    return create


def test_a_double_submit_at_once_creates_one_collection(race_app):
    app = race_app
    create = _staff_creating_one_collection(app)
    n = 6
    results = n_at_once(app, n, lambda _i: create())
    assert len(results) == n and all(isinstance(r, int) for r in results), results
    assert len(set(results)) == 1
    counts = _counts(app)
    assert counts["collections"] == 1 and counts["outbox_txs"] == 1
    with app.app_context():
        assert (
            get_db().session.scalar(
                sa.select(sa.func.count())
                .select_from(AuditLog)
                .where(AuditLog.action == "nft.collection.create")
            )
            == 1
        )


def test_a_twin_that_commits_between_the_checks_gets_the_first_answer(race_app, monkeypatch):
    """The exact interleaving behind the double submit: the second request finds no row with
    its key, then the first commits, then the second checks the slug. It gets the first
    collection (before: 409 "this town already has a collection called ...")."""
    app = race_app
    create = _staff_creating_one_collection(app)
    # The twin runs once the outer request has looked its key up: at its image check.
    first = twin_first(monkeypatch, console, "image_type", app, create)
    second = in_app(app, create)()
    assert second == first[0]
    assert _counts(app)["collections"] == 1


def test_the_json_api_does_the_same_for_staff_only(make_app, deployed):
    app = make_app()
    with app.app_context():
        outbox_service().auto_dispatch = False
        s = get_db().session
        s.add(
            Town(
                slug="sarabetsu", name_ja="更別村", name_en="Sarabetsu", chain_id=deployed.chain_id
            )
        )
        s.commit()
    base = "/api/towns/sarabetsu/admin/collections"
    body = _collection_json("api-key-00001", max_supply=20, royalty_bps=0, soulbound=False)
    assert Api(app.test_client()).post(base, body).status_code == 401
    customer = Api(app.test_client())
    customer.signup("customer@example.com")
    assert customer.post(base, body).status_code == 403
    assert customer.get(base).status_code == 403
    staff = _staff(app)
    refused = staff.post(base, {**body, "votes": True})
    assert refused.status_code == 400
    assert refused.get_json()["error"]["code"] == "votes_not_allowed"
    bad = staff.post(base, {**body, "image_base64": base64.b64encode(GIF).decode()})
    assert bad.status_code == 400 and bad.get_json()["error"]["details"]["field"] == "image"
    assert _counts(app)["collections"] == 0
    made = staff.post(base, body)
    assert made.status_code == 201, made.get_json()
    again = staff.post(base, body)  # the same request key: the first collection
    assert again.get_json()["collection"]["id"] == made.get_json()["collection"]["id"]
    cid = made.get_json()["collection"]["id"]
    detail = staff.get(f"{base}/{cid}").get_json()["collection"]
    assert detail["status"] == "creating"
    assert [c["function"] for c in detail["calls"]] == ["createCollection"]
    assert detail["calls"][0]["state"] == "queued"
    assert _counts(app)["collections"] == 1


def test_the_same_allowlist_uploaded_ten_times_at_once_stores_each_line_once(race_app):
    """A double-clicked upload, or two staff uploading overlapping lists: every request answers
    (none fails on the UNIQUE(listing, address) constraint), each address is stored once, the
    new lines are counted once in all, and each upload has its audit row."""
    app = race_app
    _staff(app)
    with app.app_context():
        s = get_db().session
        town = s.scalar(sa.select(Town))
        listing = ListingFactory(
            collection_id=CollectionFactory(town_id=town.id).id, allowlist_only=True
        )
        listing_id, town_id = listing.id, town.id
        user_id = s.scalar(sa.select(User.id).where(User.email == STAFF_EMAIL))
        s.commit()
    addresses = [Web3.to_checksum_address(f"0x{i:040x}") for i in range(1, 41)]
    # Ten overlapping lists: each holds 30 of the 40 addresses, from a different start.
    lists = ["\n".join(addresses[(i * 4 + j) % 40] for j in range(30)).encode() for i in range(10)]

    def upload(i: int) -> int:
        s = get_db().session
        return collection_console().upload_allowlist(
            s.get(User, user_id), s.get(Town, town_id), listing_id, lists[i]
        )

    results = n_at_once(app, 10, upload)
    assert all(isinstance(r, int) for r in results), results
    assert sum(results) == 40  # every address counted as new by exactly one upload
    with app.app_context():
        s = get_db().session
        stored = list(
            s.scalars(
                sa.select(AllowlistEntry.address).where(AllowlistEntry.listing_id == listing_id)
            )
        )
        audits = s.scalar(
            sa.select(sa.func.count())
            .select_from(AuditLog)
            .where(AuditLog.action == "nft.allowlist")
        )
    assert sorted(stored) == sorted(addresses)
    assert audits == 10


# ------------------------------------------------------------ a key sent for something else

ANOTHER_TOWN = "This request key was used for another town."
ANOTHER_COLLECTION = "This request key was used for another collection."


@pytest.fixture
def two_towns_staff(race_app: Flask) -> tuple[Api, Callable[[str], Callable[[], Any]]]:
    """A staff member of Sarabetsu and of Toyako (one person on a shared platform), and
    `create(slug)`: their "create this collection" for that town, with one request key,
    called in an app context (as the request would)."""
    app = race_app
    staff = _staff(app)
    with app.app_context():
        s = get_db().session
        s.add(Town(slug="toyako", name_ja="洞爺湖町", name_en="Lake Toya", chain_id=31337))
        user = s.scalar(sa.select(User).where(User.email == STAFF_EMAIL))
        s.flush()
        grant_town_role(user, s.scalar(sa.select(Town.id).where(Town.slug == "toyako")), STAFF)
        s.commit()
        user_id = user.id
    form = {k: v for k, v in _collection_form().items() if k != "image"}

    def create(slug: str) -> Callable[[], Any]:
        def call() -> Any:
            s = get_db().session
            town = s.scalar(sa.select(Town).where(Town.slug == slug))
            return collection_console().create(s.get(User, user_id), town, form, PNG, form["key"])

        return call

    return staff, create


def test_a_collection_key_used_in_another_town_is_refused_and_writes_nothing(
    race_app, two_towns_staff
):
    """Request keys are per person, and one person can be staff of two towns: the key of
    Sarabetsu's collection sent for Toyako gets a clear 400, not Sarabetsu's collection as if
    Toyako's had been made, and nothing is written."""
    app = race_app
    staff, create = two_towns_staff
    made = in_app(app, create("sarabetsu"))()
    before = _counts(app)
    with pytest.raises(InvalidInput) as refused:
        in_app(app, create("toyako"))()
    assert (refused.value.message, refused.value.details) == (ANOTHER_TOWN, {"field": "key"})
    assert _counts(app) == before
    assert in_app(app, create("sarabetsu"))().id == made.id  # its own town still gets it
    # Over HTTP, in the person's language.
    body = _collection_json("create-key-0001", max_supply=50, royalty_bps=250, soulbound=True)
    resp = staff.post("/api/towns/toyako/admin/collections", body)
    assert resp.status_code == 400, resp.get_json()
    assert resp.get_json()["error"]["details"] == {"field": "key"}
    assert resp.get_json()["error"]["message"] == "このリクエストキーは別のまちで使われています。"
    assert _counts(app) == before


def test_another_towns_twin_committing_first_is_refused_not_answered(
    race_app, two_towns_staff, monkeypatch
):
    """The racing form: Toyako's request finds no row for its key, then Sarabetsu's request
    with the same key commits; Toyako's insert meets the UNIQUE key and the row it then finds
    is another town's: refused, one collection."""
    app = race_app
    _staff_api, create = two_towns_staff
    first = twin_first(monkeypatch, console, "image_type", app, create("sarabetsu"))
    with pytest.raises(InvalidInput) as refused:
        in_app(app, create("toyako"))()
    assert first, "Sarabetsu's request did not run between the look-up and the insert"
    assert refused.value.message == ANOTHER_TOWN
    counts = _counts(app)
    assert counts["collections"] == 1 and counts["outbox_txs"] == 1


def test_a_listing_key_used_for_another_collection_is_refused_and_writes_nothing(shop_app, w3):
    app = shop_app
    staff = _staff(app)
    url = "/towns/sarabetsu/admin/collections"
    # A new collection with room for listings (the demo's are listed to their supply).
    assert _form(staff, url, _collection_form()).status_code == 303
    drive(app, w3)
    drive(app, w3)
    with app.app_context():
        s = get_db().session
        new_id = s.scalar(sa.select(Collection.id).where(Collection.slug == "autumn-fest"))
        ambassador_id = s.scalar(sa.select(Collection.id).where(Collection.slug == "ambassador"))
        assert s.get(Collection, new_id).contract_address is not None
    body = _listing_form(w3, "listing-key-04")
    assert _form(staff, f"{url}/{new_id}/listings", body).status_code == 303
    before = _counts(app)
    resp = _form(staff, f"{url}/{ambassador_id}/listings", body)
    assert resp.status_code == 400, resp.status_code
    assert ANOTHER_COLLECTION in resp.get_data(as_text=True)
    assert _counts(app) == before
    # The same key for its own collection is the double submit: the first listing, no other.
    assert _form(staff, f"{url}/{new_id}/listings", body).status_code == 303
    assert _counts(app) == before
