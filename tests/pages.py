"""The app served on a free port and Debian's chromium driven by Playwright: the fixtures of the
browser tests (`live_server`, `browser`, `camera`, `screenshot`) and their helpers. Registered
by tests/conftest.py (`pytest_plugins`); import the helpers from here."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask


def wait_for_path(page: Any, path: str) -> None:
    """Wait until the browser page is at `path` itself: a log-in page's own URL ends in
    "?next=<path>", so a pattern on the whole URL would match before the redirect."""
    page.wait_for_url(lambda url: urlsplit(url).path == path)


def goto_polling_page(page: Any, url: str) -> Any:
    """`page.goto(url)` for a page already showing `url` whose script reloads it when what it
    shows moves on (the DAO pages poll their results). If that reload starts while the test's
    navigation is on its way, Playwright fails the goto ("interrupted by another navigation")
    although both end on a fresh copy of the same URL: then the page's own load is awaited."""
    from playwright.sync_api import Error as PlaywrightError

    try:
        page.goto(url)
    except PlaywrightError as exc:
        if f'interrupted by another navigation to "{url}"' not in str(exc):
            raise
        page.wait_for_load_state()
    return page


# What sticks out past the right edge of a phone `width` px wide: the page's own width, and
# the innermost elements and the words that reach past it (what to fix, in the failure).
_STICKING_OUT = """(width) => {
  const page = document.documentElement.scrollWidth;
  if (page <= width) return [];
  const out = [`the page is ${page} px wide`];
  const where = (el) => el.tagName.toLowerCase() + (el.className ? '.' + el.className : '');
  for (const el of document.body.querySelectorAll('*')) {
    const past = (e) => e.getBoundingClientRect().right > width + 1;
    if (past(el) && ![...el.children].some(past))
      out.push(`${where(el)} "${(el.textContent || el.value || '').trim().slice(0, 30)}"`);
  }
  const words = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (words.nextNode()) {
    const text = words.currentNode, range = document.createRange();
    range.selectNodeContents(text);
    if (range.getBoundingClientRect().right > width + 1)
      out.push(`text in ${where(text.parentElement)} "${text.textContent.trim().slice(0, 30)}"`);
  }
  return [...new Set(out)].slice(0, 8);
}"""
# Chromium's own default font sizes, and twice them: "large text" (PRODUCT.md: every page works
# on a small phone and with large text), the 200 % that WCAG 1.4.4 asks text to resize to and
# about the largest text setting of a phone. The site's sizes are in rem and em, so they follow.
_DEFAULT_TEXT = {"standard": 16, "fixed": 13}
_LARGE_TEXT = {"standard": 32, "fixed": 26}


def sticking_out_of_the_phone(page: Any, width: int = 360) -> list[str]:
    """What makes the page shown wider than the phone (`width` CSS px), at the default text size
    and at 200 % text (Chromium's font-size settings, as a reader who set large text has them):
    [] when nothing is cut off or needs scrolling sideways."""
    problems: list[str] = page.evaluate(_STICKING_OUT, width)
    cdp = page.context.new_cdp_session(page)
    try:
        cdp.send("Page.setFontSizes", {"fontSizes": _LARGE_TEXT})
        problems += [f"at 200 % text, {p}" for p in page.evaluate(_STICKING_OUT, width)]
    finally:
        cdp.send("Page.setFontSizes", {"fontSizes": _DEFAULT_TEXT})
        cdp.detach()
    return problems


def assert_fits_the_phone(page: Any, width: int = 360) -> None:
    problems = sticking_out_of_the_phone(page, width)
    assert not problems, f"{page.url} is wider than a {width} px phone: " + "; ".join(problems)


class LiveServer:
    def __init__(self, app: Flask) -> None:
        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    with LiveServer(app) as server:
        yield server


# Chromium takes only the last --disable-features it is given, and Playwright passes its own list
# first: ours repeats Playwright's (tests/browser/test_chromium_flags.py fails when Playwright's
# list gains one ours lacks) and adds the two omnibox popups. Headless chromium 156 loads both as
# WebUI pages, in a renderer of their own, for every browser context: pages nobody sees. Measured
# (docs/benchmarks.md, "Test suite", 2026-12-06): chromium's CPU for 10 contexts 9.8-11.5 s with
# them, 6.4-6.6 s without; the browser tests' busy CPU-seconds 500/502 with, 406/414 without.
PLAYWRIGHT_DISABLED_FEATURES = (
    "AvoidUnnecessaryBeforeUnloadCheckSync,DestroyProfileOnBrowserClose,HttpsUpgrades,"
    "HttpsFirstBalancedModeAutoEnable,LensOverlay,MediaRouter,PaintHolding,"
    "ThirdPartyStoragePartitioning,AvoidCorsURLLoaderRestartOnRedirect,TcpPortRandomizationWin,"
    "OptimizationHints,NetworkTimeServiceQuerying,AimEnabled,PreconnectToSearch,"
    "msForceBrowserSignIn,msEdgeUpdateLaunchServicesPreferredVersion"
)
UNSEEN_POPUPS = "WebUIOmniboxPopup,WebUIOmniboxAimPopup"

CHROMIUM_ARGS = [
    f"--disable-features={PLAYWRIGHT_DISABLED_FEATURES},{UNSEEN_POPUPS}",
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")  # $CHROMIUM: another build
HEADLESS_SHELL = "/usr/bin/chromium-headless-shell"


def chromium_for_pages() -> str:
    """The chromium the shared `browser` drives: Debian's chromium-headless-shell where it is
    installed (`make test-deps` tries to), else chromium itself. The shell is the same Blink
    without the browser's own UI, the build Playwright itself uses for headless runs. Measured
    (docs/benchmarks.md, "Test suite", 2026-12-06): the browser tests' busy CPU-seconds 375 with
    chromium, 328 with the shell. $CHROMIUM picks one by hand (for the cameras too)."""
    if "CHROMIUM" in os.environ or not os.access(HEADLESS_SHELL, os.X_OK):
        return CHROMIUM
    return HEADLESS_SHELL


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_for_pages(), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def camera(browser: Any) -> Iterator[Callable[..., Any]]:
    """A 360 px phone (a browser context) whose camera films `video` (tests/camera.py makes a
    .y4m of a QR code). Each call launches its own chromium, since the fake camera's file is a
    launch flag; the shared `browser` stays camera-less. allow=False leaves out the flag that
    accepts the permission prompt, so the page's camera request is refused as if the person
    had said no. The full chromium, not the headless shell: asked for a camera it was not
    told to accept, the shell answers NotSupportedError, never the NotAllowedError of a "no"."""
    launched: list[Any] = []

    def phone(video: Path, *, allow: bool = True, locale: str = "ja-JP") -> Any:
        args = [
            *CHROMIUM_ARGS,
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={video}",
        ]
        if allow:
            args.append("--use-fake-ui-for-media-stream")
        b = browser.browser_type.launch(executable_path=CHROMIUM, args=args)
        launched.append(b)
        return b.new_context(
            viewport={"width": 360, "height": 740},
            locale=locale,
            permissions=["camera"] if allow else [],
        )

    yield phone
    for b in launched:
        b.close()


@pytest.fixture
def screenshot(artifacts_dir: Path, request: pytest.FixtureRequest) -> Callable[[Any, str], Path]:
    """Save a screenshot of a page to test-artifacts/screenshots/<test>-<step>.png."""
    folder = artifacts_dir / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)

    def shoot(page: Any, step: str) -> Path:
        path = folder / f"{request.node.name}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return shoot
