"""The printed matter itself (backend/merchants/card_print.py), read back from the PDF: the
balance slip gives each lot's last day and the printed-at time in Japan time; a long name
still fits the card; the card builder has no way to take a PIN."""

from __future__ import annotations

import datetime as dt
import inspect
import io

import pypdf
import pypdfium2
import zxingcpp

from backend.merchants import card_print


def _text(body: bytes) -> str:
    return "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(body)).pages)


def test_the_balance_slip_lists_each_lot_with_its_last_day_and_the_time_in_japan():
    printed_at = dt.datetime(2026, 12, 4, 22, 30, tzinfo=dt.UTC)  # 07:30 on the 5th in Japan
    lots = [
        card_print.SlipLot(1000, dt.date(2027, 3, 31)),
        card_print.SlipLot(250, dt.date(2027, 12, 31)),
        card_print.SlipLot(40, None),
    ]
    text = _text(
        card_print.balance_slip_pdf("更別村", "山田 花子", "CAAAA", 1290, lots, printed_at)
    )
    assert "更別村" in text and "山田 花子 様" in text and "1,290 pt" in text
    assert "2027年3月31日まで" in text and "1,000 pt" in text
    assert "2027年12月31日まで" in text and "250 pt" in text
    assert "期限なし" in text and "40 pt" in text
    assert "2026年12月5日 07:30(日本時間)" in text
    empty = _text(card_print.balance_slip_pdf("更別村", "山田 花子", "CAAAA", 0, [], printed_at))
    assert "0 pt" in empty and "ポイントはありません" in empty


def test_a_long_name_still_fits_and_the_qr_still_reads():
    name = "寿限無寿限無五劫の擦り切れ海砂利水魚の水行末雲来末風来末"
    body = card_print.card_pdf("とても長い名前の町役場の住民課", name, "CABCDEFGHJK")
    text = _text(body)
    assert name in text.replace("\n", "") and "CABCDEFGHJK" in text
    # Cut into lines that each fit left of the QR (not shrunk below 9 pt).
    canvas = card_print.Canvas(io.BytesIO(), pagesize=card_print.CARD_SIZE)
    width = card_print.CARD_SIZE[0] - 32 * card_print.mm - 12 * card_print.mm
    lines = card_print._wrap(canvas, name + " 様", card_print.JA_FONT, 9, width)
    assert len(lines) == 3 and "".join(lines) == name + " 様"
    assert all(canvas.stringWidth(li, card_print.JA_FONT, 9) <= width for li in lines)
    image = pypdfium2.PdfDocument(body)[0].render(scale=6).to_pil()
    assert [r.text for r in zxingcpp.read_barcodes(image)] == ["CABCDEFGHJK"]


def test_the_card_builder_takes_no_pin():
    assert list(inspect.signature(card_print.card_pdf).parameters) == [
        "town_name",
        "resident_name",
        "card_code",
    ]
