"""Every template works under the Content-Security-Policy (backend/core/web_security.py): each
<script> carries the request's nonce, and nothing relies on what the policy refuses (inline
event handlers, inline style attributes, javascript: URLs). New templates are checked too."""

from __future__ import annotations

import re
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "webui" / "templates"
SCRIPT = re.compile(r"<script\b[^>]*>", re.IGNORECASE)
NONCE = 'nonce="{{ csp_nonce() }}"'
HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.IGNORECASE)
STYLE_ATTR = re.compile(r"<[a-z][^>]*\sstyle\s*=", re.IGNORECASE)


def _templates() -> list[Path]:
    found = sorted(TEMPLATES.rglob("*.html"))
    assert found, TEMPLATES
    return found


def test_every_script_tag_carries_the_csp_nonce():
    missing = [
        f"{path.relative_to(TEMPLATES)}: {tag}"
        for path in _templates()
        for tag in SCRIPT.findall(path.read_text())
        if NONCE not in tag
    ]
    assert not missing, "add " + NONCE + " to:\n" + "\n".join(missing)


def test_no_template_uses_inline_handlers_styles_or_javascript_urls():
    bad = []
    for path in _templates():
        text = path.read_text()
        for pattern in (HANDLER, STYLE_ATTR, re.compile(r"javascript:", re.IGNORECASE)):
            bad += [
                f"{path.relative_to(TEMPLATES)}: {m.group(0)[:80]}" for m in pattern.finditer(text)
            ]
    assert not bad, "the CSP refuses these:\n" + "\n".join(bad)
