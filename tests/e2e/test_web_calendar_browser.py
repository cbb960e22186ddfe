"""The web calendar and contacts in a real browser (Debian's chromium driven by Playwright)
against a real ``gk serve``: an event and a contact are created through the forms, found by the
python ``caldav`` client at ``/dav/``, and every page is screenshotted in English and French at
desktop and phone sizes to ``tests/artifacts/calendar/`` (git-ignored).
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
import zoneinfo
from pathlib import Path

import pytest
from playwright.sync_api import expect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support.gkserver import GKServer

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
ART = Path(__file__).resolve().parents[1] / "artifacts" / "calendar"
ALICE, ALICE_PW = "alice@home.example", "alice password 1"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
NO_MAIL = {"smtp": {"port": 0, "submission_port": 0, "submissions_port": 0}, "imap": {"port": 0, "tls_port": 0}}

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is installed by make test"),
    pytest.mark.filterwarnings("ignore:Unverified HTTPS request"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from gk import claim, settings

    srv = GKServer(tmp_path_factory.mktemp("web-cal-e2e") / "gk", NO_MAIL)
    srv.write_config()
    srv.add_user(ALICE, ALICE_PW)
    claim.claim(srv.data_dir, "test")
    claim.complete(srv.data_dir)
    settings.of(srv.data_dir).update(timezone="Europe/Paris")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if ART.exists():
        shutil.rmtree(ART)
    ART.mkdir(parents=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def base(srv: GKServer) -> str:
    return f"https://127.0.0.1:{srv.port('http.https_port')}"


def new_page(browser, locale: str = "en-US"):
    """A page that records console errors (a CSP violation, e.g. an inline style, is one)."""
    ctx = browser.new_context(viewport=DESKTOP, ignore_https_errors=True, locale=locale)
    page = ctx.new_page()
    errors: list[str] = []
    # a failed load is checked by its response (the browser's own /favicon.ico is no error of ours)
    page.on(
        "console",
        lambda m: errors.append(m.text) if m.type == "error" and "Failed to load resource" not in m.text else None,
    )
    page.on(
        "response",
        lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 and "favicon" not in r.url else None,
    )
    page.errors = errors  # type: ignore[attr-defined]
    return page


def login(page, srv: GKServer) -> None:
    page.goto(base(srv) + "/login?next=/calendar")
    page.fill("#f-address", ALICE)
    page.fill("#f-password", ALICE_PW)
    page.click("button[type=submit]")
    page.wait_for_url("**/calendar**")


def shot(page, name: str) -> None:
    """At desktop size, then again at phone size (the page is reloaded at that width)."""
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=str(ART / f"{name}-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(ART / f"{name}-phone.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


def today() -> dt.date:
    return dt.datetime.now(zoneinfo.ZoneInfo("Europe/Paris")).date()


def test_create_event_in_the_browser(server, browser):
    import caldav

    page = new_page(browser)
    login(page, server)
    expect(page.locator(".month .day.today")).to_have_count(1)
    page.click("#new-event")
    page.wait_for_url("**/calendar/event**")
    page.fill("#f-title", "Swimming lesson")
    day = today()
    page.fill("#f-start_date", day.isoformat())
    page.fill("#f-start_time", "18:30")
    page.fill("#f-end_date", day.isoformat())
    page.fill("#f-end_time", "19:30")
    page.fill("#f-location", "Municipal pool")
    page.select_option("#f-repeat", "WEEKLY")
    page.check("#f-repeat-count")
    page.fill("#f-count", "3")
    page.select_option("#f-reminder", "15")
    shot(page, "en-event-form")
    page.click("#save-event")
    page.wait_for_url("**/calendar?date=**")
    assert page.locator("a.occ", has_text="Swimming lesson").count() >= 1
    shot(page, "en-month")
    page.click("text=Week")
    page.wait_for_url("**view=week**")
    expect(page.locator(".wday a.occ", has_text="Swimming lesson")).to_have_count(1)
    shot(page, "en-week")
    page.click("text=Agenda")
    page.wait_for_url("**view=agenda**")
    expect(page.locator(".agenda a.occ", has_text="Swimming lesson")).to_have_count(3)
    assert "18:30" in page.locator(".agenda").inner_text()
    shot(page, "en-agenda")
    # what a CalDAV client sees: the event, its zone, its rule and its alarm
    client = caldav.DAVClient(
        url=base(server) + "/dav/", username=ALICE, password=ALICE_PW, ssl_verify_cert=False, enable_rfc6764=False
    )
    events = client.calendar(url=f"/dav/{ALICE}/calendar/").events()
    data = [e.data for e in events if "Swimming lesson" in e.data]
    assert len(data) == 1
    assert "RRULE:FREQ=WEEKLY;COUNT=3" in data[0] and "TZID=Europe/Paris" in data[0] and "TRIGGER:-PT15M" in data[0]
    assert page.errors == []
    page.close()


def test_create_contact_in_the_browser(server, browser):
    page = new_page(browser)
    login(page, server)
    page.click("nav.cal-tabs >> text=Contacts")
    page.wait_for_url("**/contacts")
    page.click("#new-contact")
    page.fill("#f-given", "Chloé")
    page.fill("#f-family", "Durand")
    page.fill("#f-email", "chloe@example.org")
    page.fill("#f-phone", "+33 6 11 22 33 44")
    page.fill("#f-city", "Lyon")
    page.fill("#f-birthday", "1988-07-14")
    shot(page, "en-contact-form")
    page.click("#save-contact")
    page.wait_for_url("**/contacts/contact**")
    assert page.locator("#contact-name").inner_text() == "Chloé Durand"
    shot(page, "en-contact-view")
    page.goto(base(server) + "/contacts?q=lyon")
    expect(page.locator("#contact-list a", has_text="Chloé Durand")).to_have_count(1)
    shot(page, "en-contacts")
    assert page.errors == []
    page.close()


def test_french_pages(server, browser):
    page = new_page(browser, "fr-FR")
    login(page, server)
    assert page.locator("#new-event").inner_text() == "Nouvel événement"
    shot(page, "fr-month")
    page.click("text=Semaine")
    shot(page, "fr-week")
    page.click(".views >> text=Agenda")
    assert "Swimming lesson" in page.locator(".agenda").inner_text()
    shot(page, "fr-agenda")
    page.click("#new-event")
    assert page.locator("label[for=f-title]").inner_text() == "Titre"
    shot(page, "fr-event-form")
    page.goto(base(server) + "/contacts")
    assert page.locator("#new-contact").inner_text() == "Nouveau contact"
    shot(page, "fr-contacts")
    page.click("#contact-list a")
    shot(page, "fr-contact-view")
    page.goto(base(server) + "/calendar/tasks")
    page.fill("#f-task", "Acheter du pain")
    page.click(".task-add button")
    expect(page.locator("ul.tasks", has_text="Acheter du pain")).to_have_count(1)
    shot(page, "fr-tasks")
    assert page.errors == []
    page.close()
