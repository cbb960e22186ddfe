"""What a SELECT reads of a whole folder (UIDs, counts, keywords, first unseen) is kept between
SELECTs (``UserMailbox._folder_view``) and never outlives a change: after each kind of change —
new mail, APPEND, a flag change (by IMAP or by another program renaming a file), EXPUNGE, MOVE,
a write by another process — it equals what a fresh store reads."""

from __future__ import annotations

import os
from pathlib import Path

from gk.mail.mailbox import MailboxStore, maildir

USER = "ann@example.org"


def _msg(i: int) -> bytes:
    return f"From: b@example.com\r\nSubject: m{i}\r\n\r\nbody {i}\r\n".encode()


def _view(store: MailboxStore) -> tuple[object, ...]:
    mb = store.user(USER)
    info = mb.folder("INBOX")
    return (
        (info.exists, info.unseen, info.size, info.uidnext, info.highestmodseq),
        list(mb.uids("INBOX")),
        mb.keywords("INBOX"),
        mb.first_unseen("INBOX"),
    )


def _fresh(root: Path) -> tuple[object, ...]:
    other = MailboxStore(root)
    try:
        return _view(other)
    finally:
        other.user(USER).close()


def test_select_view_follows_every_change(tmp_path: Path) -> None:
    root = tmp_path / "mail"
    store = MailboxStore(root)
    mb = store.user(USER)
    for i in range(4):
        mb.append("INBOX", _msg(i), flags=["\\Seen"] if i % 2 else [])
    steps = [
        lambda: None,
        lambda: mb.set_flags("INBOX", [1], ["\\Seen", "$Work"], "add"),
        lambda: mb.set_flags("INBOX", [2], ["\\Seen"], "remove"),
        lambda: mb.append("INBOX", _msg(9), flags=["$Later"]),
        lambda: mb.set_flags("INBOX", [3], ["\\Deleted"], "add"),
        lambda: mb.expunge("INBOX"),
        lambda: mb.move("INBOX", [1], "Archive"),
    ]
    for step in steps:
        step()
        kept = _view(store)
        assert _view(store) == kept  # read twice: the second from what was kept
        assert kept == _fresh(root)
    # another program marks a message seen in its file name: the next sync takes it over
    cur = maildir.user_root(root, USER) / "cur"
    name = next(n for n in os.listdir(cur) if n.endswith(":2,"))
    os.rename(cur / name, cur / (name + "S"))
    os.utime(cur, ns=(0, os.stat(cur).st_mtime_ns + 1_000_000_000))  # a later mtime, whatever the clock
    assert _view(store) == _fresh(root)
    # a write by another process (another store on the same index)
    other = MailboxStore(root)
    other.user(USER).set_flags("INBOX", [5], ["\\Seen"], "remove")
    other.user(USER).close()
    assert _view(store) == _fresh(root)
    assert _view(store)[3] == 5
