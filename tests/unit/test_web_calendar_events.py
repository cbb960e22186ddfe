"""The web calendar's reading of calendar objects (``gk.web.calendar_events``): recurrence with
EXDATE and RECURRENCE-ID overrides, all-day and floating times, time zones across a DST change,
and the edit form's round trip keeping what it does not show."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from gk.dav.webapi import Book, Entry
from gk.web import calendar_events as ev

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
BOOK = Book("a@x/calendar", "a@x", "calendar", "Calendar", "#1d5fd1", "VCALENDAR", frozenset({"VEVENT"}), True)


def entry(body: str) -> Entry:
    text = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n" + body + "END:VCALENDAR\r\n"
    return Entry(BOOK, "e.ics", '"x"', "u", text, "VEVENT", 0, 2**31)


def window(first: str, last: str) -> tuple[dt.datetime, dt.datetime]:
    return (
        dt.datetime.combine(dt.date.fromisoformat(first), dt.time(0), PARIS),
        dt.datetime.combine(dt.date.fromisoformat(last), dt.time(0), PARIS),
    )


def test_weekly_rule_with_exdate_and_moved_occurrence():
    e = entry(
        "BEGIN:VEVENT\r\nUID:u\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260302T090000Z\r\nDTEND:20260302T100000Z\r\n"
        "RRULE:FREQ=WEEKLY;COUNT=5\r\nEXDATE:20260309T090000Z\r\nSUMMARY:Standup\r\nEND:VEVENT\r\n"
        "BEGIN:VEVENT\r\nUID:u\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:20260316T090000Z\r\n"
        "DTSTART:20260317T150000Z\r\nDTEND:20260317T160000Z\r\nSUMMARY:Standup moved\r\nEND:VEVENT\r\n"
    )
    occ = sorted(ev.occurrences(e, *window("2026-03-01", "2026-04-30"), PARIS), key=lambda o: o.sort_key())
    got = [(o.start.strftime("%m-%d %H:%M"), o.title) for o in occ]
    # 9 March excluded, 16 March moved to the 17th; local times follow the DST change of 29 March
    assert got == [
        ("03-02 10:00", "Standup"),
        ("03-17 16:00", "Standup moved"),
        ("03-23 10:00", "Standup"),
        ("03-30 11:00", "Standup"),
    ]


def test_zoned_event_keeps_wall_clock_across_dst_and_window_bounds():
    e = entry(
        "BEGIN:VTIMEZONE\r\nTZID:Europe/Paris\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
        "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\n"
        "BEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r\n"
        "TZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n"
        "BEGIN:VEVENT\r\nUID:u\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Europe/Paris:20260326T090000\r\n"
        "DURATION:PT1H\r\nRRULE:FREQ=DAILY\r\nSUMMARY:Daily\r\nEND:VEVENT\r\n"
    )
    occ = ev.occurrences(e, *window("2026-03-27", "2026-03-31"), PARIS)
    assert [o.start.strftime("%d %H:%M") for o in sorted(occ, key=lambda o: o.sort_key())] == [
        "27 09:00",
        "28 09:00",
        "29 09:00",
        "30 09:00",
    ]
    # an endless rule is bounded by the window, not expanded forever
    occ = ev.occurrences(e, *window("2036-01-01", "2036-01-03"), PARIS)
    assert len(occ) == 2


def test_all_day_and_floating():
    e = entry(
        "BEGIN:VEVENT\r\nUID:u\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;VALUE=DATE:20260320\r\n"
        "DTEND;VALUE=DATE:20260323\r\nSUMMARY:Trip\r\nEND:VEVENT\r\n"
    )
    (occ,) = ev.occurrences(e, *window("2026-03-01", "2026-04-01"), PARIS)
    assert occ.all_day and occ.days() == [dt.date(2026, 3, 20), dt.date(2026, 3, 21), dt.date(2026, 3, 22)]
    assert ev.occurrences(e, *window("2026-03-23", "2026-03-30"), PARIS) == []  # DTEND is exclusive
    floating = entry(
        "BEGIN:VEVENT\r\nUID:u\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260320T083000\r\n"
        "DTEND:20260320T093000\r\nSUMMARY:Float\r\nEND:VEVENT\r\n"
    )
    (occ,) = ev.occurrences(floating, *window("2026-03-20", "2026-03-21"), PARIS)
    assert occ.start.strftime("%H:%M") == "08:30"  # as written, in the viewer's zone


def test_yearly_all_day_birthday_rule():
    e = entry(
        "BEGIN:VEVENT\r\nUID:u\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;VALUE=DATE:19900517\r\n"
        "RRULE:FREQ=YEARLY\r\nSUMMARY:Birthday\r\nEND:VEVENT\r\n"
    )
    (occ,) = ev.occurrences(e, *window("2026-05-01", "2026-06-01"), PARIS)
    assert occ.start == dt.date(2026, 5, 17) and occ.all_day and occ.recurring


def test_broken_object_shows_nothing_instead_of_failing():
    assert (
        ev.occurrences(
            entry("BEGIN:VEVENT\r\nUID:u\r\nDTSTART:garbage\r\nEND:VEVENT\r\n"),
            *window("2026-01-01", "2027-01-01"),
            PARIS,
        )
        == []
    )


def test_form_round_trip_keeps_unknown_properties_and_custom_rules():
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//phone//EN\r\nBEGIN:VEVENT\r\nUID:keep-1\r\n"
        "DTSTAMP:20260101T000000Z\r\nDTSTART:20260302T090000Z\r\nDTEND:20260302T100000Z\r\n"
        "RRULE:FREQ=WEEKLY;BYDAY=MO,WE\r\nSUMMARY:Gym\r\nX-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC\r\n"
        "BEGIN:VALARM\r\nACTION:AUDIO\r\nTRIGGER;VALUE=DATE-TIME:20260301T080000Z\r\nEND:VALARM\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    form = ev.form_from_event(text, "Europe/Paris")
    assert form.custom_rule == "FREQ=WEEKLY;BYDAY=MO,WE" and form.repeat == ""
    assert (form.start_date, form.start_time, form.timezone) == ("2026-03-02", "10:00", "Europe/Paris")
    form.title = "Gym (renamed)"
    form.reminder = "30"
    ev.check_form(form)
    out = ev.build_event(form, text).serialize()
    assert "UID:keep-1" in out and "RRULE:FREQ=WEEKLY;BYDAY=MO,WE" in out
    assert "X-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC" in out and "ACTION:AUDIO" in out
    assert "TRIGGER:-PT30M" in out and "SEQUENCE:1" in out and "SUMMARY:Gym (renamed)" in out
    assert "DTSTART;TZID=Europe/Paris:20260302T100000" in out


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"title": ""}, "title"),
        ({"end_date": "2026-03-01"}, "end_date"),
        ({"start_date": "March 2"}, "start_date"),
        ({"start_date": "0001-01-01"}, "start_date"),
        ({"start_time": "25:00"}, "start_time"),
        ({"timezone": "Nowhere/Land"}, "timezone"),
        ({"repeat": "HOURLY"}, "repeat"),
        ({"repeat": "DAILY", "repeat_end": "count", "count": "0"}, "count"),
        ({"repeat": "DAILY", "repeat_end": "until", "until": "2026-01-01"}, "until"),
        ({"reminder": "-5"}, "reminder"),
        ({"attendees": "bob@example.org, not an address"}, "attendees"),
    ],
)
def test_form_refusals(fields, error):
    form = ev.EventForm(title="x", start_date="2026-03-02", end_date="2026-03-02", timezone="Europe/Paris")
    for k, v in fields.items():
        setattr(form, k, v)
    with pytest.raises(ev.FormError) as info:
        ev.check_form(form)
    assert info.value.name == error


def test_until_is_inclusive_of_the_last_day_in_utc():
    form = ev.EventForm(
        title="x",
        start_date="2026-03-02",
        end_date="2026-03-02",
        start_time="23:30",
        end_time="23:45",
        timezone="Europe/Paris",
        repeat="DAILY",
        repeat_end="until",
        until="2026-03-04",
    )
    ev.check_form(form)
    text = ev.build_event(form).serialize()
    assert "UNTIL=20260304T225959Z" in text
    e = Entry(BOOK, "e.ics", '"x"', "u", text, "VEVENT", 0, 2**31)
    assert len(ev.occurrences(e, *window("2026-03-01", "2026-03-10"), PARIS)) == 3


def test_week_grid_blocks_and_lanes():
    from gk.web.calendar import _slots

    def occ(start: str, end: str) -> ev.Occurrence:
        return ev.Occurrence(
            BOOK,
            "h",
            "u",
            "x",
            dt.datetime.fromisoformat(start).replace(tzinfo=PARIS),
            dt.datetime.fromisoformat(end).replace(tzinfo=PARIS),
            False,
        )

    day = dt.date(2026, 3, 29)  # 23 hours: the grid follows the wall clock
    blocks, lanes = _slots(
        day,
        [
            occ("2026-03-29T09:00", "2026-03-29T10:00"),
            occ("2026-03-29T09:30", "2026-03-29T11:00"),
            occ("2026-03-29T10:00", "2026-03-29T10:15"),
            occ("2026-03-28T22:00", "2026-03-29T01:00"),  # from the day before
            occ("2026-03-29T23:50", "2026-03-30T08:00"),  # into the next day
        ],
        PARIS,
    )
    got = sorted((b.row, b.span, b.lane) for b in blocks)
    assert got == [(1, 4, 0), (37, 4, 0), (39, 6, 1), (41, 1, 0), (96, 1, 0)]
    assert lanes == 2


def test_one_occurrence_of_an_all_day_series_changed_then_deleted():
    form = ev.EventForm(
        title="Market", all_day=True, start_date="2026-03-07", end_date="2026-03-07", repeat="WEEKLY", timezone="UTC"
    )
    text = ev.build_event(form).serialize()
    one = ev.form_from_event(text, "Europe/Paris", "20260314")
    assert (one.start_date, one.end_date, one.all_day, one.repeat) == ("2026-03-14", "2026-03-14", True, "")
    one.title, one.start_date, one.end_date = "Market (Sunday)", "2026-03-15", "2026-03-15"
    text = ev.build_event(one, text, "20260314").serialize()
    assert "RECURRENCE-ID;VALUE=DATE:20260314" in text
    e = Entry(BOOK, "e.ics", '"x"', "u", text, "VEVENT", 0, 2**31)
    got = sorted((o.start.isoformat(), o.title) for o in ev.occurrences(e, *window("2026-03-01", "2026-03-22"), PARIS))
    assert got == [("2026-03-07", "Market"), ("2026-03-15", "Market (Sunday)"), ("2026-03-21", "Market")]
    # the form of that occurrence now shows the override; deleting it leaves an EXDATE, no override
    assert ev.form_from_event(text, "UTC", "20260314").title == "Market (Sunday)"
    text = ev.skip_occurrence(text, "20260314").serialize()
    assert "RECURRENCE-ID" not in text and "EXDATE;VALUE=DATE:20260314" in text
    e = Entry(BOOK, "e.ics", '"x"', "u", text, "VEVENT", 0, 2**31)
    assert len(ev.occurrences(e, *window("2026-03-01", "2026-03-22"), PARIS)) == 2
