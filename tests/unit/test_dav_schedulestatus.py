"""RFC 6638 §3.2.9, §7.2, §7.3 on calendar texts (``gk.dav.itip``): the SCHEDULE-STATUS the server
writes into the copy that sent a scheduling message, a client's own value on a line the server
schedules ignored, none in an iTIP message, SCHEDULE-FORCE-SEND honoured and not stored; and
(``gk.dav.scheduletag``) those parameters never change a Schedule-Tag."""

from __future__ import annotations

from types import SimpleNamespace

from gk.dav import itip, scheduletag

ALICE, BOB, CAROL, DAVE = "alice@example.org", "bob@example.org", "carol@example.org", "dave@example.net"
EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:u1\r\nDTSTAMP:20260101T000000Z\r\n"
    "DTSTART:20990610T090000Z\r\nDTEND:20990610T100000Z\r\nSUMMARY:Plan\r\nSEQUENCE:0\r\n"
    "ORGANIZER{org}:mailto:{alice}\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:{alice}\r\n"
    "ATTENDEE;PARTSTAT={bob_ps}{bob}:mailto:{bob_address}\r\nATTENDEE;PARTSTAT=NEEDS-ACTION{carol}:mailto:{carol_address}\r\n"
    "ATTENDEE;SCHEDULE-AGENT=CLIENT{dave}:mailto:{dave_address}\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)


def event(org: str = "", bob: str = "", carol: str = "", dave: str = "", bob_ps: str = "NEEDS-ACTION") -> str:
    return EVENT.format(
        alice=ALICE,
        org=org,
        bob=bob,
        carol=carol,
        dave=dave,
        bob_ps=bob_ps,
        bob_address=BOB,
        carol_address=CAROL,
        dave_address=DAVE,
    )


def params(text: str, name: str, address: str) -> dict[str, list[str]]:
    for ev in itip._events(text):
        for line in ev.contents.get(name, []):
            if itip._address(str(line.value)) == address:
                return {k.upper(): list(v) for k, v in line.params.items()}
    raise AssertionError(f"no {name} {address}")


def test_the_organizers_copy_gets_the_status_of_each_message_sent() -> None:
    cal = itip.stamp_organizer_copy(event(), None, ALICE, {BOB: itip.DELIVERED, CAROL: itip.SENT})
    assert cal is not None
    text = cal.serialize()
    assert params(text, "attendee", BOB)["SCHEDULE-STATUS"] == ["1.2"]
    assert params(text, "attendee", CAROL)["SCHEDULE-STATUS"] == ["1.1"]
    assert "SCHEDULE-STATUS" not in params(text, "attendee", ALICE)  # the organizer herself: nothing sent
    assert "SCHEDULE-STATUS" not in params(text, "attendee", DAVE)  # the client schedules dave
    # written as it is: nothing to write again
    assert itip.stamp_organizer_copy(text, text, ALICE, {BOB: itip.DELIVERED, CAROL: itip.SENT}) is None
    # nothing sent, no status anywhere: not even parsed
    assert itip.stamp_organizer_copy(event(), None, ALICE, {}) is None


def test_a_clients_status_on_a_line_the_server_schedules_is_not_kept() -> None:
    """§7.3: the server's value stands on the lines it schedules (what it stored before, or none);
    a line the client schedules (SCHEDULE-AGENT=CLIENT) keeps the client's."""
    stored = event(bob=";SCHEDULE-STATUS=1.2")
    sent = event(bob=";SCHEDULE-STATUS=5.3", carol=";SCHEDULE-STATUS=2.0", dave=";SCHEDULE-STATUS=1.1")
    cal = itip.stamp_organizer_copy(sent, stored, ALICE, {})
    assert cal is not None
    text = cal.serialize()
    assert params(text, "attendee", BOB)["SCHEDULE-STATUS"] == ["1.2"]  # the stored one
    assert "SCHEDULE-STATUS" not in params(text, "attendee", CAROL)  # none stored
    assert params(text, "attendee", DAVE)["SCHEDULE-STATUS"] == ["1.1"]  # the client's line
    # a new message overrides what was stored
    cal = itip.stamp_organizer_copy(sent, stored, ALICE, {BOB: itip.INVALID_USER})
    assert cal is not None and params(cal.serialize(), "attendee", BOB)["SCHEDULE-STATUS"] == ["3.7"]
    # a client dropping the server's status gets it back (also with no scheduling parameter left)
    plain = event().replace(f"ATTENDEE;SCHEDULE-AGENT=CLIENT:mailto:{DAVE}\r\n", "")
    assert "SCHEDULE-" not in plain
    cal = itip.stamp_organizer_copy(plain, stored, ALICE, {})
    assert cal is not None and params(cal.serialize(), "attendee", BOB)["SCHEDULE-STATUS"] == ["1.2"]
    cal = itip.stamp_organizer_copy(event(), stored, ALICE, {})
    assert cal is not None and params(cal.serialize(), "attendee", BOB)["SCHEDULE-STATUS"] == ["1.2"]


def test_the_attendees_copy_gets_the_status_of_their_reply_on_the_organizer() -> None:
    cal = itip.stamp_attendee_copy(event(bob_ps="ACCEPTED"), event(), itip.DELIVERED)
    assert cal is not None
    assert params(cal.serialize(), "organizer", ALICE)["SCHEDULE-STATUS"] == ["1.2"]
    stored = cal.serialize()
    # no REPLY this time (an alarm changed): a client's value gives way to the stored one
    cal = itip.stamp_attendee_copy(event(org=";SCHEDULE-STATUS=2.0", bob_ps="ACCEPTED"), stored, None)
    assert cal is not None and params(cal.serialize(), "organizer", ALICE)["SCHEDULE-STATUS"] == ["1.2"]
    assert itip.stamp_attendee_copy(stored, stored, None) is None
    # a client that drops it (no scheduling parameter left in its text) gets it back too
    plain = event(bob_ps="ACCEPTED").replace(f"ATTENDEE;SCHEDULE-AGENT=CLIENT:mailto:{DAVE}\r\n", "")
    assert "SCHEDULE-" not in plain
    cal = itip.stamp_attendee_copy(plain, stored, None)
    assert cal is not None and params(cal.serialize(), "organizer", ALICE)["SCHEDULE-STATUS"] == ["1.2"]
    # the client schedules its replies itself: its value stays
    client = event(org=";SCHEDULE-AGENT=CLIENT;SCHEDULE-STATUS=2.0")
    assert itip.stamp_attendee_copy(client, None, None) is None


def test_no_status_in_an_itip_message() -> None:
    text = event(org=";SCHEDULE-STATUS=1.2", bob=";SCHEDULE-STATUS=1.2;SCHEDULE-FORCE-SEND=REQUEST")
    ical, _ = itip.itip_calendar(text, "REQUEST")
    assert "SCHEDULE-STATUS" not in ical and "SCHEDULE-FORCE-SEND" not in ical and "PARTSTAT" in ical
    import datetime as dt

    import vobject

    out = vobject.iCalendar()
    (ev,) = itip._events(text)
    itip.reply_component(out, ev, BOB, "ACCEPTED", dt.datetime(2026, 1, 1, tzinfo=vobject.icalendar.utc))
    assert "SCHEDULE-STATUS" not in out.serialize()


def test_schedule_force_send() -> None:
    """§7.2: REQUEST on an ATTENDEE sends them the unchanged event again, REPLY on the ORGANIZER
    of an attendee's copy sends the unchanged answer again; removed from what is stored."""
    old = event()
    forced = event(carol=";SCHEDULE-FORCE-SEND=REQUEST")
    assert itip.plan(ALICE, old, old) == []
    assert itip.plan(ALICE, old, forced) == [("REQUEST", {CAROL})]
    cal = itip.stamp_organizer_copy(forced, old, ALICE, {CAROL: itip.SENT})
    assert cal is not None and "SCHEDULE-FORCE-SEND" not in cal.serialize()
    accepted = event(bob_ps="ACCEPTED")
    assert itip.attendee_reply(BOB, accepted, accepted) is None
    again = event(org=";SCHEDULE-FORCE-SEND=REPLY", bob_ps="ACCEPTED")
    assert itip.attendee_reply(BOB, accepted, again) == "ACCEPTED"
    cal = itip.stamp_attendee_copy(again, accepted, itip.SENT)
    assert cal is not None and "SCHEDULE-FORCE-SEND" not in cal.serialize()


def test_the_servers_parameters_never_change_a_schedule_tag() -> None:
    """A client round-tripping, dropping or changing SCHEDULE-STATUS on the ORGANIZER of an
    attendee's copy (the server's), with its answer, keeps the tag (§3.2.10)."""
    bob = scheduletag_owner(BOB)
    stored = event(org=";SCHEDULE-STATUS=1.2")
    for sent in (event(bob_ps="ACCEPTED"), event(org=";SCHEDULE-STATUS=2.0", bob_ps="ACCEPTED")):
        assert scheduletag.decide(bob, stored, '"t"', sent) == '"t"'
    assert scheduletag.decide(bob, stored, '"t"', event(carol=";SCHEDULE-STATUS=1.1")) == '"t"'
    assert scheduletag.decide(bob, stored, '"t"', event().replace("Plan", "Mine")) != '"t"'


def scheduletag_owner(address: str):  # type: ignore[no-untyped-def]
    return lambda other: other.lower() == address


class _Accounts:
    def is_local_domain(self, domain: str) -> bool:
        return domain == "example.org"

    def resolve_recipient(self, address: str, roles: bool = True):  # type: ignore[no-untyped-def]
        return SimpleNamespace(address=BOB) if address == BOB else None


class _Services:
    def __init__(self, queue: bool):
        self.queue = queue

    def maybe(self, cls):  # type: ignore[no-untyped-def]
        return object() if self.queue else None


def test_the_status_of_a_mailed_message_is_what_submission_will_make_of_it() -> None:
    """1.1 for an address outside (queued), or a user of the box with no calendar (their INBOX);
    3.7 for no one in a domain of the box, or no address at all (no domain, brackets); 5.2 for
    an address outside when the box has no outbound queue."""
    scheduler = itip.Scheduler(SimpleNamespace(accounts=_Accounts(), services=_Services(queue=True)))  # type: ignore[arg-type]
    assert scheduler._mail_status(DAVE) == itip.SENT
    assert scheduler._mail_status(BOB) == itip.SENT
    for bad in ("nobody@example.org", "no-domain", "a b@example.net", "<x@example.net>", "@example.net"):
        assert scheduler._mail_status(bad) == itip.INVALID_USER, bad
    offline = itip.Scheduler(SimpleNamespace(accounts=_Accounts(), services=_Services(queue=False)))  # type: ignore[arg-type]
    assert offline._mail_status(DAVE) == itip.NO_WAY
    assert offline._mail_status(BOB) == itip.SENT


def test_a_refused_submission_is_a_status() -> None:
    assert itip.refused_status("552 5.2.2 <f@example.org>: this message does not fit in the mailbox's quota") == "5.1"
    assert itip.refused_status("451 4.3.0 Could not queue the message (disk); try again later") == "5.1"
    assert itip.refused_status("550 5.1.1 <x@example.org>: no such user here") == "3.7"
    assert itip.refused_status("553 5.1.3 Message not queued: bad address") == "3.7"
    assert itip.refused_status("554 5.3.0 Message not queued: refused") == "5.2"
