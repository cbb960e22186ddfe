"""The calendar, sharing and contacts pages in process (``support.wsgiclient``) on a real DAV
service: a month's recurring occurrences, the task list, the contact list and the assistant's
calendar and contacts tools are parsed and expanded in the CPU pool, not on the hub; the
sharing page names calendars by their display name; an invalid field of the contact and event
forms is marked invalid, tied to its message and announced."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from support.wsgiclient import Client, complete_setup, web_with_dav

from gk import pools
from gk.dav import service as dav_service
from gk.web import calendar as web_calendar
from gk.web import calendar_events as ev
from gk.web.calendar import davweb

ALICE, ALICE_PW = "alice@test.example", "alice password 12"
BOB, BOB_PW = "bob@test.example", "bob password 12"


@pytest.fixture
def web(tmp_path: Path):  # type: ignore[no-untyped-def]
    web, svc = web_with_dav(tmp_path)
    complete_setup(web)
    web.ctx.accounts.add_user(ALICE, ALICE_PW)
    web.ctx.accounts.add_user(BOB, BOB_PW)
    yield web
    svc.stop(0)


def signed_in(web, address: str = ALICE, password: str = ALICE_PW) -> Client:  # type: ignore[no-untyped-def]
    c = Client(web)
    c.login(address, password)
    return c


WEEKLY = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:weekly-1\r\n"
    "DTSTAMP:20260101T000000Z\r\nDTSTART:20260302T090000Z\r\nDTEND:20260302T100000Z\r\n"
    "RRULE:FREQ=WEEKLY\r\nSUMMARY:Standup meeting\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def test_calendar_page_expands_recurrences_in_the_cpu_pool(web, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    c = signed_in(web)
    api = davweb(web)
    api.ensure(ALICE)
    api.save(ALICE, f"{ALICE}/calendar", ev.parse(WEEKLY))
    hub = threading.get_ident()
    where: list[tuple[int, bool]] = []
    occurrences = ev.occurrences

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        where.append((threading.get_ident(), pools.in_pool_thread()))
        return occurrences(*args, **kwargs)

    monkeypatch.setattr(ev, "occurrences", recording)
    page = c.get("/calendar?view=month&date=2026-03-15")
    assert page.status == 200
    # every Monday of March 2026 (and the grid's days of April), each at its own date
    assert page.text.count("Standup meeting") >= 5
    for day in ("2026-03-02", "2026-03-09", "2026-03-16", "2026-03-23", "2026-03-30"):
        assert day in page.text
    assert where, "no occurrence was expanded"
    assert all(thread != hub and in_pool for thread, in_pool in where), where
    # the same answer as expanding right here (the pool changes where, not what)
    where.clear()
    books = [b for b in api.books(ALICE, "VCALENDAR") if b.has_events]
    import datetime as dt
    import zoneinfo

    tz = zoneinfo.ZoneInfo("UTC")
    got = web_calendar.load_occurrences(api, ALICE, books, dt.date(2026, 3, 1), dt.date(2026, 4, 1), tz)
    assert [o.start.day for o in got] == [2, 9, 16, 23, 30]
    assert where and all(in_pool for _, in_pool in where)


def test_heavy_recurrence_keeps_its_cap_in_the_pool(web) -> None:  # type: ignore[no-untyped-def]
    """A FREQ=SECONDLY event shown a year after its start walks past recurrence.MAX_STEPS: the
    pool still stops it (the event is shown once) and the page answers."""
    c = signed_in(web)
    api = davweb(web)
    api.ensure(ALICE)
    secondly = WEEKLY.replace("RRULE:FREQ=WEEKLY", "RRULE:FREQ=SECONDLY").replace("weekly-1", "secondly-1")
    secondly = secondly.replace("Standup meeting", "Every second")
    api.save(ALICE, f"{ALICE}/calendar", ev.parse(secondly))
    page = c.get("/calendar?view=week&date=2027-03-15")
    assert page.status == 200


def test_sharing_page_shows_display_names_escaped(web) -> None:  # type: ignore[no-untyped-def]
    svc = web.ctx.services.maybe(dav_service.DAVService)
    svc.create_shared(ALICE, {BOB: "r"}, "fam-1", "<b>Les Dupont</b> & co")
    svc.create_shared(ALICE, {BOB: "rw"}, "nameless", "")
    alice = signed_in(web)
    page = alice.get("/sharing")
    assert page.status == 200
    assert "&lt;b&gt;Les Dupont&lt;/b&gt; &amp; co" in page.text and "<b>Les Dupont</b>" not in page.text
    assert re.search(r"<h2>\s*nameless\s*</h2>", page.text)  # no display name: the id, as a last resort
    bob = signed_in(web, BOB, BOB_PW)
    page = bob.get("/sharing")
    shared = page.text[page.text.index("Shared with you") :]
    assert "&lt;b&gt;Les Dupont&lt;/b&gt; &amp; co" in shared and "fam-1" not in shared
    assert "nameless" in shared
    assert ALICE in shared


def test_sharing_page_translates_only_default_names(web) -> None:  # type: ignore[no-untyped-def]
    svc = web.ctx.services.maybe(dav_service.DAVService)
    svc.create_shared(ALICE, {BOB: "r"}, "fam-2", "Calendar")  # named like a default, by hand
    bob = signed_in(web, BOB, BOB_PW)
    svc.shares.set_members(ALICE, "calendar", {BOB: "r"})
    page = bob.get("/sharing", headers={"Accept-Language": "fr"})
    assert re.search(r"<li>Agenda — ", page.text)  # alice's default calendar, in bob's language
    assert re.search(r"<li>Calendar — ", page.text)  # the one alice named so herself


def _field(html: str, element_id: str) -> str:
    m = re.search(r'<(?:input|select|textarea)[^>]*\bid="' + re.escape(element_id) + r'"[^>]*>', html)
    assert m, element_id
    return m.group(0)


def _described(html: str, tag: str, error_id: str) -> None:
    """``tag`` says it is invalid and points at the error, which exists and is announced."""
    assert 'aria-invalid="true"' in tag, tag
    assert f'aria-describedby="{error_id}"' in tag, tag
    m = re.search(r'<p[^>]*\bid="' + re.escape(error_id) + r'"[^>]*>', html)
    assert m, error_id
    assert 'role="alert"' in m.group(0), m.group(0)


def test_contact_form_errors_are_tied_to_their_fields(web) -> None:  # type: ignore[no-untyped-def]
    c = signed_in(web)
    assert c.get("/contacts/edit").status == 200
    page = c.post(
        "/contacts/edit",
        {
            "book": f"{ALICE}/contacts",
            "given": "",
            "email_type": "home",
            "email": "not-an-address",
            "phone_type": "cell",
            "phone": "call me maybe",
            "birthday": "1990-13-45",
        },
    )
    assert page.status == 200
    html = page.text
    _described(html, _field(html, "f-given"), "e-given")
    _described(html, _field(html, "f-birthday"), "e-birthday")
    email = re.search(r'<input type="email"[^>]*value="not-an-address"[^>]*>', html)
    assert email
    _described(html, email.group(0), "e-email")
    phone = re.search(r'<input type="tel"[^>]*value="call me maybe"[^>]*>', html)
    assert phone
    _described(html, phone.group(0), "e-phone")
    # the empty rows left for more addresses are not marked
    assert all("aria-invalid" not in m for m in re.findall(r'<input type="email"[^>]*value=""[^>]*>', html))
    assert 'aria-invalid="true"' not in _field(html, "f-family")
    # a valid form has no error marks at all
    page = c.get("/contacts/edit")
    assert "aria-invalid" not in page.text and 'class="field-error"' not in page.text


def test_event_form_errors_are_tied_to_their_fields(web) -> None:  # type: ignore[no-untyped-def]
    c = signed_in(web)
    assert c.get("/calendar/event").status == 200
    base = {
        "cal": f"{ALICE}/calendar",
        "title": "Dentist",
        "start_date": "2026-03-02",
        "start_time": "09:00",
        "end_date": "2026-03-02",
        "end_time": "10:00",
        "timezone": "UTC",
    }
    for fields, name in (
        ({"title": ""}, "title"),
        ({"end_date": "2026-03-01"}, "end_date"),
        ({"start_time": "9h"}, "start_time"),
        ({"repeat": "WEEKLY", "repeat_end": "count", "count": "0"}, "count"),
        ({"attendees": "nobody"}, "attendees"),
    ):
        page = c.post("/calendar/event", {**base, **fields})
        assert page.status == 200, (fields, page.status)
        _described(page.text, _field(page.text, f"f-{name}"), f"e-{name}")
        assert page.text.count('aria-invalid="true"') == 1, fields


TODO = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VTODO\r\nUID:todo-pool-1\r\n"
    "DTSTAMP:20260101T000000Z\r\nDUE;VALUE=DATE:20260320\r\nSUMMARY:Water the plants\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
)
CARD = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:card-pool-1\r\nFN:Zoe Poolside\r\nN:Poolside;Zoe;;;\r\n"
    "EMAIL:zoe@example.org\r\nTEL:+33 6 00 00 00 01\r\nEND:VCARD\r\n"
)


@pytest.fixture
def parses(monkeypatch):  # type: ignore[no-untyped-def]
    """Records (thread, in a pool thread) of every vobject parse (``vobject.readOne``: the web
    pages', Radicale's items' and the MCP tools' own) from the moment it is asked for."""
    import vobject  # type: ignore[import-untyped]

    where: list[tuple[int, bool]] = []
    read_one = vobject.readOne

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        where.append((threading.get_ident(), pools.in_pool_thread()))
        return read_one(*args, **kwargs)

    def start() -> list[tuple[int, bool]]:
        monkeypatch.setattr(vobject, "readOne", recording)
        return where

    return start


def off_the_hub(where: list[tuple[int, bool]]) -> bool:
    hub = threading.get_ident()
    return bool(where) and all(thread != hub and in_pool for thread, in_pool in where)


@pytest.mark.parametrize("page", ["tasks", "contacts"])
def test_tasks_and_contacts_pages_parse_in_the_cpu_pool(web, parses, page) -> None:  # type: ignore[no-untyped-def]
    from gk.web import contacts

    c = signed_in(web)
    api = davweb(web)
    api.ensure(ALICE)
    if page == "tasks":
        api.save(ALICE, f"{ALICE}/tasks", ev.parse(TODO))
        url, shown = "/calendar/tasks", ("Water the plants", "2026-03-20")
    else:
        api.save(ALICE, f"{ALICE}/contacts", contacts.parse_card(CARD))
        url, shown = "/contacts?q=poolside", ("Zoe Poolside", "zoe@example.org")
    where = parses()
    got = c.get(url)
    assert got.status == 200 and all(text in got.text for text in shown)
    assert off_the_hub(where), where


def test_assistant_calendar_and_contacts_tools_parse_in_the_cpu_pool(web, parses) -> None:  # type: ignore[no-untyped-def]
    from gk.mcp import davtools
    from gk.web import contacts

    api = davweb(web)
    api.ensure(ALICE)
    api.save(ALICE, f"{ALICE}/calendar", ev.parse(WEEKLY))
    api.save(ALICE, f"{ALICE}/contacts", contacts.parse_card(CARD))
    svc = web.ctx.services.maybe(dav_service.DAVService)
    tools = davtools.DAVTools(davtools.DAVReader(lambda: svc.storage, Path(web.ctx.data_dir)))
    where = parses()
    got = tools.list_events(ALICE, {"start": "2026-03-01", "end": "2026-04-01"})
    assert [e["start"][:10] for e in got["events"]] == [
        "2026-03-02",
        "2026-03-09",
        "2026-03-16",
        "2026-03-23",
        "2026-03-30",
    ]
    assert off_the_hub(where), where
    # the per-event cap holds in the pool: a rule every second gives MAX_INSTANCES, no more
    secondly = WEEKLY.replace("RRULE:FREQ=WEEKLY", "RRULE:FREQ=SECONDLY").replace("weekly-1", "secondly-1")
    api.save(ALICE, f"{ALICE}/calendar", ev.parse(secondly.replace("Standup meeting", "Every second")))
    where.clear()
    got = tools.list_events(ALICE, {"start": "2026-03-01", "end": "2026-04-01", "limit": 200})
    assert got["total"] == davtools.MAX_INSTANCES + 5 and len(got["events"]) == 200
    free = tools.find_free_time(ALICE, {"start": "2026-03-02", "end": "2026-03-03", "duration_minutes": 30})
    assert "slots" in free
    found = tools.search_contacts(ALICE, {"text": "poolside"})
    assert found["total"] == 1 and found["contacts"][0]["emails"] == ["zoe@example.org"]
    assert off_the_hub(where), where
