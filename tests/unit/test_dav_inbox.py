"""The RFC 6638 scheduling inbox's table (``gk.dav.inbox``): delivery, listing per owner, deletion,
and a mail seen again (the iTIP watcher sees a message when it lands and when it is indexed) not
delivered again, even after its owner deleted it."""

from __future__ import annotations

from gk.dav import inbox
from gk.dav.rwlock import RWLock
from gk.dav.schema import MIGRATIONS
from gk.store import open_database


def test_deliver_list_delete_and_no_redelivery(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db, lock = open_database(tmp_path / "dav.sqlite3", MIGRATIONS), RWLock()
    text = "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n"
    href = inbox.deliver(db, lock, "bob@x.example", "u1", "REQUEST", text)
    assert href and inbox.deliver(db, lock, "bob@x.example", "u1", "REQUEST", text) is None
    assert [m.href for m in inbox.messages(db, "bob@x.example")] == [href]
    assert inbox.messages(db, "carol@x.example") == [] and inbox.get(db, "carol@x.example", href) is None
    before = inbox.version(db, "bob@x.example")
    assert inbox.delete(db, lock, "bob@x.example", href) and not inbox.delete(db, lock, "bob@x.example", href)
    assert inbox.version(db, "bob@x.example") > before
    assert inbox.messages(db, "bob@x.example") == [] and inbox.get(db, "bob@x.example", href) is None
    assert inbox.deliver(db, lock, "bob@x.example", "u1", "REQUEST", text) is None  # seen again: not back
    for i in range(inbox.MAX_MESSAGES + 5):
        inbox.deliver(db, lock, "bob@x.example", f"n{i}", "REQUEST", text.replace("END", f"X-N:{i}\r\nEND", 1))
    kept = inbox.messages(db, "bob@x.example")
    assert len(kept) == inbox.MAX_MESSAGES and kept[-1].uid == f"n{inbox.MAX_MESSAGES + 4}"
    db.close()


INVITE = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nMETHOD:{method}\r\nBEGIN:VEVENT\r\nUID:m1\r\n"
    "DTSTAMP:20260101T000000Z\r\nDTSTART:20990101T090000Z\r\nDTEND:20990101T100000Z\r\nSEQUENCE:{seq}\r\n"
    "SUMMARY:{summary}\r\n{status}ORGANIZER:mailto:{org}\r\nATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@x.example\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)


def invite(method: str = "REQUEST", seq: int = 0, summary: str = "Plan", org: str = "alice@x.example") -> str:
    status = "STATUS:CANCELLED\r\n" if method == "CANCEL" else ""
    return INVITE.format(method=method, seq=seq, summary=summary, org=org, status=status)


def test_schedule_copy_in_the_attendees_calendar(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """RFC 6638 auto-schedule (``gk.dav.itip.schedule_copy``): a REQUEST written into the attendee's
    calendar without METHOD, their answer kept over a resend of the same SEQUENCE, a CANCEL marking
    it cancelled and a late REQUEST of that SEQUENCE not undoing it, a newer SEQUENCE applied, an
    older one or another organizer's object of that UID left alone."""
    from radicale import config as radicale_config

    from gk.dav import defaults
    from gk.dav.itip import schedule_copy
    from gk.dav.storage import Storage

    s = Storage(radicale_config.load(), tmp_path / "dav.sqlite3")
    defaults.ensure_user(s.db, "bob@x.example")
    bob = "bob@x.example"

    def copy() -> str:
        row = s.db.one("SELECT i.text FROM items i JOIN collections c ON c.id = i.collection WHERE i.uid = 'm1'")
        return str(row["text"]) if row is not None else ""

    assert schedule_copy(s, bob, "REQUEST", invite())
    assert "SUMMARY:Plan" in copy() and "METHOD" not in copy() and "PARTSTAT=NEEDS-ACTION" in copy()
    s.db.execute("UPDATE items SET text = replace(text, 'NEEDS-ACTION', 'ACCEPTED')")
    assert schedule_copy(s, bob, "REQUEST", invite(summary="Plan again"))  # same SEQUENCE: answer kept
    assert "SUMMARY:Plan again" in copy() and "PARTSTAT=ACCEPTED" in copy()
    assert schedule_copy(s, bob, "CANCEL", invite("CANCEL"))
    assert "STATUS:CANCELLED" in copy() and "SUMMARY:Plan again" in copy()
    assert not schedule_copy(s, bob, "REQUEST", invite())  # read after its own CANCEL
    assert "STATUS:CANCELLED" in copy()
    assert schedule_copy(s, bob, "REQUEST", invite(seq=2, summary="Moved"))
    assert "SUMMARY:Moved" in copy() and "CANCELLED" not in copy() and "PARTSTAT=NEEDS-ACTION" in copy()
    assert not schedule_copy(s, bob, "REQUEST", invite(seq=1, summary="Stale"))
    assert not schedule_copy(s, bob, "REQUEST", invite(seq=5, summary="Other", org="mallory@x.example"))
    assert "SUMMARY:Moved" in copy()
    assert not schedule_copy(s, bob, "CANCEL", invite("CANCEL").replace("UID:m1", "UID:m2"))  # nothing to cancel
    s.close()


def test_schedule_copy_merges_one_occurrence_into_the_series(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An iTIP for one occurrence (VEVENTs with RECURRENCE-ID only, RFC 5546 §3.2.2.1/§3.2.5) is
    merged into the attendee's copy of the series, never replaces it; without a copy, ignored."""
    from radicale import config as radicale_config

    from gk.dav import defaults
    from gk.dav.itip import schedule_copy
    from gk.dav.storage import Storage

    s = Storage(radicale_config.load(), tmp_path / "dav.sqlite3")
    defaults.ensure_user(s.db, "bob@x.example")
    bob = "bob@x.example"
    series = invite(summary="Weekly").replace("SEQUENCE:0\r\n", "SEQUENCE:0\r\nRRULE:FREQ=WEEKLY;COUNT=5\r\n")
    occurrence = invite(summary="Moved one", seq=1).replace(
        "SEQUENCE:1\r\n", "SEQUENCE:1\r\nRECURRENCE-ID:20990108T090000Z\r\n"
    )
    assert not schedule_copy(s, bob, "REQUEST", occurrence)  # no series to merge it into
    assert schedule_copy(s, bob, "REQUEST", series)
    assert schedule_copy(s, bob, "REQUEST", occurrence)
    text = str(s.db.one("SELECT text FROM items WHERE uid = 'm1'")["text"])
    assert "RRULE:FREQ=WEEKLY" in text and "SUMMARY:Weekly" in text and "SUMMARY:Moved one" in text, text
    assert text.count("BEGIN:VEVENT") == 2
    cancel = invite("CANCEL", seq=1).replace("SEQUENCE:1\r\n", "SEQUENCE:1\r\nRECURRENCE-ID:20990108T090000Z\r\n")
    assert schedule_copy(s, bob, "CANCEL", cancel)
    text = str(s.db.one("SELECT text FROM items WHERE uid = 'm1'")["text"])
    assert text.count("BEGIN:VEVENT") == 2 and "RRULE:FREQ=WEEKLY" in text and text.count("STATUS:CANCELLED") == 1
    s.close()


def test_a_scheduler_writes_inside_the_request_and_commits_with_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``Storage.scheduler`` (RFC 6638 implicit scheduling between users of the box) runs inside
    the write request's transaction, holding its lock: its writes into Bob's calendar and
    scheduling inbox record no change of their own (no scheduling of the scheduling) and are in
    the database when the request's lock is released; its after-commit step runs then; a failing
    scheduler never fails the request's own write."""
    from radicale import config as radicale_config
    from radicale import item as radicale_item

    from gk.dav import defaults
    from gk.dav.itip import deliver_local, itip_calendar, sends
    from gk.dav.storage import Change, Storage

    s = Storage(radicale_config.load(), tmp_path / "dav.sqlite3")
    alice, bob = "alice@x.example", "bob@x.example"
    for user in (alice, bob):
        defaults.ensure_user(s.db, user)
    calls: list[tuple[str, list[Change]]] = []
    after: list[str] = []

    def scheduler(user: str, changes: list[Change]):  # type: ignore[no-untyped-def]
        calls.append((user, changes))
        assert s.lock.locked == "w" and s.db._depth == 1  # inside the request's transaction
        for change in changes:
            for method, attendees, text in sends(user, change.old, change.new):
                for attendee in attendees:
                    assert deliver_local(s, attendee, user, method, itip_calendar(text, method)[0])
        return lambda: after.append(str(s.lock.locked))

    s.scheduler = scheduler
    event = invite().replace("METHOD:REQUEST\r\n", "")  # organized by alice, inviting bob
    with s.acquire_lock("w", alice):
        (col,) = list(s.discover(f"/{alice}/calendar/"))
        col.upload("m1.ics", radicale_item.Item(collection_path=col.path, text=event))
    assert [(u, [c.href for c in ch]) for u, ch in calls] == [(alice, ["m1.ics"])]  # bob's writes: none
    assert after == ["w"]  # after the commit, before the lock is released
    assert [m.method for m in inbox.messages(s.db, bob)] == ["REQUEST"]
    assert s.db.one("SELECT 1 FROM items WHERE uid = 'm1' AND collection = "
                    "(SELECT id FROM collections WHERE path = ?)", (f"{bob}/calendar",)) is not None  # fmt: skip

    def broken(user: str, changes: list[Change]) -> None:
        raise RuntimeError("scheduler down")

    s.scheduler = broken
    with s.acquire_lock("w", alice):
        (col,) = list(s.discover(f"/{alice}/calendar/"))
        col.upload("m2.ics", radicale_item.Item(collection_path=col.path, text=event.replace("UID:m1", "UID:m2")))
    assert s.db.one("SELECT 1 FROM items WHERE uid = 'm2'") is not None
    s.close()


def test_a_reply_updates_the_organizers_copy_and_lands_in_their_scheduling_inbox(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """RFC 6638 §3.2.2 and §4 (``gk.dav.itip.reply_local``): an attendee's REPLY sets their
    PARTSTAT in the organizer's copy and is kept in the organizer's scheduling inbox, once (the
    same answer again changes nothing, adds nothing); a REPLY from someone not invited touches
    neither. An event organized as an alias of the organizer's (``mine``) is theirs too, and an
    invitation to an alias of the attendee's reaches the attendee."""
    from radicale import config as radicale_config
    from radicale import item as radicale_item

    from gk.dav import defaults
    from gk.dav.itip import inbox_message, reply_local, schedule_copy
    from gk.dav.storage import Storage

    s = Storage(radicale_config.load(), tmp_path / "dav.sqlite3")
    alice, bob, al, robert = "alice@x.example", "bob@x.example", "al@x.example", "robert@x.example"
    for user in (alice, bob):
        defaults.ensure_user(s.db, user)
    with s.acquire_lock("w", alice):
        (col,) = list(s.discover(f"/{alice}/calendar/"))
        for uid, org in (("m1", alice), ("m2", al)):
            text = invite(org=org).replace("METHOD:REQUEST\r\n", "").replace("UID:m1", f"UID:{uid}")
            col.upload(f"{uid}.ics", radicale_item.Item(collection_path=col.path, text=text))

    def reply(uid: str, org: str, who: str) -> str:
        return (
            invite(org=org)
            .replace("METHOD:REQUEST", "METHOD:REPLY")
            .replace("UID:m1", f"UID:{uid}")
            .replace("PARTSTAT=NEEDS-ACTION:mailto:bob@x.example", f"PARTSTAT=ACCEPTED:mailto:{who}")
        )

    def alices(uid: str) -> str:
        return str(s.db.one("SELECT text FROM items WHERE uid = ?", (uid,))["text"])

    with s.acquire_lock("w", alice):
        assert reply_local(s, alice, "carol@x.example", reply("m1", alice, "carol@x.example"))
    assert inbox.messages(s.db, alice) == [] and "ACCEPTED" not in alices("m1")
    for _ in range(2):
        with s.acquire_lock("w", alice):
            assert reply_local(s, alice, bob, reply("m1", alice, bob))
    assert "PARTSTAT=ACCEPTED:mailto:bob@x.example" in alices("m1")
    (kept,) = inbox.messages(s.db, alice)
    assert kept.method == "REPLY" and kept.uid == "m1" and "METHOD:REPLY" in kept.text
    with s.acquire_lock("w", alice):  # organized as her alias: hers when she says so
        assert reply_local(s, alice, bob, reply("m2", al, bob))
    assert "ACCEPTED" not in alices("m2")
    with s.acquire_lock("w", alice):
        assert reply_local(s, alice, bob, reply("m2", al, bob), lambda a: a in (alice, al))
    assert "PARTSTAT=ACCEPTED:mailto:bob@x.example" in alices("m2")
    assert [m.uid for m in inbox.messages(s.db, alice)] == ["m1", "m2"]
    # an invitation to bob's alias is bob's when his addresses say so
    to_robert = invite().replace("UID:m1", "UID:m3").replace("mailto:bob@x.example", f"mailto:{robert}")
    assert inbox_message(bob, alice, "REQUEST", to_robert) is None
    assert inbox_message(bob, alice, "REQUEST", to_robert, lambda a: a in (bob, robert)) == "m3"
    with s.acquire_lock("w", bob):
        assert schedule_copy(s, bob, "REQUEST", to_robert, lambda a: a in (bob, robert))
        assert not schedule_copy(s, alice, "REQUEST", to_robert, lambda a: a in (alice, al))  # her own event
    s.close()
