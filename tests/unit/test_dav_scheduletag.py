"""RFC 6638 §3.2.10 Schedule-Tag rules of ``gk.dav.scheduletag`` on calendar texts: which writes
give a scheduling object a new tag, and the organizer's-copy merge of ``If-Schedule-Tag-Match``."""

from __future__ import annotations

from gk.dav import scheduletag

ALICE, BOB, CAROL = "alice@example.org", "bob@example.org", "carol@example.org"
EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:u1\r\nDTSTAMP:20260101T000000Z\r\n"
    "DTSTART:20260610T090000Z\r\nDTEND:20260610T100000Z\r\nSUMMARY:Plan\r\nSEQUENCE:0\r\n"
    "ORGANIZER:mailto:{alice}\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:{alice}\r\n"
    "ATTENDEE;PARTSTAT={bob_ps};RSVP=TRUE:mailto:{bob}\r\nATTENDEE;PARTSTAT={carol_ps}:mailto:{carol}\r\n"
    "{extra}END:VEVENT\r\nEND:VCALENDAR\r\n"
)


def event(bob: str = "NEEDS-ACTION", carol: str = "NEEDS-ACTION", extra: str = "") -> str:
    return EVENT.format(alice=ALICE, bob=BOB, carol=CAROL, bob_ps=bob, carol_ps=carol, extra=extra)


def owner(address: str):  # type: ignore[no-untyped-def]
    return lambda other: other.lower() == address


def test_organizer_found_without_a_parse() -> None:
    assert scheduletag.organizer(event()) == ALICE
    assert (
        scheduletag.organizer(event().replace(f"ORGANIZER:mailto:{ALICE}", 'ORGANIZER;CN="A: B":MAILTO:X@Y')) == "x@y"
    )
    assert scheduletag.organizer(event().replace(f"ORGANIZER:mailto:{ALICE}\r\n", "")) is None
    assert scheduletag.organizer("BEGIN:VCALENDAR\r\nX-ORGANIZERS:1\r\nEND:VCALENDAR\r\n") is None


def test_an_attendees_own_changes_keep_the_tag_anything_else_renews_it() -> None:
    old = event()
    bob = owner(BOB)
    assert scheduletag.decide(bob, old, '"t"', event(bob="ACCEPTED").replace(";RSVP=TRUE", "")) == '"t"'
    alarm = "TRANSP:TRANSPARENT\r\nX-MOZ-LASTACK:20260101T000000Z\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:x\r\nTRIGGER:-PT5M\r\nEND:VALARM\r\n"
    assert scheduletag.decide(bob, old, '"t"', event(extra=alarm)) == '"t"'
    for other in (
        event(carol="ACCEPTED"),
        event().replace("SUMMARY:Plan", "SUMMARY:Mine"),
        event(extra="LOCATION:x\r\n"),
    ):
        assert scheduletag.decide(bob, old, '"t"', other) not in ('"t"', None)
    # the organizer's client: always a new tag, even for an alarm; the server's writes as told
    assert scheduletag.decide(owner(ALICE), old, '"t"', event(extra=alarm)) != '"t"'
    reset = scheduletag.SCHEDULE_TAG.set("keep")
    try:
        assert scheduletag.decide(owner(ALICE), old, '"t"', event(bob="ACCEPTED")) == '"t"'
    finally:
        scheduletag.SCHEDULE_TAG.reset(reset)
    reset = scheduletag.SCHEDULE_TAG.set("new")
    try:
        assert scheduletag.decide(bob, old, '"t"', event(bob="ACCEPTED")) != '"t"'
    finally:
        scheduletag.SCHEDULE_TAG.reset(reset)
    # no ORGANIZER: no tag; a first write: a new one
    assert scheduletag.decide(bob, old, '"t"', old.replace(f"ORGANIZER:mailto:{ALICE}\r\n", "")) is None
    assert scheduletag.decide(bob, None, None, old) not in (None, '"t"')


def test_merge_keeps_the_answers_the_server_stored_unless_the_organizer_changed_the_instance() -> None:
    stored = event(bob="ACCEPTED", carol="DECLINED").replace(";RSVP=TRUE", "")
    sent = event(extra="DESCRIPTION:agenda\r\n")  # from before the answers
    merged = scheduletag.merge(stored, sent, owner(ALICE))
    assert merged is not None and "agenda" in merged
    unfolded = merged.replace("\r\n ", "")
    assert f"PARTSTAT=ACCEPTED:mailto:{BOB}" in unfolded and f"PARTSTAT=DECLINED:mailto:{CAROL}" in unfolded
    assert "RSVP" not in unfolded
    moved = sent.replace("DTSTART:20260610T09", "DTSTART:20260611T09")
    assert scheduletag.merge(stored, moved, owner(ALICE)) is None  # her reschedule: the answers are hers to reset
    assert scheduletag.merge(stored, stored, owner(ALICE)) is None
    assert scheduletag.merge(stored, sent, owner(BOB)) is None  # not his event: nothing merged
