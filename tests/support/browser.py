"""The browser tests' shared parts (tests/e2e): Debian's chromium and how Playwright launches it,
pages that record what went wrong in them, the login form, screenshots under
``tests/artifacts/<dir>/`` (git-ignored) and the accessibility scan (axe-core) every page gets.
The ``browser`` fixture itself is tests/e2e/conftest.py's.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

_cleared: set[str] = set()


def artifacts(name: str) -> Path:
    """``tests/artifacts/<name>/``, emptied the first time a session asks for it."""
    path = ARTIFACTS / name
    if name not in _cleared:
        _cleared.add(name)
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
    return path


def new_page(
    browser: Browser,
    viewport: dict[str, int] = DESKTOP,
    *,
    locale: str = "en-US",
    mobile: bool = False,
    timezone: str | None = "Europe/Paris",
    dialogs: Literal["accept", "dismiss"] = "dismiss",
) -> Page:
    """A page in a fresh context that trusts the box's self-signed certificate, and records in
    ``page.errors`` console errors (a CSP refusal is one) and failed responses (the browser's own
    favicon probe aside), in ``page.dialogs`` the messages of the dialogs it answered."""
    ctx = browser.new_context(
        viewport=viewport, is_mobile=mobile, ignore_https_errors=True, locale=locale, timezone_id=timezone
    )
    ctx.set_default_timeout(90_000)  # a loaded 2-core machine: an argon2 login can take seconds
    page = ctx.new_page()
    errors: list[str] = []
    seen: list[str] = []

    def on_console(m: object) -> None:
        if m.type == "error" and "Failed to load resource" not in m.text:  # type: ignore[attr-defined]
            errors.append(m.text)  # type: ignore[attr-defined]

    def on_response(r: object) -> None:
        if r.status >= 400 and "favicon" not in r.url:  # type: ignore[attr-defined]
            errors.append(f"{r.status} {r.url}")  # type: ignore[attr-defined]

    def on_dialog(d: object) -> None:
        seen.append(d.message)  # type: ignore[attr-defined]
        d.accept() if dialogs == "accept" else d.dismiss()  # type: ignore[attr-defined]

    page.on("console", on_console)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", on_response)
    page.on("dialog", on_dialog)
    page.errors = errors  # type: ignore[attr-defined]
    page.dialogs = seen  # type: ignore[attr-defined]
    return page


def login(page: Page, base: str, address: str, password: str, next: str = "", lands: str = "") -> None:
    """Signs in through the login form; waits for the page it lands on (``next``, else the mail)."""
    page.goto(base + "/login" + (f"?next={next}" if next else ""))
    page.fill("#f-address", address)
    page.fill("#f-password", password)
    page.click("button[type=submit]")
    page.wait_for_url(lands or (f"**{next}**" if next else "**/mail**"))


def shot(page: Page, folder: Path, name: str, both: bool = False) -> None:
    """A full-page screenshot; with ``both``, at desktop size and again at phone size."""
    if not both:
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
        return
    size = page.viewport_size
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=str(folder / f"{name}-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(folder / f"{name}-phone.png"), full_page=True)
    page.set_viewport_size(size or DESKTOP)


# -- accessibility -----------------------------------------------------------------------------------
AXE_IMPACTS = ("serious", "critical")  # issue 10: no serious or critical violation on any page
_axe_source: list[str] = []


def axe_violations(page: Page) -> list[str]:
    """The serious and critical violations axe-core (the copy the ``axe-playwright-python`` wheel
    ships) finds on the page as it is now. Evaluated through the DevTools protocol, which the
    page's CSP (script-src 'self') does not restrict, so the policy under test stays intact."""
    if not _axe_source:
        from axe_playwright_python import sync_playwright as axe_pkg

        _axe_source.append((Path(axe_pkg.__file__).parent / "axe.min.js").read_text())
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(_axe_source[0])
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {', '.join(str(n['target']) for n in v['nodes'][:3])}"
        for v in result["violations"]
        if v["impact"] in AXE_IMPACTS
    ]


def axe_scan(page: Page, name: str, found: dict[str, list[str]] | None = None) -> list[str]:
    """Scans the page at 1280×800 and at 390×844 (the viewport is put back after); returns the
    violations, each prefixed with the page's name and size, and adds them to ``found``."""
    size = page.viewport_size
    bad: list[str] = []
    for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(viewport)
        bad += [f"{name} ({label}): {v}" for v in axe_violations(page)]
    page.set_viewport_size(size or DESKTOP)
    if found is not None and bad:
        found[name] = bad
    return bad


def assert_accessible(page: Page, name: str) -> None:
    """Fails with every serious or critical violation on the page, at both sizes."""
    bad = axe_scan(page, name)
    assert not bad, "\n".join(bad)
