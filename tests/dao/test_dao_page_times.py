"""DAO pages say when, not which block (issue 15 §5 and §7 "DAO pages"): the list shows each
proposal's status and when voting closes, the proposal page gives the times in Japan time with
the block numbers only under "details", staff see "execute" only once the timelock allows it
(and until then when it will), and a member who voted is told what they chose."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from tests.dao.conftest import SLUG, make_staff, settle, signup
from tests.dao.test_dao_api import BASE, open_proposal

JST = dt.timezone(dt.timedelta(hours=9))
EN = {"Accept-Language": "en"}


@pytest.fixture
def staff(manual_outbox, town):
    api, uid, _addr = signup(manual_outbox)
    make_staff(manual_outbox, town, uid)
    return api


def _outside_details(html: str) -> str:
    return re.sub(r"<details.*?</details>", "", html, flags=re.S)


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_list_and_page_show_status_and_closing_time_in_japan_time(
    manual_outbox, town, staff, dao_chain, w3
):
    app = manual_outbox
    dao_chain.fund_treasury(100_000)
    pid = open_proposal(app, staff, dao_chain)

    listing = staff.client.get(f"/towns/{SLUG}/dao", headers=EN).get_data(as_text=True)
    assert 'data-state="active"' in listing and "Voting open" in listing
    assert re.search(r"closes at about <time[^>]*>\d{4}-\d\d-\d\d \d\d:\d\d JST</time>", listing)

    page = staff.client.get(f"{BASE.replace('/api', '')}/proposals/{pid}", headers=EN)
    html = page.get_data(as_text=True)
    closes = re.search(r'id="dao-closes" data-closes="([^"]+)"', html).group(1)
    # The closing time is the deadline block as a time: after the chain's now, shown in JST.
    head = w3.eth.get_block("latest")
    closes_at = dt.datetime.fromisoformat(closes)
    assert closes_at > dt.datetime.fromtimestamp(head["timestamp"], tz=dt.UTC)
    shown = closes_at.astimezone(JST).strftime("%Y-%m-%d %H:%M")
    assert re.search(f"Voting closes at about <time[^>]*>{shown} JST</time>.", html)
    outside = _outside_details(html)
    assert "block" not in outside.lower().replace("blockchain", "")
    ja = staff.client.get(f"/towns/{SLUG}/dao/proposals/{pid}", headers={"Accept-Language": "ja"})
    assert "（日本時間）" in ja.get_data(as_text=True)
    assert "ブロック" not in _outside_details(ja.get_data(as_text=True)).replace(
        "ブロックチェーン", ""
    )


def test_execute_shows_only_when_the_timelock_allows_and_says_when(
    manual_outbox, town, staff, dao_chain, w3
):
    app = manual_outbox
    dao_chain.fund_treasury(100_000)
    member, _uid, addr = signup(app)
    dao_chain.mint_cards(addr, 2)  # enough for the quorum
    pid = open_proposal(app, staff, dao_chain)
    assert member.post(f"{BASE}/proposals/{pid}/votes", {"support": "for"}).status_code == 202
    settle(app, dao_chain)
    dao_chain.mine(301)
    assert staff.post(f"{BASE}/proposals/{pid}/queue").status_code == 202
    settle(app, dao_chain)

    url = f"/towns/{SLUG}/dao/proposals/{pid}"
    html = staff.client.get(url, headers=EN).get_data(as_text=True)
    assert 'data-action="execute"' not in html
    wait = re.search(r'data-testid="execute-wait">(.+?)</p>', html).group(1)
    assert "can be executed after" in wait and " JST" in wait

    dao_chain.increase_time(61)
    settle(app, dao_chain)  # pages follow the indexer (issue 16 §1)
    html = staff.client.get(url, headers=EN).get_data(as_text=True)
    assert 'data-action="execute"' in html and 'data-testid="execute-wait"' not in html
    resp = staff.client.post(f"{url}/execute", data={"csrf_token": _csrf(html)})
    assert resp.status_code == 302


def test_a_member_who_voted_is_told_what_they_chose(manual_outbox, town, staff, dao_chain):
    app = manual_outbox
    dao_chain.fund_treasury(100_000)
    member, _uid, addr = signup(app)
    dao_chain.mint_cards(addr, 1)
    pid = open_proposal(app, staff, dao_chain)
    url = f"/towns/{SLUG}/dao/proposals/{pid}"
    html = member.client.get(url, headers=EN).get_data(as_text=True)
    assert 'data-testid="you-voted"' not in html
    form = {"csrf_token": _csrf(html), "support": "against", "confirmed": "yes"}
    resp = member.client.post(f"{url}/vote", data=form)
    assert resp.status_code == 302
    for lang, text in (("en", "Your vote: Against"), ("ja", "あなたの投票: 反対")):
        page = member.client.get(url, headers={"Accept-Language": lang}).get_data(as_text=True)
        assert text in page
