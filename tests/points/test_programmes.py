"""Programme kinds have one registry (backend/points/programmes.py): the points page labels a
lot from it, and the platform's grants and the demo town's deployed programmes follow it."""

from __future__ import annotations

import datetime as dt

from flask import render_template

from backend.points import programmes
from backend.points.programmes import PRESETS, WELCOME, Programme, by_reason, granted_on
from backend.points.services import Lot, PointsSummary
from backend.regions.models import Town


def test_every_kind_has_its_own_id_name_reason_and_label():
    for attr in ("programme_id", "name", "reason", "label"):
        values = [getattr(p, attr) for p in PRESETS]
        assert all(values) and len(set(values)) == len(values), attr
    assert by_reason("welcome") is WELCOME and by_reason("") is None
    assert by_reason("a reason no kind uses") is None
    assert granted_on(programmes.EMAIL_VERIFIED) == (WELCOME,)


def _page(app, lots: list[Lot], lang: str) -> str:
    town = Town(id=1, slug="sarabetsu", name_ja="更別村", name_en="Sarabetsu")
    summary = PointsSummary(town, "0x" + "11" * 20, 0, 0, 0, lots=lots)
    with app.test_request_context(headers={"Accept-Language": lang}):
        return render_template("points/index.html", summaries=[summary], charges=[])


def _lot(reason: str) -> Lot:
    at = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    return Lot(None, reason, 100, 100, at, at + dt.timedelta(days=30))


def test_a_kind_added_to_the_registry_labels_its_lots(app, monkeypatch):
    festival = Programme(9, 30, name="festival", reason="festival", label="Festival points")
    monkeypatch.setattr(programmes, "PRESETS", (*PRESETS, festival))
    lots = [_lot(r) for r in ("welcome", "thanks", "festival", "handmade", "")]

    page = _page(app, lots, "ja")
    for shown in ("ようこそポイント", "ありがとうポイント", "Festival points", "handmade"):
        assert f"<td>{shown}</td>" in page
    assert "<td>受け取った支払い</td>" in page  # no reason: a payment received

    page = _page(app, lots, "en")
    for shown in ("Welcome points", "Thank-you points", "Festival points", "handmade"):
        assert f"<td>{shown}</td>" in page
    monkeypatch.setattr(programmes, "PRESETS", PRESETS)
    assert "<td>festival</td>" in _page(app, [_lot("festival")], "en")  # not a kind: as it is
