"""The web calendar and contacts in a real browser (Debian's chromium driven by Playwright)
against a real ``gk serve``: an event and a contact are created through the forms, found by the
python ``caldav`` client at ``/dav/``, and every page is screenshotted in English and French at
desktop and phone sizes to ``tests/artifacts/calendar/`` (git-ignored).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from playwright.sync_api import expect
from support import browser as b
from support.gkserver import NO_MAIL, GKServer

ALICE, ALICE_PW = "alice@home.example", "alice password 1"

pytestmark = pytest.mark.filterwarnings("ignore:Unverified HTTPS request")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = GKServer(tmp_path_factory.mktemp("web-cal-e2e") / "gk", NO_MAIL)
    srv.claimed({ALICE: ALICE_PW}, timezone="Europe/Paris").start()
    yield srv
    srv.stop()


def base(srv: GKServer) -> str:
    return f"https://127.0.0.1:{srv.port('http.https_port')}"


def new_page(browser, locale: str = "en-US"):
    return b.new_page(browser, locale=locale, timezone=None)


def login(page, srv: GKServer) -> None:
    b.login(page, base(srv), ALICE, ALICE_PW, next="/calendar")


AXE_FOUND: dict[str, list[str]] = {}  # test_accessibility asserts it stays empty


def shot(page, name: str) -> None:
    """At desktop size, then again at phone size; and the axe-core scan at both sizes."""
    b.axe_scan(page, name, AXE_FOUND)
    b.shot(page, b.artifacts("calendar"), name, both=True)


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


def test_accessibility(server, browser):
    """Issue 10: no serious or critical axe-core violation on the calendar's views, the event
    form, contacts, tasks (every page above was scanned as it was screenshotted) and sharing."""
    page = new_page(browser)
    login(page, server)
    page.goto(base(server) + "/sharing")
    assert page.locator("h1").count() == 1
    shot(page, "en-sharing")
    page.close()
    assert AXE_FOUND == {}, "\n".join(v for vs in AXE_FOUND.values() for v in vs)
