"""Printed matter for residents served at the town hall (issue 15 §1): the card and the balance
slip, as PDF bytes made with reportlab.

Both are in Japanese with reportlab's built-in CID font HeiseiKakuGo-W5: the PDF names the font
and the viewer or printer supplies its glyphs, so no font file ships with the app and the PDFs
stay small. The card carries the town's name, the resident's name, the card's QR (the plain
card code, as the till's camera reads it: webui/static/js/qr-scan.js) and the code as text for
typed entry. The PIN is never an argument here: it cannot end up on paper by mistake.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass

from reportlab.graphics import renderPDF
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib.pagesizes import A6
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas

JA_FONT = "HeiseiKakuGo-W5"
CODE_FONT = "Courier-Bold"  # a fixed width keeps the code easy to read out and type
CARD_SIZE = (85.6 * mm, 54 * mm)  # ISO/IEC 7810 ID-1, the size of a bank card
JST = dt.timezone(dt.timedelta(hours=9), "JST")

pdfmetrics.registerFont(UnicodeCIDFont(JA_FONT))


@dataclass(frozen=True)
class SlipLot:
    """Points that expire together: `last_day` is the last JST day they can be used (None:
    they never expire)."""

    amount: int
    last_day: dt.date | None


def _canvas(buf: io.BytesIO, size: tuple[float, float], title: str) -> Canvas:
    c = Canvas(buf, pagesize=size, pageCompression=1)
    c.setTitle(title)
    c.setAuthor("furusato")
    return c


def _fit(c: Canvas, text: str, font: str, size: float, width: float) -> float:
    """The largest font size up to `size` at which `text` fits in `width` (long names)."""
    while size > 5 and c.stringWidth(text, font, size) > width:
        size -= 0.5
    return size


def _wrap(c: Canvas, text: str, font: str, size: float, width: float) -> list[str]:
    """`text` cut into lines that fit `width` at `size`, character by character (Japanese has
    no spaces to break at)."""
    lines, line = [], ""
    for ch in text:
        if line and c.stringWidth(line + ch, font, size) > width:
            lines.append(line)
            line = ""
        line += ch
    return [*lines, line] if line else lines


def _qr(c: Canvas, payload: str, x: float, y: float, side: float) -> None:
    widget = QrCodeWidget(payload, barLevel="M", barBorder=4)
    x0, y0, x1, y1 = widget.getBounds()
    drawing = Drawing(side, side, transform=[side / (x1 - x0), 0, 0, side / (y1 - y0), 0, 0])
    drawing.add(widget)
    renderPDF.draw(drawing, c, x, y)


def card_pdf(town_name: str, resident_name: str, card_code: str) -> bytes:
    """One card-sized page (85.6 x 54 mm): the town, "住民カード", the resident's name (on up
    to three lines at 9 pt or more; a longer name is cut), the QR of the card code on the right
    and the code as text under it."""
    buf = io.BytesIO()
    width, height = CARD_SIZE
    c = _canvas(buf, CARD_SIZE, f"{town_name} 住民カード")
    margin = 4 * mm
    qr_side = 32 * mm
    text_width = width - qr_side - 3 * margin
    c.setFont(JA_FONT, _fit(c, town_name, JA_FONT, 10, text_width))
    c.drawString(margin, height - margin - 10, town_name)
    c.setFont(JA_FONT, 8)
    c.drawString(margin, height - margin - 22, "住民カード(ポイント払い)")
    name = f"{resident_name} 様"
    size = _fit(c, name, JA_FONT, 13, text_width)
    if size < 9:  # a long name: on up to three lines at 9 pt rather than too small to read
        size = 9
    lines = _wrap(c, name, JA_FONT, size, text_width)[:3]
    c.setFont(JA_FONT, size)
    for i, line in enumerate(lines):
        c.drawString(margin, height / 2 - 4 + (len(lines) - 1) * size / 2 - i * size * 1.1, line)
    c.setFont(JA_FONT, 5.5)
    c.drawString(margin, margin + 8, "お店ではQRを見せ、暗証番号はご自身で入力してください。")
    c.drawString(margin, margin, "暗証番号はこのカードに書かないでください。")
    qr_x, qr_y = width - margin - qr_side, height - margin - qr_side - 1 * mm
    _qr(c, card_code, qr_x, qr_y, qr_side)
    c.setFont(CODE_FONT, _fit(c, card_code, CODE_FONT, 9, qr_side + margin))
    c.drawCentredString(qr_x + qr_side / 2, qr_y - 9, card_code)
    c.showPage()
    c.save()
    return buf.getvalue()


def _jst(at: dt.datetime) -> str:
    local = at.astimezone(JST)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}(日本時間)"


def _day(day: dt.date) -> str:
    return f"{day.year}年{day.month}月{day.day}日まで"


# The slip is in Japanese: how a proxy is related (proxies.RELATIONS) and a payment's state.
RELATION_JA = {
    "spouse": "配偶者",
    "child": "子",
    "grandchild": "孫",
    "sibling": "きょうだい",
    "parent": "親",
    "other": "その他の家族",
}
STATE_JA = {
    "pending": "受付中",
    "paying": "処理中",
    "paid": "",
    "expired": "期限切れ",
    "failed": "失敗・引き落としなし",
    "cancelled": "取消・引き落としなし",
}


@dataclass(frozen=True)
class SlipProxy:
    """A family member linked as the resident's proxy (proxies.py): their name, how they are
    related (in Japanese, "" when not said), the limits, and when the link started or ended."""

    name: str
    relation: str
    per_payment: int
    daily: int
    since: dt.datetime
    ended: dt.datetime | None = None


@dataclass(frozen=True)
class SlipAct:
    """A payment a proxy made from the resident's points: when, where, how much, who, and its
    state in Japanese ("" once paid)."""

    at: dt.datetime
    shop: str
    amount: int
    proxy: str
    state: str = ""


class _Flow:
    """Lines down an A6 page that go on to a new page when the page is full."""

    def __init__(self, c: Canvas, footer: str) -> None:
        self.c, self.footer = c, footer
        self.width, self.height = A6
        self.margin = 10 * mm
        self.y = self.height - self.margin - 12

    def need(self, space: float) -> None:
        if self.y - space < self.margin + 22:
            self.page_footer()
            self.c.showPage()
            self.y = self.height - self.margin - 12

    def page_footer(self) -> None:
        self.c.setFont(JA_FONT, 7)
        self.c.drawString(self.margin, self.margin + 10, self.footer)
        self.c.drawString(self.margin, self.margin, "ポイントは期限の日の翌日0時に失効します。")

    def line(self, left: str, right: str = "", size: float = 9, step: float = 13) -> None:
        self.need(step)
        inner = self.width - 2 * self.margin
        room = inner - (self.c.stringWidth(right, JA_FONT, size) + 6 if right else 0)
        self.c.setFont(JA_FONT, _fit(self.c, left, JA_FONT, size, room))
        self.c.drawString(self.margin, self.y, left)
        if right:
            self.c.setFont(JA_FONT, size)
            self.c.drawRightString(self.width - self.margin, self.y, right)
        self.y -= step


def _short(at: dt.datetime) -> str:
    local = at.astimezone(JST)
    return f"{local.month}月{local.day}日 {local:%H:%M}"


def balance_slip_pdf(
    town_name: str,
    resident_name: str,
    card_code: str,
    balance: int,
    lots: Sequence[SlipLot],
    printed_at: dt.datetime,
    proxies: Sequence[SlipProxy] = (),
    acts: Sequence[SlipAct] = (),
) -> bytes:
    """An A6 slip: the resident's spendable points in the town, each lot with the last day it
    can be used (Japan time), the family members linked as proxies and the payments they made
    (Japan time), and when the slip was printed. Goes on to more pages when it does not fit."""
    buf = io.BytesIO()
    width, _height = A6
    c = _canvas(buf, A6, f"{town_name} ポイント残高")
    flow = _Flow(c, f"発行 {_jst(printed_at)}")
    margin = flow.margin
    c.setFont(JA_FONT, _fit(c, town_name, JA_FONT, 12, width - 2 * margin))
    c.drawString(margin, flow.y, town_name)
    flow.y -= 20
    c.setFont(JA_FONT, 14)
    c.drawString(margin, flow.y, "ポイント残高のお知らせ")
    flow.y -= 22
    name = f"{resident_name} 様"
    c.setFont(JA_FONT, _fit(c, name, JA_FONT, 12, width - 2 * margin))
    c.drawString(margin, flow.y, name)
    flow.y -= 14
    c.setFont(JA_FONT, 8)
    c.drawString(margin, flow.y, f"カード番号 {card_code}")
    flow.y -= 26
    c.setFont(JA_FONT, 10)
    c.drawString(margin, flow.y, "使えるポイント")
    c.setFont(JA_FONT, 16)
    c.drawRightString(width - margin, flow.y, f"{balance:,} pt")
    flow.y -= 10
    c.line(margin, flow.y, width - margin, flow.y)
    flow.y -= 16
    flow.line("有効期限ごとの内訳", step=14)
    if not lots:
        flow.line("ポイントはありません。")
    for lot in lots[:16]:  # the contract keeps at most 16 lots
        flow.line(_day(lot.last_day) if lot.last_day else "期限なし", f"{lot.amount:,} pt")
    if proxies:
        flow.y -= 6
        flow.line("ご家族の代理人", step=14)
        for p in proxies:
            who = f"{p.name}({p.relation})" if p.relation else p.name
            when = f"{_short(p.ended)} 終了" if p.ended else f"{_short(p.since)} から"
            flow.line(who, when, size=8.5, step=11)
            flow.line(f"  1回 {p.per_payment:,} pt・1日 {p.daily:,} pt まで", size=8, step=12)
    if proxies or acts:
        flow.y -= 6
        flow.line("代理人によるお支払い(新しい順)", step=14)
        if not acts:
            flow.line("ありません。", size=8.5)
    for act in acts:
        state = f" {act.state}" if act.state else ""
        flow.line(f"{_short(act.at)} {act.shop}", f"-{act.amount:,} pt{state}", size=8.5, step=11)
        flow.line(f"  代理: {act.proxy}", size=8, step=12)
    flow.page_footer()
    c.showPage()
    c.save()
    return buf.getvalue()
