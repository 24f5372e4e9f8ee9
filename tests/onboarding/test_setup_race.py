"""The operator's form sent several times at once (a double click, a retrying proxy) starts one
setup, on PostgreSQL and SQLite: the UNIQUE slug and idempotency key decide, every caller gets
the one setup, and its first steps are queued once. Another form for the same slug is a 409."""

from __future__ import annotations

import shutil

import pytest
import sqlalchemy as sa

from backend.accounts.models import User
from backend.chain.api import outbox_service
from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.core.errors import Conflict
from backend.onboarding.models import TownSetup, TownSetupStep
from backend.onboarding.services import parse_request, town_setup_service
from tests.concurrency import n_at_once
from tests.onboarding.conftest import signup

FORM = {"slug": "niseko", "name_ja": "ニセコ町", "name_en": "Niseko", "symbol": "NSK"}


@pytest.fixture
def app(make_app, deployed, deployments_dir, tmp_path, any_db_url):
    own = tmp_path / "deployments"
    shutil.copytree(deployments_dir, own)
    app = make_app(deployments_dir=own, database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False  # nothing is sent: only the rows count here
    return app


def _start_at_once(app, user_id: int, key: str, n: int = 6) -> list[object]:
    def start(_i: int) -> int:
        svc = town_setup_service()
        setup = svc.start(svc.session.get(User, user_id), parse_request(FORM), idempotency_key=key)
        return setup.id

    return n_at_once(app, n, start)


def test_one_form_sent_many_times_at_once_starts_one_setup(app, operator_id):
    results = _start_at_once(app, operator_id, "form-1")
    assert all(isinstance(r, int) for r in results), results
    assert len(set(results)) == 1
    with app.app_context():
        s = get_db().session
        assert s.scalar(sa.select(sa.func.count()).select_from(TownSetup)) == 1
        steps = s.scalar(sa.select(sa.func.count()).select_from(TownSetupStep))
        queued = list(s.scalars(sa.select(OutboxTx.idempotency_key)))
        assert steps > 40
        # The steps that need nothing (the first contracts) are queued, each once.
        assert sorted(queued) == sorted(set(queued))
        assert "town-setup:niseko:RegionPoints" in queued
        # Another form (another key) for the same slug: 409, nothing written.
        svc = town_setup_service()
        with pytest.raises(Conflict):
            svc.start(s.get(User, operator_id), parse_request(FORM), idempotency_key="form-2")
        assert s.scalar(sa.select(sa.func.count()).select_from(TownSetup)) == 1
        assert s.scalar(sa.select(sa.func.count()).select_from(OutboxTx)) == len(queued)


def test_a_non_operator_cannot_start_a_setup(app):
    user_id = signup(app, "fan@example.com")
    with app.app_context():
        svc = town_setup_service()
        from backend.core.errors import Forbidden

        with pytest.raises(Forbidden):
            svc.start(svc.session.get(User, user_id), parse_request(FORM))
        assert svc.session.scalar(sa.select(sa.func.count()).select_from(TownSetup)) == 0


def test_a_step_that_cannot_be_queued_fails_with_its_reason(
    make_app, deployed, deployments_dir, tmp_path, operator_id_for
):
    """The worker has no founder key: the first step fails, named, and nothing is queued."""
    from tests.chain_admin import ROLE_PRIVATE_KEYS

    own = tmp_path / "deployments-2"
    shutil.copytree(deployments_dir, own)
    keys = ",".join(p for p in ROLE_PRIVATE_KEYS.split(",") if not p.startswith("founder="))
    app = make_app(deployments_dir=own, role_private_keys=keys)
    with app.app_context():
        outbox_service().auto_dispatch = False
        svc = town_setup_service()
        user = svc.session.get(User, operator_id_for(app))
        setup = svc.start(user, parse_request(FORM))
        assert setup.state == "failed"
        view = svc.view(user, "niseko")
        failed = [s for s in view.steps if s.state == "failed"]
        assert len(failed) == 1 and "founder" in (failed[0].error or "")
        assert svc.session.scalar(sa.select(sa.func.count()).select_from(OutboxTx)) == 0


def test_a_setup_advanced_many_times_at_once_goes_live_once(app, operator_id):
    """Its last step confirmed, the setup is advanced by several workers at once (the beat's
    task and the command, two workers): one makes the town and invites its admin, the others
    find it live. On SQLite FOR UPDATE does nothing: two went live and mailed two invites, or
    failed on the town's UNIQUE slug."""
    from backend.core.models import AuditLog
    from backend.onboarding.models import TownInvite
    from backend.onboarding.services import TownSetupService
    from backend.regions.models import Town

    with app.app_context():
        svc = town_setup_service()
        form = {**FORM, "admin_email": "mayor@niseko.example"}
        setup = svc.start(svc.session.get(User, operator_id), parse_request(form))
        setup_id = setup.id
        for i, step in enumerate(setup.steps):  # as if the chain confirmed every step
            step.state, step.address = "confirmed", "0x" + f"{i + 1:040x}"
        svc.session.commit()
    mails: list[str] = []

    def advance(_i: int) -> str:
        svc = TownSetupService(
            get_db().session(),
            app.extensions["settings"],
            outbox_service(),
            send=lambda _settings, to, *_a, **_k: mails.append(to),
        )
        return svc.advance(setup_id).state

    results = n_at_once(app, 6, advance)
    assert results == ["live"] * 6, results
    with app.app_context():
        s = get_db().session
        assert s.scalar(sa.select(sa.func.count()).select_from(Town)) >= 1
        invites = s.scalar(sa.select(sa.func.count()).select_from(TownInvite))
        live = s.scalar(
            sa.select(sa.func.count()).select_from(AuditLog).where(AuditLog.action == "town.live")
        )
    assert (invites, live, mails) == (1, 1, ["mayor@niseko.example"])


def test_a_setups_progress_is_shown_to_operators_only_by_the_service(app, operator_id):
    """The service checks who asks (not only the operator pages): its steps name the chain's
    addresses and errors."""
    from backend.core.errors import Forbidden

    fan_id = signup(app, "fan@example.com")
    with app.app_context():
        svc = town_setup_service()
        svc.start(svc.session.get(User, operator_id), parse_request(FORM))
        assert svc.view(svc.session.get(User, operator_id), "niseko").slug == "niseko"
        assert svc.view(None, "niseko", command_line=True).total > 40
        for who in (None, svc.session.get(User, fan_id)):
            with pytest.raises(Forbidden):
                svc.view(who, "niseko")
