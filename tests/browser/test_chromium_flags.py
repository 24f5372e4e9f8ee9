"""The chromium the browser tests drive: the flags tests/conftest.py adds must keep Playwright's
own and must stop the pages nobody sees (an upgrade of either can silently undo both)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def _parent_pid(pid: str) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rfind(")") + 2 :].split()[1])


def _chromium_browser_processes_under_this_test_process() -> list[list[str]]:
    """The command lines of the chromium browser processes (not renderers or other helpers)
    started below this pytest process, through Playwright's driver."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
            ancestor = _parent_pid(pid)
            while ancestor > 1 and ancestor != os.getpid():
                ancestor = _parent_pid(str(ancestor))
        except (OSError, ValueError):  # the process ended while we looked
            continue
        is_browser = "--remote-debugging-pipe" in args and not any(
            a.startswith("--type=") for a in args
        )
        if ancestor == os.getpid() and "chromium" in args[0] and is_browser:
            found.append(args)
    return found


def test_our_disabled_features_keep_playwrights_and_the_unseen_popups_are_not_loaded(
    browser: Any,
) -> None:
    context = browser.new_context()
    context.new_page().goto("about:blank")
    targets = browser.new_browser_cdp_session().send("Target.getTargets", {"filter": [{}]})
    assert [t["url"] for t in targets["targetInfos"] if t["type"] == "browser_ui"] == []
    context.close()

    browsers = _chromium_browser_processes_under_this_test_process()
    assert browsers, "the session's chromium is not a descendant of this process"
    for args in browsers:
        lists = [
            set(a.split("=", 1)[1].split(",")) for a in args if a.startswith("--disable-features=")
        ]
        assert len(lists) >= 2, "Playwright's list and ours"
        # Chromium uses only the last one it is given: it must hold every earlier one.
        lost = set().union(*lists[:-1]) - lists[-1]
        assert not lost, f"add {sorted(lost)} to PLAYWRIGHT_DISABLED_FEATURES (tests/pages.py)"
