"""QRESYNC's memory of expunges (no server): every expunge (EXPUNGE, MOVE, a file removed
behind the store's back) leaves tombstones with the MODSEQ it raised; the table is pruned past
MAX_TOMBSTONES and answers None below its floor; an index from before the tombstones knows
nothing older than its HIGHESTMODSEQ."""

from __future__ import annotations

import os

from gk.mail.mailbox import MailboxStore, maildir
from gk.mail.mailbox import store as storemod


def _msg(i: int) -> bytes:
    return f"From: a@example.com\r\nSubject: m{i}\r\n\r\nbody {i}\r\n".encode()


def test_expunges_leave_tombstones_with_their_modseq(tmp_path):  # type: ignore[no-untyped-def]
    root = tmp_path / "mail"
    mb = MailboxStore(root).user("ann@example.org")
    for i in range(1, 9):
        mb.append("INBOX", _msg(i))
    m0 = mb.highestmodseq("INBOX")
    assert mb.vanished("INBOX", 0) == []
    mb.set_flags("INBOX", [2, 3], ["\\Deleted"])
    assert mb.expunge("INBOX") == [2, 3]
    m1 = mb.highestmodseq("INBOX")
    assert m1 > m0 + 1  # the flag change, then the expunge raised HIGHESTMODSEQ
    mb.move("INBOX", [5], "Archive")
    m2 = mb.highestmodseq("INBOX")
    assert m2 > m1
    # a file removed by another program: noticed by sync, remembered too
    d = maildir.folder_path(root, "ann@example.org", "INBOX")
    victim = next(p for p in (d / "cur").iterdir() if b"body 8" in p.read_bytes())
    os.unlink(victim)
    mb.sync("INBOX", force=True)
    m3 = mb.highestmodseq("INBOX")
    assert m3 > m2
    assert mb.vanished("INBOX", m0) == [2, 3, 5, 8]
    assert mb.vanished("INBOX", m1) == [5, 8]
    assert mb.vanished("INBOX", m2) == [8]
    assert mb.vanished("INBOX", m3) == []
    assert mb.vanished("INBOX", m0, [(1, 3), (7, 9)]) == [2, 3, 8]
    assert mb.vanished("INBOX", m0, [(4, 4)]) == []
    assert mb.vanished("Archive", 0) == []  # the moved message's copy is no tombstone there


def test_tombstones_are_pruned_and_the_floor_rises(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(storemod, "MAX_TOMBSTONES", 4)
    mb = MailboxStore(tmp_path / "mail").user("ann@example.org")
    for i in range(1, 11):
        mb.append("INBOX", _msg(i))
    marks = []
    for uid in range(1, 7):  # six expunges of one message each
        marks.append(mb.highestmodseq("INBOX"))
        mb.move("INBOX", [uid], "Trash")
    # the fifth tombstone went over 4: the oldest ones went, down to 2; the sixth made 3
    kept = mb.db.query("SELECT uid FROM expunged e JOIN folders f ON f.id = e.folder_id WHERE f.name = 'INBOX'")
    assert sorted(r[0] for r in kept) == [4, 5, 6]
    assert mb.vanished("INBOX", marks[0]) is None  # too old: the caller answers conservatively
    assert mb.vanished("INBOX", marks[2]) is None
    assert mb.vanished("INBOX", marks[3]) == [4, 5, 6]
    assert mb.vanished("INBOX", marks[5]) == [6]


def test_index_from_before_tombstones_knows_nothing_older(tmp_path):  # type: ignore[no-untyped-def]
    from gk.mail.mailbox.index import MIGRATIONS, open_index
    from gk.store import open_database

    path = tmp_path / "index.sqlite3"
    db = open_database(path, MIGRATIONS[:2])
    db.execute("INSERT INTO folders(name, uidvalidity, uidnext, highestmodseq) VALUES ('INBOX', 7, 43, 99)")
    db.close()
    db = open_index(path)
    assert db.one("SELECT expungedfloor FROM folders WHERE name = 'INBOX'")[0] == 99  # type: ignore[index]
    assert db.one("SELECT count(*) FROM expunged")[0] == 0  # type: ignore[index]
    db.close()
