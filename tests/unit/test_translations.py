"""Every text the UI shows has a Japanese translation (English is the source language)."""

from __future__ import annotations

from scripts.i18n import check, used_messages


def test_every_used_message_has_a_japanese_translation():
    assert check() == []


def test_the_extraction_sees_templates_and_python():
    used = used_messages()
    assert "Support your favourite town" in used  # a template
    assert "Ambassador card" in used  # N_ in backend/shop/categories.py
