"""One browser for all of tests/e2e: Debian's chromium driven by Playwright (each test opens its
own contexts, so cookies and storage never cross). The helpers are in tests/support/browser.py.

The browser is closed when the last test of this directory ends, not at the end of the session:
Playwright's sync API keeps its asyncio loop marked running in this thread while it is open, and
tests elsewhere in the suite call ``asyncio.run`` (the MCP SDK, for one).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.browser import ARGS, CHROMIUM

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

HERE = Path(__file__).resolve().parent

_open: dict[str, object] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if Path(CHROMIUM).exists():
        return
    skip = pytest.mark.skip(reason="Debian's chromium is installed by make test")
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(skip)


@pytest.fixture
def browser() -> Browser:
    """The one chromium every browser test shares, launched by the first that asks (a launch costs
    seconds on a loaded machine) and closed after this directory's last test."""
    if "browser" not in _open:
        from playwright.sync_api import sync_playwright

        manager = sync_playwright()
        pw: Playwright = manager.start()
        _open["manager"], _open["playwright"] = manager, pw
        _open["browser"] = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
    return _open["browser"]  # type: ignore[return-value]


def _close() -> None:
    b, pw = _open.pop("browser", None), _open.pop("playwright", None)
    _open.pop("manager", None)
    if b is not None:
        b.close()  # type: ignore[attr-defined]
    if pw is not None:
        pw.stop()  # type: ignore[attr-defined]


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """The browser closes after this directory's last test (see the module's docstring)."""
    if "browser" in _open and (nextitem is None or HERE not in Path(nextitem.path).parents):
        _close()


def pytest_sessionfinish(session: pytest.Session) -> None:
    _close()
