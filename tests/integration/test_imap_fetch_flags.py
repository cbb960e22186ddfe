"""FETCH of UID / FLAGS / MODSEQ alone (a mail client's resync: ``UID FETCH 1:* (UID FLAGS)``,
CONDSTORE's ``FETCH 1:* (FLAGS) (CHANGEDSINCE n)``) takes a path of its own (``_fetch_flags``):
its answers must be exactly those of the general FETCH — the same item with RFC822.SIZE added,
which the general path answers — over a folder with system flags and keywords, expunged
messages, \\Recent ones, a message just delivered and flags another session just changed."""

from __future__ import annotations

import re

import pytest
from support.imap import Raw, client, fresh_folder, imaps, module_server, simple_message

imap_server = module_server()

FLAGS = [(), ("\\Seen",), ("\\Seen", "\\Flagged"), ("$Forwarded",), ("\\Answered", "Work", "$Junk"), ("\\Draft",)]


def _fetches(lines: list[bytes]) -> list[bytes]:
    return [x.rstrip(b"\r\n") for x in lines if re.match(rb"\* \d+ FETCH ", x)]


def _compare(r: Raw, fast: str, slow: str) -> list[bytes]:
    """``fast``'s FETCH lines, checked equal to ``slow``'s with their RFC822.SIZE left out."""
    got = _fetches(r.cmd(fast))
    want = [re.sub(rb" RFC822\.SIZE \d+", b"", x) for x in _fetches(r.cmd(slow))]
    assert got == want, fast
    return got


@pytest.fixture
def folder(imap_server):  # type: ignore[no-untyped-def]
    """A folder of 30 messages with mixed flags, 4 of them expunged (sequence numbers != UIDs)."""
    c = client(imap_server)
    name = fresh_folder(c, "ff")
    c.unselect_folder()
    for i in range(30):
        c.append(name, simple_message(f"m{i}"), flags=FLAGS[i % len(FLAGS)])
    c.select_folder(name)  # this session has every one of them as \Recent
    c.delete_messages([3, 4, 11, 20])
    c.expunge()
    c.logout()
    return name


CASES = [
    ("UID FETCH 1:* (UID FLAGS)", "UID FETCH 1:* (UID FLAGS RFC822.SIZE)"),
    ("FETCH 1:* (FLAGS)", "FETCH 1:* (FLAGS RFC822.SIZE)"),
    ("FETCH 1:* FLAGS", "FETCH 1:* (FLAGS RFC822.SIZE)"),
    ("FETCH 2,5:9,20:* (UID FLAGS)", "FETCH 2,5:9,20:* (UID FLAGS RFC822.SIZE)"),
    ("UID FETCH 2:12,25 (FLAGS)", "UID FETCH 2:12,25 (FLAGS RFC822.SIZE)"),
    ("UID FETCH 1:* (UID)", "UID FETCH 1:* (UID RFC822.SIZE)"),
    ("FETCH 1:* (UID MODSEQ FLAGS)", "FETCH 1:* (UID MODSEQ FLAGS RFC822.SIZE)"),
    ("UID FETCH 1:* (MODSEQ)", "UID FETCH 1:* (MODSEQ RFC822.SIZE)"),
]


def test_flags_fetched_alone_are_those_of_the_general_fetch(imap_server, folder) -> None:  # type: ignore[no-untyped-def]
    r = Raw(imap_server, folder)
    other = client(imap_server)
    other.select_folder(folder)
    other.add_flags([5], ["\\Flagged", "Other"])  # another session's change
    adder = client(imap_server)
    adder.append(folder, simple_message("late"), flags=("\\Seen", "Brandnew"))  # \Recent in ``r``
    adder.logout()
    first = r.cmd(CASES[0][0])
    keyword_at = next(i for i, x in enumerate(first) if x.startswith(b"* FLAGS") and b"Brandnew" in x)
    fetch_at = next(i for i, x in enumerate(first) if b"Brandnew" in x and b"FETCH" in x)
    assert keyword_at < fetch_at  # RFC 3501 7.2.6: a keyword is announced before a FETCH shows it
    update, *lines = _fetches(first)  # the other session's change, as an update, then the answer
    assert update == b"* 3 FETCH (FLAGS (Work $Junk \\Answered \\Flagged Other) UID 5)"
    assert len(lines) == 27 and lines[0] == b"* 1 FETCH (UID 1 FLAGS ())"
    assert lines[2] == b"* 3 FETCH (UID 5 FLAGS (Work $Junk \\Answered \\Flagged Other))"
    assert lines[-1] == b"* 27 FETCH (UID 31 FLAGS (Brandnew \\Seen \\Recent))"
    for fast, slow in CASES:  # the MODSEQ ones turn CONDSTORE on: those after show MODSEQ too
        _compare(r, fast, slow)
    other.logout()
    r.close()


def test_condstore_changedsince_fetches_only_the_changed_ones(imap_server, folder) -> None:  # type: ignore[no-untyped-def]
    r = Raw(imap_server, folder, examine=True)
    top = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"".join(r.selected)).group(1))  # type: ignore[union-attr]
    other = client(imap_server)
    other.select_folder(folder)
    other.add_flags([2, 9], ["\\Deleted"])
    other.remove_flags([8], ["\\Seen"])
    r.cmd("NOOP")
    lines = _compare(
        r, f"FETCH 1:* (FLAGS) (CHANGEDSINCE {top})", f"FETCH 1:* (FLAGS RFC822.SIZE) (CHANGEDSINCE {top})"
    )
    assert [re.sub(rb"MODSEQ \(\d+\)", b"MODSEQ", x) for x in lines] == [
        b"* 2 FETCH (FLAGS (\\Seen \\Deleted) MODSEQ)",  # UID 2
        b"* 6 FETCH (FLAGS () MODSEQ)",  # UID 8
        b"* 7 FETCH (FLAGS (\\Flagged \\Seen \\Deleted) MODSEQ)",  # UID 9
    ]
    _compare(
        r, f"UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE {top})", f"UID FETCH 1:* (FLAGS RFC822.SIZE) (CHANGEDSINCE {top})"
    )
    assert _fetches(r.cmd(f"FETCH 1:* (FLAGS) (CHANGEDSINCE {top + 100})")) == []
    other.logout()
    r.close()


def test_imaplib_reads_the_flags_of_every_message(imap_server, folder) -> None:  # type: ignore[no-untyped-def]
    m = imaps(imap_server)
    m.select(folder, readonly=True)
    typ, fast = m.uid("FETCH", "1:*", "(UID FLAGS)")
    assert typ == "OK"
    typ, slow = m.uid("FETCH", "1:*", "(UID FLAGS RFC822.SIZE)")
    assert [re.sub(rb" RFC822\.SIZE \d+", b"", x) for x in slow] == fast  # type: ignore[type-var, arg-type]
    assert len(fast) == 26 and fast[3] == b"4 (UID 6 FLAGS (\\Draft))"
    m.logout()
