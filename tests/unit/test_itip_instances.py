"""iTIP for one occurrence of a repeating event (``gk.dav.itip.instance_sends``): cancelling or
moving one instance sends that instance alone, with its RECURRENCE-ID; a change of the series
sends the series."""

from __future__ import annotations

import zoneinfo

import vobject

from gk.dav import itip
from gk.web import calendar_events as events

ALICE, BOB, CAROL = "alice@example.org", "bob@example.org", "carol@example.org"


def series() -> str:
    form = events.EventForm(title="Standup", start_date="2026-03-23", start_time="09:00", end_date="2026-03-23",
                            end_time="09:30", timezone="Europe/Paris", repeat="WEEKLY", repeat_end="count",
                            count="4", attendees=BOB)  # fmt: skip
    return events.organized(events.build_event(form), ALICE, form).serialize()


def only_event(text: str) -> vobject.base.Component:
    [ev] = vobject.readOne(text).vevent_list
    return ev


def test_cancelling_one_occurrence_cancels_that_instance_only():
    old = series()
    new = events.skip_occurrence(old, "20260330T070000Z").serialize()  # 09:00 Paris, summer time
    [(method, who, text)] = itip.sends(ALICE, old, new)
    assert method == "CANCEL" and who == {BOB}
    ev = only_event(text)
    assert itip.instance_key(ev.recurrence_id.value) == "20260330T070000Z"
    assert "rrule" not in ev.contents and "exdate" not in ev.contents
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    assert ev.dtstart.value.astimezone(paris).hour == 9 and (ev.dtend.value - ev.dtstart.value).seconds == 1800
    assert "VTIMEZONE" in text
    ical, summary = itip.itip_calendar(text, method)
    assert "METHOD:CANCEL" in ical and "STATUS:CANCELLED" in ical and summary == "Standup"


def test_moving_one_occurrence_requests_that_instance_only():
    old = series()
    form = events.form_from_event(old, "Europe/Paris", rid="20260406T070000Z")
    form.start_time, form.end_time, form.attendees = "11:00", "11:30", f"{BOB}, {CAROL}"
    new = events.build_event(form, old, rid="20260406T070000Z").serialize()
    sent = itip.sends(ALICE, old, new)
    assert [(m, w) for m, w, _ in sent] == [("REQUEST", {BOB, CAROL})]
    ev = only_event(sent[0][2])
    assert itip.instance_key(ev.recurrence_id.value) == "20260406T070000Z" and ev.dtstart.value.hour == 11
    # that override changed again with carol taken off: she gets the instance's CANCEL, bob the REQUEST
    form.attendees, form.start_time, form.end_time = BOB, "12:00", "12:30"
    newer = events.build_event(form, new, rid="20260406T070000Z").serialize()
    sent = itip.sends(ALICE, new, newer)
    assert sorted((m, sorted(w)) for m, w, _ in sent) == [("CANCEL", [CAROL]), ("REQUEST", [BOB])]
    assert all(len(vobject.readOne(t).vevent_list) == 1 for _, _, t in sent)


def test_a_change_of_the_series_sends_the_series():
    old = series()
    form = events.form_from_event(old, "Europe/Paris")
    form.title = "Daily standup"
    new = events.build_event(form, old).serialize()
    [(method, who, text)] = itip.sends(ALICE, old, new)
    assert method == "REQUEST" and who == {BOB} and "RRULE:FREQ=WEEKLY;COUNT=4" in text
    assert itip.instance_sends(ALICE, old, new) is None
    assert itip.sends(BOB, old, new) == []  # not bob's event to schedule
