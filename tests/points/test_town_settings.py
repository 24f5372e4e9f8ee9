"""A town's programmes and transfer policy as its staff edit them (issue 13 §2, §3 of the
console): staff only; every change once per request key, with an AuditLog row and, when it goes
on chain, a setProgramme / setTransferPolicy call by the town_settings key that shows queued and
then confirmed; bad input (amounts, caps, expiries outside the presets, a paid kind beyond the
6-month rule) is refused with nothing written. The welcome grant reads the town's row."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from backend.accounts.models import User
from backend.accounts.roles import STAFF, grant_town_role
from backend.accounts.services import AccountService
from backend.chain.custody import get_vault
from backend.chain.outbox_models import OutboxTx
from backend.chain.registry import artifact
from backend.core.db import get_db
from backend.core.errors import Forbidden, InvalidInput
from backend.core.models import AuditLog
from backend.points.errors import ProgrammeInactive
from backend.points.models import PointsGrant, PointsSettingChange, TownProgramme
from backend.points.programmes import MAX_PAID_DAYS, WELCOME, expiry_choices
from backend.points.services import points_service
from backend.points.town_settings import (
    CONFIRMED,
    FAILED,
    MERCHANTS_ONLY,
    QUEUED,
    SAVED,
    town_settings_service,
)
from backend.regions.models import Town
from tests.chain_admin import role_address
from tests.points.conftest import PASSWORD, run_chain

THANKS = {
    "kind": "thank-you",
    "name_ja": "清掃ボランティアのお礼",
    "name_en": "Clean-up thanks",
    "expiry_days": "90",
    "cap_per_person_day": "300",
    "cap_per_town_day": "",
    "active": "1",
}


def key() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def staff_id(app, town_id) -> int:
    with app.app_context():
        svc = AccountService(get_db().session(), lambda: get_vault(app))
        user = svc.signup("staff@example.com", PASSWORD, verified=True)
        grant_town_role(user, town_id, STAFF)
        get_db().session.commit()
        return user.id


def _counts(app) -> tuple[int, ...]:
    with app.app_context():
        s = get_db().session
        return tuple(
            s.scalar(sa.select(sa.func.count()).select_from(m))
            for m in (TownProgramme, PointsSettingChange, OutboxTx, AuditLog)
        )


def _ctx(app, user_id, town_id):
    s = get_db().session
    return s.get(User, user_id), s.get(Town, town_id)


def test_staff_create_a_programme_on_chain_queued_then_confirmed(
    app, w3, deployed, town_id, staff_id
):
    with app.app_context():
        user, town = _ctx(app, staff_id, town_id)
        svc = town_settings_service()
        change = svc.create_programme(user, town, THANKS, key())
        pid = change.programme_id
        assert pid == 5  # after the four presets the town was seeded with
        view = svc.programme(user, town, pid)
        assert view.status == QUEUED and view.row.cap_per_person_day == 300
        assert view.row.cap_per_town_day is None and view.row.welcome_amount is None
        tx = get_db().session.get(OutboxTx, change.outbox_tx_id)
        assert (tx.function, tx.sender_kind) == ("setProgramme", "town_settings")
        assert tx.sender_address == role_address("town_settings")
        audit = (
            get_db()
            .session.scalars(
                sa.select(AuditLog).where(AuditLog.action == "points.programme_create")
            )
            .one()
        )
        assert audit.actor == f"user:{staff_id}" and audit.details["programme_id"] == pid
    run_chain(app, w3)
    points = w3.eth.contract(
        address=deployed.address("towns.sarabetsu.RegionPoints"), abi=artifact("RegionPoints").abi
    )
    assert points.functions.programme(pid).call() == [90, True]
    with app.app_context():
        user, town = _ctx(app, staff_id, town_id)
        assert town_settings_service().programme(user, town, pid).status == CONFIRMED
        # closing it goes on chain again; a rename alone does not
        svc = town_settings_service()
        closed = svc.update_programme(user, town, pid, {**THANKS, "active": "0"}, key())
        renamed = svc.update_programme(
            user, town, pid, {**THANKS, "active": "0", "name_en": "Thanks"}, key()
        )
        assert closed.outbox_tx_id is not None and renamed.outbox_tx_id is None
        assert svc.change_status(renamed) == SAVED
        assert svc.programme(user, town, pid).status == QUEUED
    run_chain(app, w3)
    assert points.functions.programme(pid).call() == [90, False]


BAD = [
    ("kind", {**THANKS, "kind": "lottery"}),
    ("kind", {**THANKS, "kind": "welcome", "welcome_amount": "500"}),
    ("name_ja", {**THANKS, "name_ja": " "}),
    ("name_en", {**THANKS, "name_en": "x" * 121}),
    ("cap_per_person_day", {**THANKS, "cap_per_person_day": "-5"}),
    ("cap_per_town_day", {**THANKS, "cap_per_town_day": str(10**12)}),
    ("cap_per_town_day", {**THANKS, "cap_per_town_day": "1.5"}),
    ("expiry_days", {**THANKS, "expiry_days": "45"}),  # not a preset
    ("expiry_days", {**THANKS, "expiry_days": "4000"}),
    ("expiry_days", {**THANKS, "kind": "purchase premium", "expiry_days": "365"}),  # 6 months
    ("expiry_days", {**THANKS, "kind": "purchase premium", "expiry_days": "0"}),  # never
]


@pytest.mark.parametrize(("field", "form"), BAD)
def test_bad_input_is_refused_and_writes_nothing(app, town_id, staff_id, field, form):
    with app.app_context():
        user, town = _ctx(app, staff_id, town_id)
        town_settings_service().ensure_seeded(town)
    before = _counts(app)
    with app.app_context():
        user, town = _ctx(app, staff_id, town_id)
        with pytest.raises(InvalidInput) as err:
            town_settings_service().create_programme(user, town, form, key())
        assert err.value.details["field"] == field
    assert _counts(app) == before


@pytest.mark.parametrize(
    ("field", "value"),
    [("welcome_amount", "-1"), ("welcome_amount", "0"), ("welcome_amount", str(10**9))],
)
def test_a_bad_welcome_amount_is_refused(app, town_id, staff_id, field, value):
    with app.app_context():
        user, town = _ctx(app, staff_id, town_id)
        town_settings_service().ensure_seeded(town)
    before = _counts(app)
    with app.app_context():
        user, town = _ctx(app, staff_id, town_id)
        form = {"name_ja": "ようこそ", "name_en": "Welcome", "expiry_days": "180", "active": "1"}
        with pytest.raises(InvalidInput):
            town_settings_service().update_programme(user, town, 1, {**form, field: value}, key())
    assert _counts(app) == before


def test_a_paid_kind_is_offered_only_expiries_within_six_months():
    assert all(1 <= d <= MAX_PAID_DAYS for d in expiry_choices(paid=True))
    assert 0 in expiry_choices(paid=False) and 365 in expiry_choices(paid=False)


def test_only_staff_may_read_or_change_settings(app, town_id, user_id):
    with app.app_context():
        user, town = _ctx(app, user_id, town_id)
        svc = town_settings_service()
        for call in (
            lambda: svc.programmes(user, town),
            lambda: svc.create_programme(user, town, THANKS, key()),
            lambda: svc.set_transfer_policy(user, town, MERCHANTS_ONLY, key()),
            lambda: svc.transfer_policy(user, town),
        ):
            with pytest.raises(Forbidden):
                call()
    assert _counts(app) == (0, 0, 0, 0)


def test_a_replayed_form_changes_once(app, town_id, staff_id):
    k = key()
    with app.app_context():
        user, town = _ctx(app, staff_id, town_id)
        first = town_settings_service().create_programme(user, town, THANKS, k)
        again = town_settings_service().create_programme(user, town, THANKS, k)
        assert first.id == again.id
        p1 = town_settings_service().set_transfer_policy(user, town, MERCHANTS_ONLY, k + "p")
        p2 = town_settings_service().set_transfer_policy(user, town, MERCHANTS_ONLY, k + "p")
        assert p1.id == p2.id
    assert _counts(app) == (5, 2, 2, 2)


def test_transfer_policy_queued_then_confirmed_and_read_from_the_chain(
    app, w3, deployed, town_id, staff_id
):
    with app.app_context():
        user, town = _ctx(app, staff_id, town_id)
        svc = town_settings_service()
        assert svc.transfer_policy(user, town).on_chain == "open"
        with pytest.raises(InvalidInput):
            svc.set_transfer_policy(user, town, "closed", key())
        svc.set_transfer_policy(user, town, MERCHANTS_ONLY, key())
        view = svc.transfer_policy(user, town)
        assert (view.on_chain, view.status, view.shown) == ("open", QUEUED, MERCHANTS_ONLY)
    run_chain(app, w3)
    points = w3.eth.contract(
        address=deployed.address("towns.sarabetsu.RegionPoints"), abi=artifact("RegionPoints").abi
    )
    assert points.functions.transferPolicy().call() == 1
    with app.app_context():
        user, town = _ctx(app, staff_id, town_id)
        view = town_settings_service().transfer_policy(user, town)
        assert (view.on_chain, view.status) == (MERCHANTS_ONLY, CONFIRMED)


def test_the_welcome_grant_reads_the_town_row(app, town_id, staff_id, user_id):
    with app.app_context():
        user, town = _ctx(app, staff_id, town_id)
        svc = town_settings_service()
        form = {"name_ja": "ようこそ", "name_en": "Welcome", "expiry_days": "180", "active": "1"}
        svc.update_programme(user, town, 1, {**form, "welcome_amount": "3000"}, key())
        fan, town = _ctx(app, user_id, town_id)
        grant = points_service().grant_welcome_points(fan, town)
        assert int(grant.amount) == 3000
        # a closed programme gives nothing
        svc.update_programme(
            user, town, 1, {**form, "welcome_amount": "3000", "active": "0"}, key()
        )
        with pytest.raises(ProgrammeInactive):
            points_service().grant(fan, town, WELCOME, key="again")
        assert get_db().session.scalar(sa.select(sa.func.count()).select_from(PointsGrant)) == 1


def test_a_change_the_chain_refused_shows_failed_and_saving_again_retries_it(
    app, town_id, staff_id
):
    with app.app_context():
        user, town = _ctx(app, staff_id, town_id)
        svc = town_settings_service()
        change = svc.create_programme(user, town, THANKS, key())
        tx = get_db().session.get(OutboxTx, change.outbox_tx_id)
        tx.state = "failed"  # e.g. the estimate reverted: the key had lost SETTINGS_ROLE
        get_db().session.commit()
        assert svc.programme(user, town, change.programme_id).status == FAILED
        again = svc.update_programme(user, town, change.programme_id, THANKS, key())
        assert again.outbox_tx_id is not None and again.outbox_tx_id != change.outbox_tx_id
        assert svc.programme(user, town, change.programme_id).status == QUEUED
        # once it is on its way, the same values again are an off-chain save
        same = svc.update_programme(user, town, change.programme_id, THANKS, key())
        assert same.outbox_tx_id is None
