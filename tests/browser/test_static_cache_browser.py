"""A phone keeps the site's stylesheet and scripts between pages (backend/core/static_files.py):
the second page asks the server for none of the files the first one fetched. With Flask's
default (`no-cache`) chromium asked again for each of them on every page."""

from __future__ import annotations

from collections import Counter
from typing import Any


def test_a_phone_fetches_each_static_file_once_across_pages(app, live_server, browser):
    fetched: Counter[str] = Counter()  # static paths the server was asked for, 200 or 304
    serve = app.wsgi_app

    def counting(environ: dict[str, Any], start_response: Any) -> Any:
        if environ["PATH_INFO"].startswith("/static/"):
            fetched[environ["PATH_INFO"]] += 1
        return serve(environ, start_response)

    app.wsgi_app = counting  # type: ignore[method-assign]
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="ja-JP")
    page = context.new_page()
    try:
        page.goto(live_server.url + "/login", wait_until="load")
        first = Counter(fetched)
        assert first["/static/site.css"] == 1, first
        assert any(p.endswith(".js") for p in first), first

        # Another page with the same stylesheet, then the first page again.
        page.goto(live_server.url + "/", wait_until="load")
        page.goto(live_server.url + "/login", wait_until="load")
        assert page.locator("html").get_attribute("lang") == "ja"
        assert fetched["/static/site.css"] == 1, fetched
        assert all(fetched[p] == 1 for p in first), fetched  # nothing fetched twice
        # ...and the page still has its style: the kept stylesheet applies.
        assert page.evaluate(
            "[...document.styleSheets].some(s => s.href && s.href.includes('/static/site.css'))"
        )
    finally:
        context.close()
