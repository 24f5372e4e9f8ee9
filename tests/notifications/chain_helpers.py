"""Helpers of the on-chain notification tests: run the notification handlers again over events
the indexer already stored (as a handler run twice would), and read a page's notifications."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from flask import Flask

from backend.chain.indexer.events import _artifact_by_address, _event_from_row, _set_subjects
from backend.chain.indexer_models import ChainBlock, ChainEventRecord
from backend.core.db import get_db
from backend.notifications import handlers

ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def run_handlers_again(app: Flask) -> None:
    """Apply every notification handler once more to every stored event (one transaction)."""
    with app.app_context():
        s = get_db().session
        rows = list(
            s.scalars(
                sa.select(ChainEventRecord).order_by(
                    ChainEventRecord.block_number, ChainEventRecord.log_index
                )
            )
        )
        chain_id = rows[0].chain_id
        names = _artifact_by_address(s, chain_id)
        times = dict(
            s.execute(
                sa.select(ChainBlock.number, ChainBlock.block_time).where(
                    ChainBlock.chain_id == chain_id
                )
            ).all()
        )
        events = [_event_from_row(r, names, block_time=times.get(r.block_number)) for r in rows]
        _set_subjects(s, events)
        for h in handlers.HANDLERS:
            mine = [ev for ev in events if h.matches(ev)]
            if mine:
                h.apply(s, mine)
        s.commit()
        s.remove()


def listed(client: Any, lang: str = "en") -> tuple[list[dict[str, str]], str]:
    """(notifications as the list page shows them, the page's HTML) for a signed-in client."""
    resp = client.get("/me/notifications", headers={"Accept-Language": lang})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    html = resp.get_data(as_text=True)
    items = [
        {"kind": kind, "unread": unread, "text": re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))}
        for kind, unread, body in re.findall(
            r'data-testid="notification" data-kind="([a-z_]+)" data-id="\d+" '
            r'data-unread="(true|false)">(.*?)</li>',
            html,
            flags=re.S,
        )
    ]
    return items, html
