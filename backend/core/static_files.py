"""Scripts and stylesheets (webui/static) under versioned URLs, kept by browsers for a year.

`url_for("static", filename=...)` adds `?v=<the first 12 hex digits of the file's SHA-256>`.
A request whose `v` names the file's current content is answered with `Cache-Control: public,
max-age=31536000, immutable`: a phone fetches each script and stylesheet once, instead of asking
again for every one of them on every page (Flask's default is `no-cache`, so each page cost one
revalidation per file, a round trip each on a slow mobile network).

A changed file gets a new URL, so nobody keeps an old script under a new page. A request without
`v`, or with a version that is not the file's content now (a page rendered before a deploy, a
guess), gets Flask's default, `no-cache` with an ETag: it is never kept as if it were final.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from flask import Flask, Response, request
from werkzeug.security import safe_join

ONE_YEAR = 365 * 24 * 3600
VERSION_ARG = "v"


class StaticVersions:
    """The version of each static file: a hash of its content, read again when the file's
    modification time or size changes (an edit under `make run` gets a new URL at once)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self._seen: dict[str, tuple[int, int, str]] = {}  # filename -> (mtime_ns, size, version)

    def of(self, filename: str) -> str | None:
        """The file's version, or None when no such file is in the folder."""
        path = safe_join(str(self.folder), filename)
        if path is None:
            return None
        try:
            st = os.stat(path)
        except OSError:
            return None
        seen = self._seen.get(filename)
        if seen is not None and seen[:2] == (st.st_mtime_ns, st.st_size):
            return seen[2]
        try:
            version = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
        except OSError:  # a folder, or a file removed since the stat
            return None
        self._seen[filename] = (st.st_mtime_ns, st.st_size, version)
        return version


def init_static_files(app: Flask) -> None:
    """Version every static URL the app builds and let browsers keep what a version names."""
    assert app.static_folder is not None, "the app serves webui/static"
    versions = StaticVersions(app.static_folder)

    @app.url_defaults
    def _add_version(endpoint: str, values: dict[str, Any]) -> None:
        if endpoint == "static" and VERSION_ARG not in values:
            version = versions.of(str(values.get("filename", "")))
            if version is not None:
                values[VERSION_ARG] = version

    @app.after_request
    def _keep_versioned(resp: Response) -> Response:
        if request.endpoint != "static" or resp.status_code not in (200, 304):
            return resp
        asked = request.args.get(VERSION_ARG)
        filename = (request.view_args or {}).get("filename", "")
        if asked and asked == versions.of(filename):
            resp.cache_control.no_cache = None
            resp.cache_control.public = True
            resp.cache_control.max_age = ONE_YEAR
            resp.cache_control.immutable = True
        return resp
