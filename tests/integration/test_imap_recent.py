"""\\Recent (RFC 3501 2.3.2) across real concurrent sessions: a message is recent in exactly one
session, the first read-write one to report it (SELECT, or EXISTS after NOOP/IDLE, for an
APPEND from another session, a file dropped into new/ or an SMTP delivery); EXAMINE
shows \\Recent without taking it away; STATUS (RECENT), SEARCH RECENT/NEW/OLD and FETCH FLAGS
agree; \\Recent can never be stored; an index from before \\Recent counts its mail as old."""

from __future__ import annotations

import re
import time

from support.imap import (
    ALICE,
    Raw,
    client,
    drop,
    module_server,
    simple_message,
    smtp_delivery_server,
)

imap_server = module_server()

_n = [0]


def _recent(lines: list[bytes]) -> list[int]:
    """The numbers of every ``* n RECENT`` line."""
    return [int(m.group(1)) for x in lines if (m := re.match(rb"\* (\d+) RECENT\r\n", x))]


def _search(r: Raw, criteria: str) -> list[int]:
    lines = [x for x in r.cmd(f"SEARCH {criteria}") if x.startswith(b"* SEARCH")]
    assert len(lines) == 1, lines
    return [int(n) for n in lines[0].split()[2:]]


def _flags(r: Raw) -> dict[int, set[bytes]]:
    out = {}
    for x in r.cmd("FETCH 1:* (FLAGS)"):
        m = re.match(rb"\* (\d+) FETCH \(FLAGS \(([^)]*)\)\)", x)
        if m:
            out[int(m.group(1))] = set(m.group(2).split())
    return out


def _status_recent(srv, folder: str, r: Raw | None = None) -> int:  # type: ignore[no-untyped-def]
    if r is None:
        c = client(srv)
        value = c.folder_status(folder, [b"RECENT"])[b"RECENT"]
        c.logout()
        return int(value)
    (line,) = [x for x in r.cmd(f"STATUS {folder} (RECENT MESSAGES)") if x.startswith(b"* STATUS")]
    m = re.search(rb"RECENT (\d+)", line)
    assert m, line
    return int(m.group(1))


def _folder_with(srv, count: int, seen: tuple[int, ...] = ()) -> str:  # type: ignore[no-untyped-def]
    """A new folder holding ``count`` messages appended by a session that never selects it."""
    _n[0] += 1
    name = f"rec{_n[0]}"
    c = client(srv)
    c.create_folder(name)
    for i in range(1, count + 1):
        c.append(name, simple_message(f"m{i}"), flags=[b"\\Seen"] if i in seen else [])
    c.logout()
    return name


def test_first_select_gets_recent_second_gets_none(imap_server):  # type: ignore[no-untyped-def]
    folder = _folder_with(imap_server, 3)
    assert _status_recent(imap_server, folder) == 3  # nobody has seen them: recent for the next
    a = Raw(imap_server, folder)
    assert _recent(a.selected) == [3]
    assert all(b"\\Recent" in f for f in _flags(a).values()) and len(_flags(a)) == 3
    b = Raw(imap_server, folder)
    assert _recent(b.selected) == [0]
    assert not any(b"\\Recent" in f for f in _flags(b).values())
    # STATUS is per session: a holds the three, for b and for anyone else they are gone
    assert _status_recent(imap_server, folder, a) == 3
    assert _status_recent(imap_server, folder, b) == 0
    assert _status_recent(imap_server, folder) == 0
    # \Recent stays with a for as long as it keeps the folder selected, not beyond
    assert _recent(a.cmd("NOOP")) == []
    assert _recent(a.cmd(f"SELECT {folder}")) == [0]
    # \Recent survives a STORE (it is a session flag) and can never be stored
    b.close()
    b = Raw(imap_server, folder)
    c = client(imap_server)
    c.append(folder, simple_message("m4"))
    c.logout()
    assert _recent(b.cmd("NOOP")) == [1]
    out = b.cmd("STORE 4 +FLAGS (\\Seen)")
    assert any(x.startswith(b"* 4 FETCH (FLAGS (\\Seen \\Recent))") for x in out), out
    out = b.cmd("STORE 4 +FLAGS (\\Recent)", ok=False)
    assert out[-1].split()[1] == b"BAD"
    out = b.cmd("STORE 4 -FLAGS (\\Recent)", ok=False)
    assert out[-1].split()[1] == b"BAD"
    assert b"\\Recent" in _flags(b)[4]
    a.close()
    b.close()


def test_examine_sees_recent_but_does_not_claim(imap_server):  # type: ignore[no-untyped-def]
    folder = _folder_with(imap_server, 2)
    e = Raw(imap_server, folder, examine=True)
    assert _recent(e.selected) == [2]
    assert _flags(e) == {1: {b"\\Recent"}, 2: {b"\\Recent"}}
    assert _search(e, "RECENT") == [1, 2]
    e.close()
    assert _status_recent(imap_server, folder) == 2  # still there for the next session
    s = Raw(imap_server, folder)
    assert _recent(s.selected) == [2]
    e2 = Raw(imap_server, folder, examine=True)
    assert _recent(e2.selected) == [0]
    assert _flags(e2) == {1: set(), 2: set()}
    # a new message: the read-only session reports it as recent, the read-write one still gets it
    c = client(imap_server)
    c.append(folder, simple_message("m3"))
    c.logout()
    assert _recent(e2.cmd("NOOP")) == [1]
    assert _recent(s.cmd("NOOP")) == [3]
    assert _status_recent(imap_server, folder) == 0
    s.close()
    e2.close()


def test_new_message_during_idle_is_recent_in_one_session_only(imap_server):  # type: ignore[no-untyped-def]
    folder = _folder_with(imap_server, 0)
    a = Raw(imap_server, folder)
    b = Raw(imap_server, folder)
    assert _recent(a.selected) == [0] and _recent(b.selected) == [0]
    a.send("i1 IDLE")
    assert a.f.readline().startswith(b"+")
    c = client(imap_server)
    c.append(folder, simple_message("during idle"))
    t0 = time.monotonic()
    got = a.wait_for(b"RECENT")
    assert time.monotonic() - t0 < 2.0
    assert got[-2:] == [b"* 1 EXISTS\r\n", b"* 1 RECENT\r\n"]
    a.send("DONE")
    a.wait_for(b"i1 OK")
    out = b.cmd("NOOP")
    assert b"* 1 EXISTS\r\n" in out and _recent(out) == [0]
    assert b"\\Recent" in _flags(a)[1] and b"\\Recent" not in _flags(b)[1]
    # the other way round: b polls first and takes the next one
    c.append(folder, simple_message("while polling"))
    out = b.cmd("NOOP")
    assert b"* 2 EXISTS\r\n" in out and _recent(out) == [1]
    out = a.cmd("NOOP")
    assert b"* 2 EXISTS\r\n" in out and _recent(out) == [1]  # still only its first one
    assert _search(a, "RECENT") == [1] and _search(b, "RECENT") == [2]
    c.logout()
    a.close()
    b.close()


def test_delivery_into_inbox_is_recent_once(imap_server):  # type: ignore[no-untyped-def]
    a = Raw(imap_server, "INBOX")
    b = Raw(imap_server, "INBOX")
    exists = len(_flags(a))
    drop(imap_server, simple_message("delivered", "arrived in new/\r\n"))  # as the local delivery does
    out_a, out_b = a.cmd("NOOP"), b.cmd("NOOP")  # a polls first: the new message is a's
    assert f"* {exists + 1} EXISTS\r\n".encode() in out_a and f"* {exists + 1} EXISTS\r\n".encode() in out_b
    assert _recent(out_a) == [_recent(a.selected)[0] + 1]
    assert _recent(b.selected) == [0] and _recent(out_b) == [0]
    assert b"\\Recent" in _flags(a)[exists + 1] and b"\\Recent" not in _flags(b)[exists + 1]
    a.close()
    b.close()


smtp_server = smtp_delivery_server()


def test_smtp_delivery_during_idle_is_recent_in_the_idling_session_only(smtp_server):  # type: ignore[no-untyped-def]
    from support.smtp import smtp25

    a = Raw(smtp_server, "INBOX")
    b = Raw(smtp_server, "INBOX")
    assert _recent(a.selected) == [0] and _recent(b.selected) == [0]
    a.send("i1 IDLE")
    assert a.f.readline().startswith(b"+")
    with smtp25(smtp_server) as s:
        s.sendmail("carol@example.net", [ALICE], simple_message("over smtp"))
    got = a.wait_for(b"RECENT")
    assert got[-2:] == [b"* 1 EXISTS\r\n", b"* 1 RECENT\r\n"]
    a.send("DONE")
    a.wait_for(b"i1 OK")
    out = b.cmd("NOOP")
    assert b"* 1 EXISTS\r\n" in out and _recent(out) == [0]
    assert _status_recent(smtp_server, "INBOX", b) == 0 and _status_recent(smtp_server, "INBOX", a) == 1
    a.close()
    b.close()


def test_search_recent_new_old(imap_server):  # type: ignore[no-untyped-def]
    folder = _folder_with(imap_server, 3, seen=(2,))
    b = Raw(imap_server, folder)
    assert _search(b, "RECENT") == [1, 2, 3]
    assert _search(b, "NEW") == [1, 3]  # recent and not seen
    assert _search(b, "OLD") == []
    a = Raw(imap_server, folder)
    assert _search(a, "RECENT") == [] and _search(a, "NEW") == [] and _search(a, "OLD") == [1, 2, 3]
    c = client(imap_server)
    c.append(folder, simple_message("m4"))
    c.append(folder, simple_message("m5"), flags=[b"\\Seen"])
    c.logout()
    assert _recent(a.cmd("NOOP")) == [2]
    assert _search(a, "RECENT") == [4, 5]
    assert _search(a, "NEW") == [4]
    assert _search(a, "OLD") == [1, 2, 3]
    assert _search(a, "OR NEW DELETED") == [4]
    assert _search(a, "NOT RECENT SEEN") == [2]
    uids = [x for x in a.cmd("UID SEARCH RECENT") if x.startswith(b"* SEARCH")]
    assert uids == [b"* SEARCH 4 5\r\n"]
    out = b.cmd("SEARCH RECENT")  # b hears of 4 and 5 now (a had them first): still 3 recent
    assert b"* 5 EXISTS\r\n" in out and _recent(out) == [3] and b"* SEARCH 1 2 3\r\n" in out
    assert _search(b, "OLD") == [4, 5]
    a.close()
    b.close()


def test_append_is_recent_in_the_session_that_has_the_folder_selected(imap_server):  # type: ignore[no-untyped-def]
    folder = _folder_with(imap_server, 0)
    a = Raw(imap_server, folder)
    other = Raw(imap_server, "INBOX")
    msg = simple_message("appended")
    other.cmd(f"APPEND {folder} {{{len(msg)}+}}\r\n" + msg.decode())
    out = a.cmd("NOOP")
    assert b"* 1 EXISTS\r\n" in out and _recent(out) == [1]
    # the selecting session appends itself: recent for it, and no one else
    out = a.cmd(f"APPEND {folder} {{{len(msg)}+}}\r\n" + msg.decode())
    assert b"* 2 EXISTS\r\n" in out and _recent(out) == [2]
    assert _status_recent(imap_server, folder, other) == 0
    # with nobody selecting it, the next session gets it
    a.cmd("UNSELECT")
    other.cmd(f"APPEND {folder} {{{len(msg)}+}}\r\n" + msg.decode())
    assert _status_recent(imap_server, folder, other) == 1
    n = Raw(imap_server, folder)
    assert _recent(n.selected) == [1] and _search(n, "RECENT") == [3]
    a.close()
    other.close()
    n.close()


def test_index_from_before_recent_counts_its_mail_as_old(tmp_path):  # type: ignore[no-untyped-def]
    from gk.mail.mailbox.index import MIGRATIONS, open_index
    from gk.store import open_database

    path = tmp_path / "index.sqlite3"
    db = open_database(path, MIGRATIONS[:1])
    db.execute("INSERT INTO folders(name, uidvalidity, uidnext) VALUES ('INBOX', 7, 43)")
    db.execute("INSERT INTO folders(name, uidvalidity) VALUES ('Empty', 8)")
    db.close()
    db = open_index(path)
    rows = {r["name"]: r["recentuid"] for r in db.query("SELECT name, recentuid FROM folders")}
    assert rows == {"INBOX": 42, "Empty": 0}
    db.close()
