"""A vote has a confirmation step (issue 15 §7): the proposal's or poll's form shows the choice
in words on a page of its own, with "confirm" (a POST with the CSRF token) and "back"; nothing
is signed or sent before the confirmed POST. Afterwards the page says what was chosen and when,
in Japanese and English. Refusals show the page with the message and change nothing."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from tests.dao.conftest import SLUG, make_staff, poll_counts, settle, signup
from tests.dao.test_dao_api import open_proposal

EN = {"Accept-Language": "en"}
JA = {"Accept-Language": "ja"}


@pytest.fixture
def staff(manual_outbox, town):
    api, uid, _addr = signup(manual_outbox)
    make_staff(manual_outbox, town, uid)
    return api


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, html[:300]
    return m.group(1)


def _text(html: str) -> str:
    """The page's text, tags dropped (times are <time> elements inside sentences)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


def test_proposal_vote_is_confirmed_before_it_is_sent(manual_outbox, town, staff, dao_chain):
    app = manual_outbox
    dao_chain.fund_treasury(100_000)
    member, _uid, addr = signup(app)
    dao_chain.mint_cards(addr, 2)
    pid = open_proposal(app, staff, dao_chain)
    url = f"/towns/{SLUG}/dao/proposals/{pid}"
    page = member.client.get(url, headers=JA).get_data(as_text=True)
    # Step 1 is a GET form: choosing sends nothing.
    assert re.search(rf'<form method="get" action="{url}/vote"', page)
    before = poll_counts(app)

    confirm = member.client.get(f"{url}/vote?support=against", headers=JA)
    assert confirm.status_code == 200
    html = confirm.get_data(as_text=True)
    assert "投票内容の確認" in html and "投票する内容: 反対" in html
    assert "あなたの票の重みは 2 です。" in html
    assert 'name="support" value="against"' in html and 'name="confirmed" value="yes"' in html
    assert f'href="{url}"' in html  # back to the proposal, choose again
    assert poll_counts(app) == before

    en = member.client.get(f"{url}/vote?support=1", headers=EN).get_data(as_text=True)
    assert "You are voting: For" in en and "Confirm and send my vote" in en
    assert 'name="support" value="for"' in en

    # A POST without the confirmation shows the confirmation page; without CSRF it is refused.
    resp = member.client.post(f"{url}/vote", data={"csrf_token": _csrf(html), "support": "for"})
    assert resp.status_code == 200 and 'data-testid="confirm-choice"' in resp.get_data(as_text=True)
    resp = member.client.post(f"{url}/vote", data={"support": "for", "confirmed": "yes"})
    assert resp.status_code == 400
    # A choice that is not one: the proposal page with the message, nothing changed.
    bad = member.client.get(f"{url}/vote?support=maybe", headers=EN)
    assert bad.status_code == 400
    assert "Choose For, Against or Abstain." in bad.get_data(as_text=True)
    assert poll_counts(app) == before

    # Confirmed: sent, and the proposal page says what was chosen and when.
    form = {"csrf_token": _csrf(html), "support": "against", "confirmed": "yes"}
    resp = member.client.post(f"{url}/vote", data=form)
    assert resp.status_code == 302 and resp.headers["Location"] == url
    after = poll_counts(app)
    assert after["dao_votes"] == before["dao_votes"] + 1
    ja = _text(member.client.get(url, headers=JA).get_data(as_text=True))
    assert "あなたの投票: 反対" in ja
    assert re.search(r"投票日時: \d{4}年\d{1,2}月\d{1,2}日 \d\d:\d\d（日本時間）（記録中）", ja), ja
    settle(app, dao_chain)
    en_page = _text(member.client.get(url, headers=EN).get_data(as_text=True))
    assert "Your vote: Against" in en_page
    assert re.search(r"Voted at \d{4}-\d\d-\d\d \d\d:\d\d JST \(counted\)\.", en_page), en_page
    eligibility = member.client.get(f"/api/towns/{SLUG}/dao/proposals/{pid}/eligibility")
    e = eligibility.get_json()
    assert e["support"] == 0 and e["vote_state"] == "counted" and e["voted_at"]

    # Voting again: the confirmation page refuses with the reason, nothing sent.
    again = member.client.get(f"{url}/vote?support=for", headers=EN)
    assert again.status_code == 409
    assert "You already voted on this proposal." in again.get_data(as_text=True)
    assert poll_counts(app) == after


def test_signed_out_and_not_eligible_people_get_no_confirmation(
    manual_outbox, town, staff, dao_chain
):
    app = manual_outbox
    dao_chain.fund_treasury(100_000)
    pid = open_proposal(app, staff, dao_chain)
    url = f"/towns/{SLUG}/dao/proposals/{pid}"
    anon = app.test_client().get(f"{url}/vote?support=for")
    assert anon.status_code == 302 and "/login" in anon.headers["Location"]
    nobody, _uid, _addr = signup(app)
    resp = nobody.client.get(f"{url}/vote?support=for", headers=JA)
    assert resp.status_code == 403
    assert "この提案には投票できません" in resp.get_data(as_text=True)
    assert 'name="confirmed"' not in resp.get_data(as_text=True)


def _open_poll(app: Any, staff: Any, dao_chain: Any) -> int:
    resp = staff.post(
        f"/api/towns/{SLUG}/dao/polls",
        {
            "title_ja": "特産品ラベル",
            "title_en": "Label design",
            "options": [{"ja": "青", "en": "Blue"}, {"ja": "緑", "en": "Green"}],
            "duration_blocks": 100,
            "idempotency_key": uuid.uuid4().hex,
        },
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)
    settle(app, dao_chain)
    return int(resp.get_json()["poll"]["id"])


def test_poll_vote_is_confirmed_and_the_page_says_the_option(manual_outbox, town, staff, dao_chain):
    app = manual_outbox
    member, _uid, addr = signup(app)
    dao_chain.mint_cards(addr, 1)
    poll_id = _open_poll(app, staff, dao_chain)
    url = f"/towns/{SLUG}/dao/polls/{poll_id}"
    page = member.client.get(url, headers=JA).get_data(as_text=True)
    assert re.search(rf'<form method="get" action="{url}/vote"', page)
    before = poll_counts(app)
    html = member.client.get(f"{url}/vote?option=1", headers=JA).get_data(as_text=True)
    assert "投票する内容: 緑" in html and 'name="option" value="1"' in html
    assert member.client.get(f"{url}/vote?option=7", headers=EN).status_code == 400
    assert poll_counts(app) == before
    form = {"csrf_token": _csrf(html), "option": "1", "confirmed": "yes"}
    assert member.client.post(f"{url}/vote", data=form).status_code == 302
    assert poll_counts(app)["dao_poll_votes"] == before["dao_poll_votes"] + 1
    ja = _text(member.client.get(url, headers=JA).get_data(as_text=True))
    assert "あなたの投票: 緑" in ja and "投票日時: " in ja
    en = _text(member.client.get(url, headers=EN).get_data(as_text=True))
    assert "Your vote: Green" in en and "Voted at " in en
