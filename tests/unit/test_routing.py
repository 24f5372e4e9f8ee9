"""The app's URL rules compile their url_for builders on first use (backend/core/routing.py):
every rule must build exactly the URLs werkzeug's own rule builds, with and without arguments
the rule does not name (appended as a query string)."""

from __future__ import annotations

import threading

from werkzeug.routing import Map, Rule
from werkzeug.routing.converters import AnyConverter, NumberConverter

from backend import create_app
from backend.config import Settings
from backend.core.routing import LazyBuilderRule

TEXT = "まち a/b?&c"  # text that needs quoting


def _sample(converter: object) -> object:
    """A value the argument's converter accepts."""
    if isinstance(converter, AnyConverter):
        return sorted(converter.items)[0]
    if isinstance(converter, NumberConverter):
        return 7
    return TEXT


def test_every_rule_builds_the_same_urls_as_werkzeugs_own_rule(tmp_path):
    app = create_app(Settings(instance_path=tmp_path, secret_key="k"))
    rules = list(app.url_map.iter_rules())
    # Flask adds the static rule itself, before create_app can choose the rule class.
    lazy = [r for r in rules if r.endpoint != "static"]
    assert len(lazy) > 200 and all(isinstance(r, LazyBuilderRule) for r in lazy)
    stock = Map(converters=app.url_map.converters)
    for rule in lazy:
        twin = Rule(rule.rule, **rule.get_empty_kwargs())
        stock.add(twin)
        values = {name: _sample(c) for name, c in rule._converters.items()}
        for extra in ({}, {"lang": "ja", "q": "ラーメン 2"}):
            for append_unknown in (True, False):
                url = rule.build({**values, **extra}, append_unknown)
                assert url is not None, rule.rule
                assert url == twin.build({**values, **extra}, append_unknown), rule.rule
        assert (TEXT in values.values()) == ("%E3%81%BE%E3%81%A1" in url[1])


def test_url_for_works_when_many_threads_build_first_at_once(tmp_path):
    app = create_app(Settings(instance_path=tmp_path, secret_key="k"))
    rule = next(
        r
        for r in app.url_map.iter_rules()
        if isinstance(r, LazyBuilderRule) and r.rule == "/api/towns/<slug>/people"
    )
    start = threading.Barrier(8)
    urls: list[str] = []

    def build() -> None:
        start.wait()
        with app.test_request_context():
            from flask import url_for

            urls.append(url_for(rule.endpoint, slug="toyako", v="1"))

    threads = [threading.Thread(target=build) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert urls == ["/api/towns/toyako/people?v=1"] * 8
