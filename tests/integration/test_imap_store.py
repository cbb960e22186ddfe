"""STORE: flags survive reconnects and a server restart, show in the Maildir file name
(``:2,FS``), CONDSTORE's UNCHANGEDSINCE / MODIFIED and CHANGEDSINCE; a new keyword is announced
with ``* FLAGS`` before any FETCH shows it, to every session on the folder (RFC 3501 7.2.6)."""

from __future__ import annotations

import imaplib
import re

import pytest
from support.imap import Raw, client, fresh_folder, imaps, maildir, module_server, simple_message

imap_server = module_server()


def _names(srv, folder: str) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(p.name for p in (maildir(srv, folder=folder) / "cur").iterdir())


def test_flags_survive_reconnect_and_show_in_file_names(imap_server):  # type: ignore[no-untyped-def]
    c = client(imap_server)
    folder = fresh_folder(c, "flags")
    c.append(folder, simple_message("one"))
    c.append(folder, simple_message("two"))
    c.select_folder(folder)
    c.add_flags([1], [b"\\Seen", b"\\Flagged", b"$Label1"])
    c.add_flags([2], [b"\\Answered", b"\\Draft"])
    c.remove_flags([1], [b"\\Flagged"])
    c.logout()
    names = _names(imap_server, folder)
    assert names[0].endswith(":2,Sa") and names[1].endswith(":2,DR"), names  # keywords as a–z
    assert (maildir(imap_server, folder=folder) / "dovecot-keywords").read_text() == "0 $Label1\n"
    c = client(imap_server)
    c.select_folder(folder)
    flags = c.get_flags([1, 2])
    assert set(flags[1]) == {b"\\Seen", b"$Label1"}
    assert set(flags[2]) == {b"\\Answered", b"\\Draft"}
    c.set_flags([2], [b"\\Deleted"])
    assert c.get_flags([2])[2] == (b"\\Deleted",)
    c.logout()
    assert _names(imap_server, folder)[1].endswith(":2,T")


def test_flags_changed_in_the_file_name_behind_our_back_are_taken_over(imap_server):  # type: ignore[no-untyped-def]
    c = client(imap_server)
    folder = fresh_folder(c, "behind")
    c.append(folder, simple_message("one"))
    path = maildir(imap_server, folder=folder) / "cur" / _names(imap_server, folder)[0]
    path.rename(path.with_name(path.name.split(":2,")[0] + ":2,FS"))
    c.select_folder(folder)
    c.noop()
    assert set(c.get_flags([1])[1]) == {b"\\Flagged", b"\\Seen"}
    c.logout()


def test_store_responses_silent_and_readonly(imap_server):  # type: ignore[no-untyped-def]
    c = client(imap_server)
    folder = fresh_folder(c, "silent")
    c.append(folder, simple_message("one"))
    c.logout()
    m = imaps(imap_server)
    m.select(folder)
    typ, data = m.store("1", "+FLAGS", "(\\Seen)")
    assert typ == "OK" and data == [b"1 (FLAGS (\\Seen))"]
    typ, data = m.store("1", "+FLAGS.SILENT", "(\\Flagged)")
    assert typ == "OK" and data == [None]
    with pytest.raises(imaplib.IMAP4.error, match="STORE"):
        m.store("1", "+FLAGS", "(\\Recent)")
    with pytest.raises(imaplib.IMAP4.error, match="STORE"):
        m.store("1", "BOGUS", "(\\Seen)")
    m.select(folder, readonly=True)
    typ, data = m.store("1", "-FLAGS", "(\\Seen)")
    assert typ == "NO"
    m.logout()


def test_condstore_unchangedsince_and_changedsince(imap_server):  # type: ignore[no-untyped-def]
    c = client(imap_server)
    folder = fresh_folder(c, "cond")
    c.append(folder, simple_message("one"))
    c.append(folder, simple_message("two"))
    c.logout()
    m = imaps(imap_server)
    typ, data = m._simple_command("ENABLE", "CONDSTORE")
    assert typ == "OK"
    typ, data = m.select(folder)
    assert typ == "OK"
    hms = int(m.untagged_responses["HIGHESTMODSEQ"][0])
    typ, data = m.fetch("1:2", "(MODSEQ)")
    modseqs = [int(d.split(b"MODSEQ (")[1].split(b")")[0]) for d in data]
    assert modseqs[1] > modseqs[0]
    typ, data = m.store("1:2", f"(UNCHANGEDSINCE {modseqs[0]}) +FLAGS", "(\\Seen)")
    assert typ == "OK"
    assert m.response("MODIFIED")[1][0] == b"2"  # message 2 changed after modseqs[0]: not stored
    typ, data = m.store("1", "(UNCHANGEDSINCE 1) +FLAGS", "(\\Flagged)")
    assert typ == "OK"
    assert m.response("MODIFIED")[1][0] == b"1"
    typ, data = m.fetch("1:*", f"(FLAGS) (CHANGEDSINCE {hms})")
    assert len(data) == 1 and data[0].startswith(b"1 (") and b"\\Seen" in data[0] and b"MODSEQ" in data[0]
    assert b"\\Flagged" not in data[0]
    m.logout()


def test_flags_survive_a_kill_9(make_server):  # type: ignore[no-untyped-def]
    from support.imap import start_imap_server

    srv = start_imap_server(make_server)
    c = client(srv)
    c.append("INBOX", simple_message("durable"))
    c.select_folder("INBOX")
    c.add_flags([1], [b"\\Flagged", b"work"])
    srv.kill9()
    srv.log_path.rename(srv.log_path.with_name("serve-before-kill.log"))  # start() waits for a new "ready"
    srv.start()
    c = client(srv)
    c.select_folder("INBOX")
    assert set(c.get_flags([1])[1]) == {b"\\Flagged", b"work"}
    c.logout()


class KeywordCheck:
    """What imaptest checks on every session: each keyword a FETCH shows must be in the latest
    ``* FLAGS`` (and ``PERMANENTFLAGS``) the session was sent. Feed it every line, in order."""

    def __init__(self) -> None:
        self.flags: set[str] = set()
        self.perm: set[str] = set()
        self.errors: list[str] = []

    def feed(self, lines: list[bytes]) -> list[bytes]:
        for raw in lines:
            line = raw.decode()
            if m := re.match(r"\* FLAGS \(([^)]*)\)", line):
                self.flags = {f.lower() for f in m.group(1).split()}
            elif m := re.match(r"\* OK \[PERMANENTFLAGS \(([^)]*)\)\]", line):
                self.perm = {f.lower() for f in m.group(1).split()}
            elif m := re.match(r"\* \d+ FETCH \(.*FLAGS \(([^)]*)\)", line):
                for f in m.group(1).split():
                    if f.startswith("\\"):
                        continue
                    if f.lower() not in self.flags:
                        self.errors.append(f"keyword {f} used without being in FLAGS: {line!r}")
                    if f.lower() not in self.perm:
                        self.errors.append(f"keyword {f} used without being in PERMANENTFLAGS: {line!r}")
        return lines


def test_new_keyword_is_announced_in_flags_to_every_session(imap_server):  # type: ignore[no-untyped-def]
    c = client(imap_server)
    folder = fresh_folder(c, "kwflags")
    for i in range(3):
        c.append(folder, simple_message(f"m{i}"), flags=[b"old"] if i == 0 else [])
    sessions = [Raw(imap_server) for _ in range(3)]
    checks = [KeywordCheck() for _ in sessions]
    for r, chk in zip(sessions, checks, strict=True):
        chk.feed(r.cmd(f"SELECT {folder}"))
        assert chk.flags >= {"old", "\\seen"} and "\\*" in chk.perm
    a, b, x = sessions
    # the storing session: FLAGS and PERMANENTFLAGS come before the FETCH that shows the keyword
    out = checks[0].feed(a.cmd("STORE 1 +FLAGS (kwone)"))
    assert [ln[:9] for ln in out[:3]] == [b"* FLAGS (", b"* OK [PER", b"* 1 FETCH"], out
    assert b" kwone" in out[0] and b" kwone" in out[1] and b" \\*)]" in out[1]
    # .SILENT: no FETCH, but the folder now has the keyword: FLAGS all the same
    out = checks[0].feed(a.cmd("STORE 2 +FLAGS.SILENT (kwtwo)"))
    assert out[0].startswith(b"* FLAGS (") and b"kwtwo" in out[0]
    # another session on the folder learns both before their FETCH at its next update point
    out = checks[1].feed(b.cmd("NOOP"))
    assert out[0].startswith(b"* FLAGS (") and b"kwone" in out[0] and b"kwtwo" in out[0]
    assert sum(ln.startswith(b"* FLAGS") for ln in out) == 1
    # a known keyword is not announced again
    out = checks[1].feed(b.cmd("STORE 3 +FLAGS (kwone)"))
    assert not any(ln.startswith(b"* FLAGS") for ln in out)
    # APPEND with a new keyword by another client: the selected sessions hear of it too
    c.append(folder, simple_message("m3"), flags=[b"kwthree"])
    out = checks[2].feed(x.cmd("FETCH 1:* (FLAGS)"))
    flags_at = next(i for i, ln in enumerate(out) if ln.startswith(b"* FLAGS") and b"kwthree" in ln)
    fetch_at = next(i for i, ln in enumerate(out) if b"FETCH" in ln and b"kwthree" in ln)
    assert flags_at < fetch_at
    out = checks[0].feed(a.cmd("NOOP"))
    assert any(ln.startswith(b"* FLAGS") and b"kwthree" in ln for ln in out)
    # a read-only session: FLAGS grows, PERMANENTFLAGS stays empty
    ro = Raw(imap_server, folder, examine=True)
    ro_check = KeywordCheck()
    ro_check.feed(ro.selected)
    c.select_folder(folder)
    c.add_flags([4], [b"kwfour"])
    out = ro.cmd("NOOP")
    assert b"* OK [PERMANENTFLAGS ()]" in b"".join(out) and b"kwfour" in out[0]
    # interleaved rounds: every session stores a new keyword, the others poll and fetch
    for rnd in range(4):
        for i, r in enumerate(sessions):
            checks[i].feed(r.cmd(f"STORE {1 + (rnd + i) % 4} +FLAGS (k{rnd}x{i})"))
            for j, other in enumerate(sessions):
                if j != i:
                    checks[j].feed(other.cmd("FETCH 1:* (FLAGS)" if (rnd + j) % 2 else "NOOP"))
    for chk in checks:
        assert chk.errors == []
    for r in [*sessions, ro]:
        r.close()
    c.logout()


def test_concurrent_keyword_stores_never_show_an_unannounced_keyword(imap_server):  # type: ignore[no-untyped-def]
    """imaptest's concurrent flag test in small: clients store new keywords, remove them, fetch
    and poll at once on one folder; no session may see a keyword its FLAGS did not name."""
    import random
    import threading

    c = client(imap_server)
    folder = fresh_folder(c, "kwrace")
    for i in range(8):
        c.append(folder, simple_message(f"m{i}"))
    c.logout()
    errors: list[str] = []
    done: list[int] = []

    def run(n: int) -> None:
        rnd = random.Random(n)
        r = Raw(imap_server)
        chk = KeywordCheck()
        chk.feed(r.cmd(f"SELECT {folder}"))
        for i in range(30):
            op = rnd.randrange(5)
            msg = rnd.randint(1, 8)
            if op == 0:
                chk.feed(r.cmd(f"STORE {msg} +FLAGS (c{n}k{i})"))
            elif op == 1:
                chk.feed(r.cmd(f"STORE {msg} +FLAGS.SILENT (c{n}k{i} shared{i % 3})"))
            elif op == 2:
                chk.feed(r.cmd(f"STORE {msg} -FLAGS (shared{i % 3})"))
            elif op == 3:
                chk.feed(r.cmd("FETCH 1:* (FLAGS)"))
            else:
                chk.feed(r.cmd("NOOP"))
        chk.feed(r.cmd("FETCH 1:* (FLAGS)"))
        r.close()
        errors.extend(f"client {n}: {e}" for e in chk.errors)
        done.append(n)

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert sorted(done) == list(range(8))
    assert not errors, (len(errors), errors[:5])
