"""``gk.dav.webapi`` on a real DAV service (Radicale with GK's SQLite storage and rights) in
this process: shared collections are listed and written only as the rights plugin allows, an
import is all or nothing, and a task list refuses events."""

from __future__ import annotations

from typing import Any

import pytest
from support.wsgiclient import make_context

from gk.dav.rights import Rights
from gk.dav.service import DAVService
from gk.dav.webapi import CALENDAR, DavWeb, Invalid, NotFound
from gk.web import calendar_events as ev

ALICE, BOB, CAROL = "alice@x.example", "bob@x.example", "carol@x.example"


def share(user: str, owner: str, collection: str) -> str:
    """Alice shares her calendar with Bob, read only."""
    return "r" if (user, owner, collection) == (BOB, ALICE, "calendar") else ""


class SharingDAV(DAVService):
    def configuration(self) -> Any:
        configuration = super().configuration()
        configuration.update({"rights": {"type": Rights.factory(share)}}, "test", privileged=True)
        return configuration


@pytest.fixture
def api(tmp_path):
    svc = SharingDAV(make_context(tmp_path))
    yield DavWeb(svc)
    svc.stop(0)


def event(title: str, day: str = "2026-03-02") -> Any:
    form = ev.EventForm(title=title, start_date=day, end_date=day, timezone="Europe/Paris")
    return ev.build_event(form)


def test_shared_calendar_is_listed_read_only(api):
    for user in (ALICE, BOB, CAROL):
        api.ensure(user)
    api.save(ALICE, f"{ALICE}/calendar", event("Family dinner"))
    bob_books = api.books(BOB, CALENDAR)
    shared = [b for b in bob_books if b.owner == ALICE]
    assert [(b.name, b.writable) for b in shared] == [("calendar", False)]
    assert [e.text for e in api.entries(BOB, shared[0]) if "Family dinner" in e.text]
    with pytest.raises(NotFound):
        api.save(BOB, f"{ALICE}/calendar", event("Bob was here"))
    with pytest.raises(NotFound):
        api.book(BOB, f"{ALICE}/tasks")
    assert all(b.owner == CAROL for b in api.books(CAROL, CALENDAR))
    with pytest.raises(NotFound):
        api.book(CAROL, f"{ALICE}/calendar")
    (entry,) = api.entries(ALICE, api.book(ALICE, f"{ALICE}/calendar"))
    with pytest.raises(NotFound):
        api.delete(BOB, f"{ALICE}/calendar", entry.href)
    with pytest.raises(NotFound):
        api.entry(CAROL, f"{ALICE}/calendar", entry.href)
    assert api.entry(BOB, f"{ALICE}/calendar", entry.href).uid == entry.uid


def test_import_is_all_or_nothing_and_task_list_refuses_events(api):
    api.ensure(ALICE)
    good = event("Good").serialize()
    bad = good.replace("SUMMARY:Good", "SUMMARY:Bad\r\nDTEND:not-a-date")
    both = good.replace("END:VCALENDAR\r\n", "") + bad[bad.index("BEGIN:VEVENT") :].replace("UID:", "UID:b-")
    with pytest.raises(Invalid):
        api.import_text(ALICE, f"{ALICE}/calendar", both)
    assert api.entries(ALICE, api.book(ALICE, f"{ALICE}/calendar")) == []
    assert api.import_text(ALICE, f"{ALICE}/calendar", good) == (1, 0)
    assert api.import_text(ALICE, f"{ALICE}/calendar", good) == (0, 1)
    with pytest.raises(Invalid) as info:
        api.save(ALICE, f"{ALICE}/tasks", event("Not a task"))
    assert "VEVENT" in str(info.value)
    with pytest.raises(Invalid):
        api.import_text(ALICE, f"{ALICE}/contacts", good)
    with pytest.raises(NotFound):
        api.book(ALICE, "../etc/passwd")
    with pytest.raises(NotFound):
        api.entry(ALICE, f"{ALICE}/calendar", "../../x.ics")


def test_time_range_query_finds_repeating_events_started_long_ago(api):
    import datetime as dt

    api.ensure(ALICE)
    form = ev.EventForm(title="Birthday", all_day=True, start_date="1990-05-17", end_date="1990-05-17", repeat="YEARLY")
    api.save(ALICE, f"{ALICE}/calendar", ev.build_event(form))
    api.save(ALICE, f"{ALICE}/calendar", event("Once in 2026", "2026-03-02"))
    book = api.book(ALICE, f"{ALICE}/calendar")

    def titles(first: str, last: str) -> list[str]:
        lo = int(dt.datetime.fromisoformat(first + "T00:00:00+00:00").timestamp())
        hi = int(dt.datetime.fromisoformat(last + "T00:00:00+00:00").timestamp())
        return sorted(ev.parse(e.text).vevent.summary.value for e in api.entries(ALICE, book, lo, hi))

    # candidates: an endless rule meets every window; a single event only its own
    assert titles("2031-05-01", "2031-06-01") == ["Birthday"]
    assert titles("2026-03-01", "2026-03-03") == ["Birthday", "Once in 2026"]
    assert titles("2026-04-01", "2026-05-01") == ["Birthday"]
    assert titles("1980-01-01", "1981-01-01") == []


def test_import_keeps_time_zones_of_each_object(api):
    api.ensure(ALICE)
    tz = (
        "BEGIN:VTIMEZONE\r\nTZID:Custom/Island\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\n"
        "TZOFFSETFROM:+0530\r\nTZOFFSETTO:+0530\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    )
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n" + tz + "BEGIN:VEVENT\r\nUID:tz-1\r\n"
        "DTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Custom/Island:20260302T090000\r\nDURATION:PT1H\r\n"
        "SUMMARY:Island time\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:tz-2\r\nDTSTAMP:20260101T000000Z\r\n"
        "DTSTART:20260302T090000Z\r\nSUMMARY:UTC\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    assert api.import_text(ALICE, f"{ALICE}/calendar", text) == (2, 0)
    stored = {e.uid: e for e in api.entries(ALICE, api.book(ALICE, f"{ALICE}/calendar"))}
    island = stored["tz-1"]
    assert "BEGIN:VTIMEZONE" in island.text and "TZID:Custom/Island" in island.text
    assert "BEGIN:VTIMEZONE" not in stored["tz-2"].text
    # 09:00 at +05:30 is 03:30 UTC: the indexed range says so
    import datetime as dt

    assert island.start == int(dt.datetime(2026, 3, 2, 3, 30, tzinfo=dt.UTC).timestamp())


def test_a_family_calendar_is_listed_once_to_its_owner_and_its_member(tmp_path):
    """The wizard's Family calendar (real shares, as ``gk dav share`` makes them): each member's
    home lists the shared collection too, and the owner saw it twice in the web calendar."""
    svc = DAVService(make_context(tmp_path))
    try:
        web = DavWeb(svc)
        for user in (ALICE, BOB, CAROL):
            web.ensure(user)
        svc.create_shared(ALICE, {BOB: "rw"})
        alice = [(b.path, b.owner) for b in web.books(ALICE, CALENDAR) if b.has_events]
        assert alice == [(f"{ALICE}/calendar", ALICE), (f"{ALICE}/family", ALICE)]
        bob = [(b.path, b.writable) for b in web.books(BOB, CALENDAR) if b.has_events]
        assert bob == [(f"{BOB}/calendar", True), (f"{ALICE}/family", True)]
        assert [b.path for b in web.books(CAROL, CALENDAR) if b.has_events] == [f"{CAROL}/calendar"]
    finally:
        svc.stop(0)
