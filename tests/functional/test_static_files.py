"""Scripts and stylesheets under versioned URLs (backend/core/static_files.py): a phone keeps
each one for a year instead of asking again on every page, and never keeps an old file under a
new page or a guessed URL as final."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from flask import Flask, render_template_string

from backend.core.static_files import ONE_YEAR, StaticVersions, init_static_files

STATIC = Path(__file__).resolve().parents[2] / "webui" / "static"


def _static_urls(html: str) -> list[str]:
    return re.findall(r'(?:href|src|data-qr-lib)="(/static/[^"]+)"', html)


def _content_version(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _kept_for_a_year(resp) -> bool:
    cc = resp.cache_control
    return cc.public and cc.max_age == ONE_YEAR and cc.immutable and not cc.no_cache


def test_pages_link_versioned_files_that_browsers_keep_for_a_year(client):
    html = client.get("/login").get_data(as_text=True)
    urls = _static_urls(html)
    assert any("site.css" in u for u in urls) and any(".js" in u for u in urls), urls
    for url in urls:
        path, _, query = url.partition("?")
        assert query.startswith("v="), url
        assert query == f"v={_content_version(STATIC / path.removeprefix('/static/'))}", url
        resp = client.get(url)
        assert resp.status_code == 200, url
        assert resp.get_data() == (STATIC / path.removeprefix("/static/")).read_bytes()
        assert _kept_for_a_year(resp), (url, resp.headers.get("Cache-Control"))
        # A browser that revalidates anyway (a reload) gets 304 with the same promise.
        again = client.get(url, headers={"If-None-Match": resp.headers["ETag"]})
        assert again.status_code == 304 and _kept_for_a_year(again), url


def test_a_url_without_the_current_version_is_never_kept_as_final(client):
    site = STATIC / "site.css"
    for url in ("/static/site.css", "/static/site.css?v=0123456789ab", "/static/site.css?v="):
        resp = client.get(url)
        assert resp.status_code == 200 and resp.get_data() == site.read_bytes(), url
        assert resp.cache_control.no_cache and not resp.cache_control.immutable, url
        assert resp.cache_control.max_age is None and "ETag" in resp.headers, url


def test_missing_and_outside_files_get_no_version_and_404(client):
    for url in ("/static/no-such.css", "/static/../backend/config.py", "/static/%2e%2e/README.md"):
        resp = client.get(url)
        assert resp.status_code == 404, url
        assert not resp.cache_control.immutable, url


def test_a_changed_file_gets_a_new_url_and_its_old_url_is_no_longer_kept(tmp_path: Path):
    """The same mechanism on a folder the test may change: an edit under `make run`, or a deploy
    that a page rendered earlier did not see."""
    (tmp_path / "app.css").write_text("body { color: black }")
    app = Flask("static-versions-test", static_folder=str(tmp_path), static_url_path="/static")
    init_static_files(app)
    client = app.test_client()

    def page_url() -> str:
        with app.test_request_context("/"):
            html = render_template_string(
                "<link href=\"{{ url_for('static', filename='app.css') }}\">"
            )
        (url,) = _static_urls(html)
        return url

    before = page_url()
    assert _kept_for_a_year(client.get(before))

    (tmp_path / "app.css").write_text("body { color: navy }  /* a new release */")
    after = page_url()
    assert after != before
    resp = client.get(after)
    assert _kept_for_a_year(resp) and b"navy" in resp.get_data()
    old = client.get(before)  # the new content under the old name: served, never kept as final
    assert b"navy" in old.get_data() and old.cache_control.no_cache
    assert not old.cache_control.immutable


def test_versions_of_missing_folders_and_escaping_names_are_none(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.js").write_bytes(b"x")
    versions = StaticVersions(tmp_path)
    assert versions.of("a.js") == hashlib.sha256(b"x").hexdigest()[:12]
    assert versions.of("sub") is None  # a folder
    assert versions.of("missing.js") is None
    assert versions.of("../a.js") is None and versions.of("/etc/passwd") is None


def test_templates_and_scripts_name_static_files_only_through_url_for():
    """A hand-written /static/ path would carry no version: such a file would be asked for
    again on every page (and a stale copy could never be told from the current one)."""
    webui = STATIC.parent
    written = [
        f"{path.relative_to(webui)}:{n}"
        for path in [*webui.glob("templates/**/*.html"), *STATIC.glob("js/*.js")]
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"[\"'(=]\s*/static/", line)  # a path in an attribute or a string
    ]
    assert not written, written
