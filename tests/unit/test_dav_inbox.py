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
