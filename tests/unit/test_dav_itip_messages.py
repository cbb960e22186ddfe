"""What ``gk.dav.itip.plan`` sends for each kind of write of an organized event (RFC 5546 methods)."""

from __future__ import annotations

from types import SimpleNamespace

from gk.dav.itip import itip_calendar, message, plan

ORG = "alice@x.example"


def event(
    attendees: str = "bob@x.example", summary: str = "Meet", start: str = "20260610T090000Z", **extra: str
) -> str:
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//t//t//EN",
        "BEGIN:VEVENT",
        "UID:u1",
        "DTSTAMP:20260101T000000Z",
        f"DTSTART:{start}",
        "DTEND:20260610T100000Z",
        f"SUMMARY:{summary}",
        f"ORGANIZER:mailto:{extra.get('organizer', ORG)}",
        f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{ORG}",
    ]
    for a in attendees.split(","):
        if a:
            lines.append(f"ATTENDEE;PARTSTAT={extra.get('partstat', 'NEEDS-ACTION')}:mailto:{a}")
    lines.append("ATTENDEE;SCHEDULE-AGENT=CLIENT:mailto:client@x.example")
    if "alarm" in extra:
        lines += ["BEGIN:VALARM", "ACTION:DISPLAY", "DESCRIPTION:x", f"TRIGGER:{extra['alarm']}", "END:VALARM"]
    lines += ["END:VEVENT", "END:VCALENDAR", ""]
    return "\r\n".join(lines)


def test_plan_follows_rfc5546() -> None:
    assert plan(ORG, None, event()) == [("REQUEST", {"bob@x.example"})]
    assert plan(ORG, event(alarm="-PT10M"), event(alarm="-PT20M")) == []  # only the organizer's alarm
    assert plan(ORG, event(), event(partstat="ACCEPTED")) == []  # an answer written back
    assert plan(ORG, event(), event(start="20260611T090000Z")) == [("REQUEST", {"bob@x.example"})]
    assert plan(ORG, event(), event(summary="Moved")) == [("REQUEST", {"bob@x.example"})]
    assert plan(ORG, event(), event("bob@x.example,carol@x.example")) == [("REQUEST", {"carol@x.example"})]
    assert plan(ORG, event("bob@x.example,carol@x.example"), event()) == [("CANCEL", {"carol@x.example"})]
    assert plan(ORG, event(), None) == [("CANCEL", {"bob@x.example"})]
    assert plan(ORG, None, event(organizer="eve@y.example")) == []  # not hers to send
    assert plan("bob@x.example", None, event()) == []  # an attendee's copy
    assert plan(ORG, None, "BEGIN:VCALENDAR\r\nnot ical") == []
    assert plan(ORG, None, event(attendees="")) == []


def test_itip_object_and_message() -> None:
    ical, summary = itip_calendar(event(alarm="-PT5M"), "CANCEL")
    assert summary == "Meet" and "METHOD:CANCEL" in ical and "STATUS:CANCELLED" in ical and "VALARM" not in ical
    raw = message(ORG, ["bob@x.example"], "CANCEL", ical, summary)
    assert b"\r\nSubject: Cancelled: Meet\r\n" in raw
    assert b'Content-Type: text/calendar; charset="utf-8"; method="CANCEL"' in raw


ANSWERED = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:u\r\nDTSTAMP:20260101T000000Z\r\n"
    "DTSTART:{day}T090000Z\r\nDTEND:{day}T100000Z\r\n{status}ORGANIZER:mailto:a@x.example\r\n"
    "ATTENDEE;PARTSTAT={partstat}:mailto:b@x.example\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def answered(day: str = "20990101", partstat: str = "NEEDS-ACTION", status: str = "") -> str:
    return ANSWERED.format(day=day, partstat=partstat, status=status)


def test_attendee_reply_only_for_an_answer_from_the_attendee() -> None:
    """RFC 6638 §3.2.2, attendee side: a changed PARTSTAT is answered, a deletion declines; not the
    organizer's own writes, an unchanged status, a cancelled event's removal, nor an old event
    uploaded already answered (a migration through a client)."""
    from gk.dav.itip import attendee_reply

    b = "b@x.example"
    assert attendee_reply(b, answered(), answered(partstat="ACCEPTED")) == "ACCEPTED"
    assert attendee_reply(b, None, answered(partstat="TENTATIVE")) == "TENTATIVE"
    assert attendee_reply(b, answered(partstat="ACCEPTED"), None) == "DECLINED"
    assert attendee_reply(b, answered(partstat="ACCEPTED"), answered(partstat="ACCEPTED")) is None
    assert attendee_reply(b, answered(), answered(partstat="NEEDS-ACTION")) is None
    assert attendee_reply(b, answered(partstat="DECLINED"), None) is None
    assert attendee_reply(b, answered(status="STATUS:CANCELLED\r\n"), None) is None
    assert attendee_reply(b, None, answered(day="20200101", partstat="ACCEPTED")) is None
    assert attendee_reply("a@x.example", answered(), answered(partstat="ACCEPTED")) is None
    assert attendee_reply("c@x.example", answered(), answered(partstat="ACCEPTED")) is None


def test_only_an_organizers_own_invitation_to_the_user_goes_to_the_scheduling_inbox() -> None:
    from gk.dav.itip import inbox_message

    request = answered().replace("VERSION:2.0\r\n", "VERSION:2.0\r\nMETHOD:REQUEST\r\n")
    assert inbox_message("b@x.example", "a@x.example", "REQUEST", request) == "u"
    assert inbox_message("b@x.example", "mallory@x.example", "REQUEST", request) is None  # not the organizer
    assert inbox_message("c@x.example", "a@x.example", "REQUEST", request) is None  # not invited
    assert inbox_message("b@x.example", "a@x.example", "CANCEL", request) is None  # the part lied about its method
    assert inbox_message("b@x.example", "a@x.example", "REQUEST", "BEGIN:VCALENDAR\r\nnot\r\n") is None


class _Accounts:
    """No user, no local domain: only a sender vouched for by DMARC is verified here."""

    def get_user(self, address: str) -> None:
        return None

    def resolve_recipient(self, address: str, roles: bool = True) -> None:
        return None

    def is_local_domain(self, domain: str) -> bool:
        return domain == "box.example"


CTX = SimpleNamespace(hostname="mx.box.example", authserv_id="mx.box.example", accounts=_Accounts())
# what the SMTP service writes for mail from outside that passed DMARC (gk.mail.authcheck)
PASSED = b"Authentication-Results: mx.box.example;\r\n\tdmarc=pass (p=none) header.from=example.org\r\n"


def test_a_delivered_invitation_announced_twice_is_applied_once() -> None:
    """A delivery is announced by its file in new/ and again by its UID when a sync indexes it:
    the scheduling inbox gets the invitation once (applied twice, one the user deleted between
    the two came back); the same bytes for another user are that user's own."""
    from gk.dav.itip import ReplyWatcher

    cal = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\n"
        "UID:twice-1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260102T100000Z\r\nSUMMARY:Twice\r\n"
        "ORGANIZER:mailto:ann@example.org\r\nATTENDEE:mailto:bob@example.org\r\n"
        "ATTENDEE:mailto:cat@example.org\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    raw = (
        "From: Ann <ann@example.org>\r\nTo: bob@example.org\r\nSubject: Invitation\r\n"
        'MIME-Version: 1.0\r\nContent-Type: text/calendar; method=REQUEST; charset="utf-8"\r\n\r\n' + cal
    ).encode()
    raw = PASSED + raw
    placed: list[tuple[str, str]] = []
    watcher = ReplyWatcher(CTX, lambda: None, lambda user, sender, uid, method, text: placed.append((user, uid)))  # type: ignore[arg-type]
    watcher._apply("bob@example.org", raw)
    watcher._apply("bob@example.org", raw)
    watcher._apply("cat@example.org", raw)
    assert placed == [("bob@example.org", "twice-1"), ("cat@example.org", "twice-1")]


def test_a_mail_already_scheduled_for_its_recipient_is_left_to_the_others() -> None:
    """The iTIP mail of an invitation applied synchronously to the local attendees names them in
    ``X-GK-Scheduled`` (``gk.dav.itip.Scheduler``): their watcher leaves it alone (applied again
    later it could undo a newer update), another recipient's still applies it."""
    from gk.dav.itip import ReplyWatcher, message, scheduled_for

    cal = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\n"
        "UID:marked-1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260102T100000Z\r\nSUMMARY:Marked\r\n"
        "ORGANIZER:mailto:ann@example.org\r\nATTENDEE:mailto:bob@example.org\r\n"
        "ATTENDEE:mailto:cat@example.org\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    raw = message(
        "ann@example.org", ["bob@example.org", "cat@example.org"], "REQUEST", cal, "Marked", ["Bob@Example.org"]
    )
    assert scheduled_for(raw) == {"bob@example.org"}
    assert scheduled_for(message("ann@example.org", ["bob@example.org"], "REQUEST", cal, "Marked")) == set()
    raw = PASSED + raw
    placed: list[tuple[str, str]] = []
    watcher = ReplyWatcher(CTX, lambda: None, lambda user, sender, uid, method, text: placed.append((user, uid)))  # type: ignore[arg-type]
    watcher._apply("bob@example.org", raw)
    watcher._apply("cat@example.org", raw)
    assert placed == [("cat@example.org", "marked-1")]


def test_occurrence_reply_only_for_an_occurrence_answered_alone() -> None:
    """RFC 6638 §3.2.2 for one occurrence: an override of the attendee's whose PARTSTAT differs
    from the series' (new) or from its own before is answered, in a REPLY of that occurrence
    alone; an override with the series' answer, or no answer, or the series' own change, is not;
    nor an alias's override without the alias known as the user's."""
    from gk.dav.itip import occurrence_reply

    b = "b@x.example"
    series = answered().replace("END:VEVENT", "RRULE:FREQ=WEEKLY;COUNT=3\r\nEND:VEVENT", 1)

    def with_override(partstat: str, who: str = b) -> str:
        override = answered(day="20990108", partstat=partstat).split("BEGIN:VEVENT", 1)[1].split("END:VEVENT")[0]
        override = override.replace("DTSTART", "RECURRENCE-ID:20990108T090000Z\r\nDTSTART", 1)
        return series.replace(
            "END:VCALENDAR", "BEGIN:VEVENT" + override.replace(b, who) + "END:VEVENT\r\nEND:VCALENDAR"
        )

    found = occurrence_reply(b, series, with_override("ACCEPTED"))
    assert found is not None and found[1] == "ACCEPTED", found
    reply = found[0].replace("\r\n ", "")
    assert "METHOD:REPLY" in reply and reply.count("BEGIN:VEVENT") == 1 and "RECURRENCE-ID" in reply
    assert f"PARTSTAT=ACCEPTED:mailto:{b}" in reply and "mailto:a@x.example\r\n" in reply  # the organizer only
    assert occurrence_reply(b, with_override("ACCEPTED"), with_override("ACCEPTED")) is None
    assert occurrence_reply(b, with_override("ACCEPTED"), with_override("DECLINED")) is not None
    assert occurrence_reply(b, series, with_override("NEEDS-ACTION")) is None
    assert occurrence_reply(b, series, series.replace("NEEDS-ACTION", "ACCEPTED")) is None  # attendee_reply's
    assert occurrence_reply("a@x.example", series, with_override("ACCEPTED")) is None  # the organizer
    assert occurrence_reply(b, series, with_override("ACCEPTED", "r@x.example")) is None


def test_an_occurrence_the_attendee_deletes_is_declined() -> None:
    """Thunderbird's "delete only this occurrence" on an invitation writes an EXDATE into the
    attendee's copy: the organizer gets a REPLY declining that occurrence (sabre/vobject's broker
    does the same), once; an override of it removed with the EXDATE is declined too."""
    from gk.dav.itip import occurrence_reply

    b = "b@x.example"
    series = answered(partstat="ACCEPTED").replace("END:VEVENT", "RRULE:FREQ=WEEKLY;COUNT=3\r\nEND:VEVENT", 1)
    dropped = series.replace("RRULE:", "EXDATE:20990108T090000Z\r\nRRULE:", 1)
    found = occurrence_reply(b, series, dropped)
    assert found is not None and found[1] == "DECLINED", found
    reply = found[0].replace("\r\n ", "")
    assert reply.count("BEGIN:VEVENT") == 1 and "RECURRENCE-ID:20990108T090000Z" in reply, reply
    assert "DTSTART:20990108T090000Z" in reply and "RRULE" not in reply and "EXDATE" not in reply
    assert f"PARTSTAT=DECLINED:mailto:{b}" in reply
    assert occurrence_reply(b, dropped, dropped) is None  # said once
    assert occurrence_reply("a@x.example", series, dropped) is None  # the organizer's own EXDATE
    override = answered(day="20990108", partstat="TENTATIVE").split("BEGIN:VEVENT", 1)[1].split("END:VEVENT")[0]
    override = override.replace("DTSTART", "RECURRENCE-ID:20990108T090000Z\r\nDTSTART", 1)
    with_override = series.replace("END:VCALENDAR", "BEGIN:VEVENT" + override + "END:VEVENT\r\nEND:VCALENDAR")
    found = occurrence_reply(b, with_override, dropped)
    assert found is not None and "PARTSTAT=DECLINED" in found[0].replace("\r\n ", ""), found


def test_an_invitation_from_an_unverified_sender_is_not_placed() -> None:
    """The watcher acts only on a sender the box vouches for (gk.mail.authcheck.sender): not on a
    bare From, a DMARC failure, another server's Authentication-Results, nor a From in the box's
    own domain that no user of the box submitted; nor does it apply a REPLY from one."""
    from gk.dav.itip import ReplyWatcher

    def invitation(organizer: str, head: bytes = b"", method: str = "REQUEST") -> bytes:
        cal = (
            f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nMETHOD:{method}\r\nBEGIN:VEVENT\r\n"
            "UID:forged-1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260102T100000Z\r\nSUMMARY:Forged\r\n"
            f"ORGANIZER:mailto:{organizer}\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@example.org\r\n"
            "END:VEVENT\r\nEND:VCALENDAR\r\n"
        )
        return (
            head
            + (
                f"From: <{organizer}>\r\nTo: bob@example.org\r\nSubject: Invitation\r\nMIME-Version: 1.0\r\n"
                f'Content-Type: text/calendar; method={method}; charset="utf-8"\r\n\r\n{cal}'
            ).encode()
        )

    placed: list[tuple[str, str]] = []
    replies: list[str] = []
    storage = SimpleNamespace()
    watcher = ReplyWatcher(CTX, lambda: storage, lambda user, sender, uid, method, text: placed.append((user, uid)))  # type: ignore[arg-type]
    failed = b"Authentication-Results: mx.box.example; dmarc=fail (p=reject) header.from=example.org\r\n"
    theirs = b"Authentication-Results: mx.other.example; dmarc=pass header.from=example.org\r\n"
    local = b"Authentication-Results: mx.box.example; dmarc=pass header.from=box.example\r\n"
    for raw in (
        invitation("ann@example.org"),
        invitation("ann@example.org", failed),
        invitation("ann@example.org", theirs),
        invitation("alice@box.example", local),
        invitation("ann@example.org", b"", "CANCEL"),
        invitation("", PASSED),  # no From address: nobody to vouch for, "" is never a sender
    ):
        watcher._apply("bob@example.org", raw)
    import gk.dav.itip as itip

    original = itip.apply_reply
    itip.apply_reply = lambda storage, user, sender, text, mine=(): bool(replies.append(sender))  # type: ignore[assignment]
    try:
        watcher._apply("bob@example.org", invitation("alice@box.example", local, "REPLY"))
        watcher._apply("bob@example.org", invitation("ann@example.org", failed, "REPLY"))
        assert replies == []
        watcher._apply("bob@example.org", invitation("ann@example.org", PASSED, "REPLY"))
        assert replies == ["ann@example.org"]  # the genuine one is applied (the test can fail)
    finally:
        itip.apply_reply = original
    assert placed == []
    watcher._apply("bob@example.org", invitation("ann@example.org", PASSED))
    assert placed == [("bob@example.org", "forged-1")]


def test_the_watcher_leaves_a_first_builds_imported_history_alone() -> None:
    """A first indexing's copied-in messages (``MessagesAdded.imported``) are not mail to act on:
    their years-old REPLYs would overwrite today's answers. Those it took from new/ are checked."""
    import gevent

    from gk import events
    from gk.dav.itip import ReplyWatcher

    checked: list[tuple[int, ...]] = []
    watcher = ReplyWatcher(CTX, lambda: None)  # type: ignore[arg-type]
    watcher._check = lambda user, folder, uids: checked.append(uids)  # type: ignore[method-assign]
    watcher(events.MessagesAdded("bob@box.example", "INBOX", (1, 2, 3), 4, imported=(1, 2, 3)))
    watcher(events.MessagesAdded("bob@box.example", "INBOX", (1, 2, 3, 4, 5), 4, imported=(1, 2, 3)))
    watcher(events.MessagesAdded("bob@box.example", "INBOX", (6,), 5))
    gevent.sleep(0)
    assert checked == [(4, 5), (6,)]
