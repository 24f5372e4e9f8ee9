"""A poll and a proposal opened in a town, on real anvil: everyone with an account who holds the
chamber's card is told once, in the app and by mail; someone without a card is not, nor is
someone who got a card after it opened, however often the handlers run."""

from __future__ import annotations

import re

import sqlalchemy as sa

from backend.accounts.models import User
from backend.core.db import get_db, utcnow
from tests.dao.conftest import make_staff, signup
from tests.dao.test_dao_api import open_proposal
from tests.dao.test_wallet_and_polls_api import open_poll
from tests.notifications.chain_helpers import ADDRESS, listed, run_handlers_again
from tests.notifications.conftest import send_mails, stored


def _verify(app, *user_ids: int) -> None:
    with app.app_context():
        s = get_db().session
        for user in s.scalars(sa.select(User).where(User.id.in_(user_ids))):
            user.email_verified_at = utcnow()
        s.commit()


def test_a_poll_and_a_proposal_tell_the_card_holders_once(manual_outbox, town, dao_chain, mailbox):
    app = manual_outbox
    staff, staff_id, _ = signup(app, "staff@example.com")
    make_staff(app, town, staff_id)
    holder, holder_id, holder_address = signup(app, "holder@example.com")
    _, late_id, late_address = signup(app, "late@example.com")
    _verify(app, staff_id, holder_id, late_id)
    dao_chain.mint_cards(holder_address, 1)

    poll_id = open_poll(app, staff, dao_chain)
    rows = stored(app)
    assert [
        (r["user_id"], r["kind"], r["params"]["what"], r["params"]["row_id"]) for r in rows
    ] == [(holder_id, "vote_opened", "poll", poll_id)]
    assert rows[0]["key"] == f"vote_opened:poll:{poll_id}"
    before = len(mailbox.mails)  # the sign-ups' verification mails came first
    assert send_mails(app) == {"sent": 1}
    (mail,) = mailbox.mails[before:]
    assert mail.to == ["holder@example.com"]
    assert mail.subject == "更別村で新しいアンケート"
    assert "「特産品ラベルのデザイン」の投票が始まりました。" in mail.body
    assert f"/towns/sarabetsu/dao/polls/{poll_id}" in mail.body and not ADDRESS.search(mail.body)

    dao_chain.mint_cards(late_address, 1)  # a card bought after the poll opened
    dao_chain.fund_treasury(100_000)
    proposal_id = open_proposal(app, staff, dao_chain)
    rows = stored(app)
    assert sorted((r["user_id"], r["params"]["what"]) for r in rows) == sorted(
        [(holder_id, "poll"), (holder_id, "proposal"), (late_id, "proposal")]
    )
    run_handlers_again(app)  # PollCreated and ProposalCreated again: the same people only
    assert len(stored(app)) == 3
    assert send_mails(app) == {"sent": 2}
    assert len(mailbox.mails) == before + 3

    items, html = listed(holder.client, "en")
    assert [(i["kind"], i["unread"]) for i in items] == [
        ("vote_opened", "true"),
        ("vote_opened", "true"),
    ]
    assert "New proposal in Sarabetsu" in items[0]["text"]
    assert "“Harvest festival budget” is open for votes." in items[0]["text"]
    assert "New poll in Sarabetsu" in items[1]["text"]
    assert f'href="/towns/sarabetsu/dao/proposals/{proposal_id}"' in html
    assert not ADDRESS.search(html)
    assert listed(staff.client)[0] == []  # staff without a card are not members of the chamber
    assert re.search(r'data-testid="notifications-count"[^>]*>2<', html)
