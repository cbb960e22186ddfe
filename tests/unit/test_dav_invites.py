"""gk.dav.invites without a server: what the reader shows of an iTIP object and the REPLY it sends."""

from __future__ import annotations

import datetime as dt

import vobject

from gk.dav import invites

REQUEST = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Remote//EN\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\n"
    "UID:u-1@remote.example\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260715T080000Z\r\n"
    "DURATION:PT1H\r\nSEQUENCE:3\r\nSUMMARY:Board\r\nLOCATION:Room 4\r\nRRULE:FREQ=WEEKLY;COUNT=3\r\n"
    "ORGANIZER;CN=Olga:mailto:org@remote.example\r\n"
    "ATTENDEE;CN=Bob;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:Bob@Example.org\r\n"
    "ATTENDEE;PARTSTAT=ACCEPTED:mailto:eve@example.org\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)


def own(address: str) -> bool:
    return address == "bob@example.org"


def test_parse_shows_the_event_and_finds_the_reader() -> None:
    inv = invites.parse(REQUEST, own)
    assert inv is not None
    assert (inv.method, inv.uid, inv.sequence, inv.summary, inv.location) == (
        "REQUEST",
        "u-1@remote.example",
        3,
        "Board",
        "Room 4",
    )
    assert inv.start == dt.datetime(2026, 7, 15, 8, tzinfo=inv.start.tzinfo)  # type: ignore[union-attr]
    assert inv.end is not None and inv.end - inv.start == dt.timedelta(hours=1)  # type: ignore[operator]
    assert inv.recurring and not inv.all_day
    assert inv.organizer == invites.Person("org@remote.example", "Olga", "NEEDS-ACTION")
    assert inv.me == invites.Person("bob@example.org", "Bob", "NEEDS-ACTION")
    assert [a.partstat for a in inv.attendees] == ["NEEDS-ACTION", "ACCEPTED"]


def test_not_an_invitation() -> None:
    assert invites.parse(REQUEST.replace("METHOD:REQUEST", "METHOD:PUBLISH"), own) is None
    assert invites.parse("BEGIN:VCALENDAR\r\nnot ical", own) is None
    assert invites.parse(REQUEST.replace("UID:u-1@remote.example\r\n", ""), own) is None


def test_reply_carries_only_the_replying_attendee() -> None:
    inv = invites.parse(REQUEST, own)
    assert inv is not None
    reply = vobject.readOne(invites.reply_calendar(inv, "TENTATIVE"))
    assert reply.method.value == "REPLY"
    (ev,) = reply.vevent_list
    assert ev.uid.value == "u-1@remote.example" and ev.sequence.value == "3"
    assert [str(a.value) for a in ev.attendee_list] == ["mailto:bob@example.org"]
    assert ev.attendee.params["PARTSTAT"] == ["TENTATIVE"]
    assert str(ev.organizer.value) == "mailto:org@remote.example"
    raw = invites.reply_message(inv, "TENTATIVE", invites.reply_calendar(inv, "TENTATIVE"))
    assert b"Subject: Tentative: Board" in raw and b"method=REPLY" in raw.replace(b'"', b"")
