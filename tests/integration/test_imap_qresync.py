"""QRESYNC (RFC 7162) on a real server, answers checked line by line: ENABLE QRESYNC (implies
CONDSTORE); SELECT/EXAMINE … (QRESYNC (uidvalidity modseq [known-uids] [seq-match])) answering
VANISHED (EARLIER) and the flag changes since; UID FETCH … (CHANGEDSINCE n VANISHED); expunges
reported as VANISHED (own EXPUNGE, UID EXPUNGE, MOVE, another session's, during IDLE);
[CLOSED] when SELECT replaces a folder; an expunge raises HIGHESTMODSEQ; and the conservative
answer once the tombstones that far back were pruned (narrowed by the sequence match data)."""

from __future__ import annotations

import re
import sqlite3

from support.imap import ALICE, Raw, client, module_server, simple_message

imap_server = module_server()

_n = [0]


def _untagged(lines: list[bytes]) -> list[bytes]:
    return [x for x in lines if x.startswith(b"* ")]


def _folder(srv, count: int = 10) -> str:  # type: ignore[no-untyped-def]
    _n[0] += 1
    name = f"qr{_n[0]}"
    c = client(srv)
    c.create_folder(name)
    for i in range(1, count + 1):
        c.append(name, simple_message(f"m{i}"), flags=[b"\\Seen"])
    c.logout()
    return name


def _state(srv, folder: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(UIDVALIDITY, HIGHESTMODSEQ) as a client would have cached them."""
    c = client(srv)
    st = c.folder_status(folder, [b"UIDVALIDITY", b"HIGHESTMODSEQ"])
    c.logout()
    return int(st[b"UIDVALIDITY"]), int(st[b"HIGHESTMODSEQ"])


def _expunge(srv, folder: str, uids: list[int]) -> None:  # type: ignore[no-untyped-def]
    c = client(srv)
    c.select_folder(folder)
    c.add_flags(uids, [b"\\Deleted"], silent=True)
    c.uid_expunge(uids)
    c.logout()


def _modseq(srv, folder: str, uid: int) -> int:  # type: ignore[no-untyped-def]
    c = client(srv)
    c.select_folder(folder, readonly=True)
    value = int(c.fetch([uid], ["MODSEQ"])[uid][b"MODSEQ"][0])
    c.logout()
    return value


def _after_select(lines: list[bytes]) -> list[bytes]:
    """The untagged lines after SELECT's HIGHESTMODSEQ line (QRESYNC's part of the answer)."""
    i = next(i for i, x in enumerate(lines) if b"[HIGHESTMODSEQ " in x)
    return _untagged(lines[i + 1 :])


def _qr(srv, folder: str | None = None) -> Raw:  # type: ignore[no-untyped-def]
    r = Raw(srv)
    assert _untagged(r.cmd("ENABLE QRESYNC")) == [b"* ENABLED QRESYNC\r\n"]
    if folder:
        r.cmd(f"SELECT {folder}")
    return r


def test_enable_and_capability(imap_server):  # type: ignore[no-untyped-def]
    folder = _folder(imap_server, 2)
    r = Raw(imap_server)
    (cap,) = _untagged(r.cmd("CAPABILITY"))
    assert b" QRESYNC" in cap and b" CONDSTORE" in cap
    # without ENABLE QRESYNC the QRESYNC parameter and the VANISHED modifier are BAD
    out = r.cmd(f"SELECT {folder} (QRESYNC (1 1))", ok=False)
    assert out[-1].split()[1] == b"BAD"
    r.cmd(f"SELECT {folder}")
    out = r.cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)", ok=False)
    assert out[-1].split()[1] == b"BAD" and _untagged(out) == []
    assert _untagged(r.cmd("ENABLE QRESYNC CONDSTORE")) == [b"* ENABLED QRESYNC\r\n"]  # CONDSTORE came with it
    assert _untagged(r.cmd("ENABLE QRESYNC")) == [b"* ENABLED\r\n"]
    # CONDSTORE is on: FETCH FLAGS carries MODSEQ; QRESYNC is on: every FETCH names its UID
    assert re.fullmatch(
        rb"\* 1 FETCH \(UID 1 FLAGS \(\\Seen \\Recent\) MODSEQ \(\d+\)\)\r\n", _untagged(r.cmd("FETCH 1 (FLAGS)"))[0]
    )
    assert re.fullmatch(
        rb"\* 1 FETCH \(FLAGS \(\\Seen \\Flagged \\Recent\) UID 1 MODSEQ \(\d+\)\)\r\n",
        _untagged(r.cmd("STORE 1 +FLAGS (\\Flagged)"))[0],
    )
    # VANISHED needs UID FETCH and CHANGEDSINCE
    for bad in ("FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)", "UID FETCH 1:* (FLAGS) (VANISHED)"):
        out = r.cmd(bad, ok=False)
        assert out[-1].split()[1] == b"BAD" and _untagged(out) == [], bad
    for bad in (
        "(QRESYNC (0 1))",
        "(QRESYNC (1))",
        "(QRESYNC (1 1 1:*))",
        "(QRESYNC (1 1 1:5 (1:2)))",
        "(QRESYNC 1 1)",
    ):
        out = r.cmd(f"SELECT {folder} {bad}", ok=False)
        assert out[-1].split()[1] == b"BAD", bad
    r.close()


def test_select_qresync_reports_vanished_and_changes(imap_server):  # type: ignore[no-untyped-def]
    folder = _folder(imap_server)
    uidvalidity, m0 = _state(imap_server, folder)
    _expunge(imap_server, folder, [3, 4, 7])
    c = client(imap_server)
    c.select_folder(folder)
    c.remove_flags([5], [b"\\Seen"])
    c.append(folder, simple_message("m11"), flags=[b"\\Seen"])
    c.logout()
    m5, m11 = _modseq(imap_server, folder, 5), _modseq(imap_server, folder, 11)
    r = _qr(imap_server)
    out = r.cmd(f"EXAMINE {folder} (QRESYNC ({uidvalidity} {m0}))")
    assert b"* 8 EXISTS\r\n" in out
    assert _after_select(out) == [
        b"* VANISHED (EARLIER) 3:4,7\r\n",
        f"* 3 FETCH (FLAGS () UID 5 MODSEQ ({m5}))\r\n".encode(),
        f"* 8 FETCH (FLAGS (\\Seen) UID 11 MODSEQ ({m11}))\r\n".encode(),  # \\Recent: the appender's
    ]
    # known UIDs narrow both parts of the answer; [CLOSED] ends the folder selected before
    out = r.cmd(f"EXAMINE {folder} (QRESYNC ({uidvalidity} {m0} 1:5))")
    assert _untagged(out)[0] == b"* OK [CLOSED] previous folder closed\r\n"
    assert _after_select(out) == [
        b"* VANISHED (EARLIER) 3:4\r\n",
        f"* 3 FETCH (FLAGS () UID 5 MODSEQ ({m5}))\r\n".encode(),
    ]
    # up to date: nothing to say
    _, now = _state(imap_server, folder)
    assert _after_select(r.cmd(f"SELECT {folder} (QRESYNC ({uidvalidity} {now} 1:11))")) == []
    # another UIDVALIDITY: a plain SELECT (the client must resynchronize fully)
    assert _after_select(r.cmd(f"SELECT {folder} (QRESYNC ({uidvalidity + 1} {m0}))")) == []
    # CONDSTORE next to QRESYNC is fine
    assert _after_select(r.cmd(f"EXAMINE {folder} (CONDSTORE QRESYNC ({uidvalidity} {m5} 5:6))")) == []
    r.close()


def test_uid_fetch_changedsince_vanished(imap_server):  # type: ignore[no-untyped-def]
    folder = _folder(imap_server)
    _, m0 = _state(imap_server, folder)
    r = _qr(imap_server, folder)
    _expunge(imap_server, folder, [2, 10])  # 10 is the highest UID: 1:* must still cover it
    c = client(imap_server)
    c.select_folder(folder)
    c.add_flags([6], [b"$Important"])
    c.logout()
    m6 = _modseq(imap_server, folder, 6)
    out = r.cmd(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {m0} VANISHED)")
    assert _untagged(out) == [
        b"* VANISHED 2,10\r\n",  # this session learns of the expunges first (UID FETCH may say so)
        b"* 8 EXISTS\r\n",
        b"* 8 RECENT\r\n",  # this session's \\Recent, not the flags
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Important)\r\n",  # a new keyword (RFC 3501 7.2.6)
        b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Important \\*)] flags permitted\r\n",
        f"* 5 FETCH (FLAGS (\\Seen $Important \\Recent) UID 6 MODSEQ ({m6}))\r\n".encode(),
        b"* VANISHED (EARLIER) 2,10\r\n",
        f"* 5 FETCH (UID 6 FLAGS (\\Seen $Important \\Recent) MODSEQ ({m6}))\r\n".encode(),
    ]
    out = r.cmd(f"UID FETCH 3:9 (FLAGS) (CHANGEDSINCE {m0} VANISHED)")
    assert _untagged(out) == [f"* 5 FETCH (UID 6 FLAGS (\\Seen $Important \\Recent) MODSEQ ({m6}))\r\n".encode()]
    out = r.cmd(f"UID FETCH 1:4 (FLAGS) (VANISHED CHANGEDSINCE {m0})")
    assert _untagged(out) == [b"* VANISHED (EARLIER) 2\r\n"]
    out = r.cmd(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {m6} VANISHED)")
    assert _untagged(out) == []
    r.close()


def test_expunges_are_vanished_once_enabled(imap_server):  # type: ignore[no-untyped-def]
    folder = _folder(imap_server)
    r = _qr(imap_server, folder)
    _, before = _state(imap_server, folder)
    # own EXPUNGE and UID EXPUNGE
    r.cmd("STORE 2:3 +FLAGS.SILENT (\\Deleted)")
    out = r.cmd("EXPUNGE")
    assert b"* VANISHED 2:3\r\n" in out and not any(b"EXPUNGE\r\n" in x for x in _untagged(out)), out
    _, after = _state(imap_server, folder)
    assert after > before  # an expunge raises HIGHESTMODSEQ
    r.cmd("UID STORE 5 +FLAGS.SILENT (\\Deleted)")
    out = r.cmd("UID EXPUNGE 5")
    assert _untagged(out) == [b"* VANISHED 5\r\n", b"* 7 EXISTS\r\n", b"* 7 RECENT\r\n"]
    # MOVE
    out = r.cmd("UID MOVE 8:9 INBOX")
    assert [x for x in _untagged(out) if b"VANISHED" in x or b"EXPUNGE" in x] == [b"* VANISHED 8:9\r\n"]
    # another session's expunge, seen at NOOP …
    _expunge(imap_server, folder, [1])
    assert _untagged(r.cmd("NOOP"))[0] == b"* VANISHED 1\r\n"
    # … and during IDLE
    r.send("i1 IDLE")
    r.wait_for(b"+ idling")
    _expunge(imap_server, folder, [6, 10])
    got = r.wait_for(b"VANISHED")
    assert got[-1] == b"* VANISHED 6,10\r\n"
    r.send("DONE")
    assert r.wait_for(b"i1 ")[-1].startswith(b"i1 OK")
    # a session without QRESYNC still gets EXPUNGE
    plain = Raw(imap_server, folder)
    _expunge(imap_server, folder, [4])
    assert _untagged(plain.cmd("NOOP"))[0] == b"* 1 EXPUNGE\r\n"
    assert _untagged(r.cmd("NOOP"))[0] == b"* VANISHED 4\r\n"
    plain.close()
    r.close()


def test_closed_only_when_a_folder_was_selected(imap_server):  # type: ignore[no-untyped-def]
    folder = _folder(imap_server, 1)
    r = Raw(imap_server)
    assert not any(b"[CLOSED]" in x for x in r.cmd(f"SELECT {folder}"))
    out = r.cmd("EXAMINE INBOX")
    assert _untagged(out)[0] == b"* OK [CLOSED] previous folder closed\r\n"
    assert sum(b"[CLOSED]" in x for x in out) == 1
    r.cmd("UNSELECT")
    assert not any(b"[CLOSED]" in x for x in r.cmd(f"SELECT {folder}"))
    r.close()


def test_pruned_tombstones_answer_conservatively(imap_server):  # type: ignore[no-untyped-def]
    folder = _folder(imap_server)
    _expunge(imap_server, folder, [1])
    uidvalidity, m0 = _state(imap_server, folder)  # the client knows UIDs 2–10 as 1–9
    _expunge(imap_server, folder, [3, 4, 7])
    r = _qr(imap_server)
    exact = r.cmd(f"EXAMINE {folder} (QRESYNC ({uidvalidity} {m0}))")
    assert _after_select(exact) == [b"* VANISHED (EARLIER) 3:4,7\r\n"]
    # the tombstones are pruned (as after 20,000 expunges): the floor rises above m0
    index = sqlite3.connect(imap_server.data_dir / "mail" / ALICE / "index.sqlite3", timeout=30)
    with index:
        (fid,) = index.execute("SELECT id FROM folders WHERE name = ?", (folder,)).fetchone()
        index.execute("DELETE FROM expunged WHERE folder_id = ?", (fid,))
        index.execute("UPDATE folders SET expungedfloor = highestmodseq WHERE id = ?", (fid,))
    index.close()
    # every UID below UIDNEXT that does not exist (a superset: UID 1 was gone before m0)
    out = r.cmd(f"EXAMINE {folder} (QRESYNC ({uidvalidity} {m0}))")
    assert _after_select(out) == [b"* VANISHED (EARLIER) 1,3:4,7\r\n"]
    out = r.cmd(f"EXAMINE {folder} (QRESYNC ({uidvalidity} {m0} 2:6))")
    assert _after_select(out) == [b"* VANISHED (EARLIER) 3:4\r\n"]
    # sequence match data: UID 2 is still message 1, UID 5 is no longer message 4 → nothing at
    # or below UID 2 vanished
    out = r.cmd(f"EXAMINE {folder} (QRESYNC ({uidvalidity} {m0} 2:10 (1,4 2,5)))")
    assert _after_select(out) == [b"* VANISHED (EARLIER) 3:4,7\r\n"]
    out = r.cmd(f"EXAMINE {folder} (QRESYNC ({uidvalidity} {m0} (1,4 2,5)))")
    assert _after_select(out) == [b"* VANISHED (EARLIER) 3:4,7\r\n"]
    # the VANISHED FETCH modifier answers the same way
    out = r.cmd(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {m0} VANISHED)")
    assert _untagged(out) == [b"* VANISHED (EARLIER) 1,3:4,7\r\n"]
    r.close()
