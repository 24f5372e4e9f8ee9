"""DAO pages (server-rendered forms) and the demo data: bilingual, errors shown in the page,
staff-only actions refused with nothing changed."""

from __future__ import annotations

import re
import uuid

from flask import Flask

from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.dao.demo import FESTIVAL, TREASURY_FUNDING, load_demo
from backend.dao.models import DaoProposal
from backend.regions.models import Town
from tests.dao.conftest import SLUG, counts, make_staff, settle, signup


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m
    return m.group(1)


def test_staff_form_creates_a_proposal_and_shows_errors(manual_outbox, town, dao_chain):
    app = manual_outbox
    dao_chain.fund_treasury(50_000)
    api, uid, _ = signup(app)
    client = api.client
    # Not staff yet: the form is refused.
    assert client.get(f"/towns/{SLUG}/dao/new").status_code == 403
    make_staff(app, town, uid)
    html = client.get(f"/towns/{SLUG}/dao/new").get_data(as_text=True)
    assert 'for="recipient"' in html and 'for="amount"' in html
    key = re.search(r'name="idempotency_key" value="([^"]+)"', html).group(1)
    form = {
        "csrf_token": _csrf(html),
        "idempotency_key": key,
        "title_en": "Snow festival lanterns",
        "chamber": "card",
        "token": "yen",
        "amount": "abc",
        "recipient": "0x" + "ab" * 20,
    }
    before = counts(app)
    resp = client.post(f"/towns/{SLUG}/dao/new", data=form, headers={"Accept-Language": "en"})
    assert resp.status_code == 400
    assert "Enter a whole amount greater than zero." in resp.get_data(as_text=True)
    assert counts(app) == before
    resp = client.post(f"/towns/{SLUG}/dao/new", data={**form, "amount": "9000"})
    assert resp.status_code == 302
    page = client.get(resp.headers["Location"], headers={"Accept-Language": "en"})
    text = page.get_data(as_text=True)
    assert "Snow festival lanterns" in text and "9,000 test yen" in text
    assert 'data-state="submitting"' in text
    settle(app, dao_chain)
    listing = client.get(f"/towns/{SLUG}/dao").get_data(as_text=True)
    assert "Snow festival lanterns" in listing


def test_vote_form_refusals_render_in_the_page(manual_outbox, town, dao_chain):
    app = manual_outbox
    dao_chain.fund_treasury(50_000)
    staff, uid, _ = signup(app)
    make_staff(app, town, uid)
    resp = staff.post(
        f"/api/towns/{SLUG}/dao/proposals",
        {
            "recipient": "0x" + "cd" * 20,
            "amount": 10,
            "title_ja": "花火",
            "idempotency_key": uuid.uuid4().hex,
        },
    )
    pid = resp.get_json()["proposal"]["id"]
    settle(app, dao_chain)
    dao_chain.mine(2)
    settle(app, dao_chain)  # pages follow the indexer (issue 16 §1)
    member, _, _ = signup(app)
    html = member.client.get(
        f"/towns/{SLUG}/dao/proposals/{pid}", headers={"Accept-Language": "ja"}
    ).get_data(as_text=True)
    assert "基準時点" in html and "アンバサダーカードを持っていません" in html
    before = counts(app)
    resp = member.client.post(
        f"/towns/{SLUG}/dao/proposals/{pid}/vote",
        data={"csrf_token": _csrf(html), "support": "for"},
    )
    assert resp.status_code == 403
    assert "この提案には投票できません" in resp.get_data(as_text=True)
    resp = member.client.post(
        f"/towns/{SLUG}/dao/proposals/{pid}/queue", data={"csrf_token": _csrf(html)}
    )
    assert resp.status_code == 403
    # Without the CSRF token nothing is done either.
    assert (
        member.client.post(
            f"/towns/{SLUG}/dao/proposals/{pid}/vote", data={"support": "for"}
        ).status_code
        == 400
    )
    assert counts(app) == before
    # Signed out: the page asks to sign in.
    anon = app.test_client().get(f"/towns/{SLUG}/dao/proposals/{pid}?lang=en")
    assert anon.status_code == 200


def test_demo_funds_the_treasury_and_opens_the_festival_proposal(
    manual_outbox: Flask, town: Town, dao_chain
):
    app = manual_outbox
    with app.app_context():
        t = get_db().session.get(Town, town.id)
        load_demo(t)
        load_demo(t)  # idempotent
        s = get_db().session
        assert s.query(DaoProposal).count() == 1
        assert s.query(OutboxTx).count() == 2
        assert s.query(AuditLog).filter(AuditLog.action == "dao.treasury_fund").count() == 1
    before = dao_chain.yen_balance(dao_chain.treasury)
    settle(app, dao_chain)
    assert dao_chain.yen_balance(dao_chain.treasury) == before + TREASURY_FUNDING
    dao_chain.mine(2)
    settle(app, dao_chain)  # pages follow the indexer (issue 16 §1)
    with app.app_context():
        p = get_db().session.query(DaoProposal).one()
        assert p.title_en == FESTIVAL["title_en"] and int(p.amount) == 300_000
        assert p.snapshot_block is not None
    html = app.test_client().get(f"/towns/{SLUG}/dao", headers={"Accept-Language": "en"})
    assert "Next year&#39;s harvest festival budget" in html.get_data(as_text=True)
    r = app.test_client().get(f"/api/towns/{SLUG}/dao/proposals/{p.id}/results").get_json()
    assert r["state"] == "active"


def test_poll_form_and_vote_form_render_errors_in_the_page(manual_outbox, town, dao_chain):
    from tests.dao.conftest import poll_counts

    app = manual_outbox
    api, uid, _ = signup(app)
    client = api.client
    assert client.get(f"/towns/{SLUG}/dao/polls/new").status_code == 403
    make_staff(app, town, uid)
    html = client.get(f"/towns/{SLUG}/dao/polls/new").get_data(as_text=True)
    assert 'for="option_ja_0"' in html and 'for="duration_blocks"' in html
    key = re.search(r'name="idempotency_key" value="([^"]+)"', html).group(1)
    form = {
        "csrf_token": _csrf(html),
        "idempotency_key": key,
        "title_en": "Mascot name",
        "chamber": "card",
        "duration_blocks": "100",
        "option_en_0": "Sara",
    }
    before = poll_counts(app)
    resp = client.post(f"/towns/{SLUG}/dao/polls/new", data=form, headers={"Accept-Language": "en"})
    assert resp.status_code == 400
    assert "Give the poll 2 to 10 options." in resp.get_data(as_text=True)
    assert poll_counts(app) == before
    resp = client.post(f"/towns/{SLUG}/dao/polls/new", data={**form, "option_ja_1": "ベツ"})
    assert resp.status_code == 302
    settle(app, dao_chain)
    url = resp.headers["Location"]
    page = client.get(url, headers={"Accept-Language": "ja"}).get_data(as_text=True)
    assert "アンケート投票" in page and "ベツ" in page
    assert "カードを持っていません" in page  # staff hold no card
    before = poll_counts(app)
    resp = client.post(url + "/vote", data={"csrf_token": _csrf(page), "option": "1"})
    assert resp.status_code == 403 and "この投票には参加できません" in resp.get_data(as_text=True)
    resp = client.post(url + "/vote", data={"csrf_token": _csrf(page), "option": "9"})
    assert resp.status_code == 400
    assert poll_counts(app) == before
    listing = app.test_client().get(f"/towns/{SLUG}/dao/polls?lang=en").get_data(as_text=True)
    assert "Mascot name" in listing
