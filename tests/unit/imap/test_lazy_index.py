"""Lazy indexing of a big folder first seen by the store (issue 11 item 4): the first scan gives
UIDs, flags, sizes and dates without parsing; ENVELOPE, BODYSTRUCTURE and SEARCH still answer
exactly what an eager index answers, and an index left half-parsed (closed, killed) resumes
and ends up the same as an eager one."""

from __future__ import annotations

import os
import sqlite3
import time
import zoneinfo
from pathlib import Path
from typing import Any

import gevent
import pytest

from gk.mail.mailbox import MailboxStore, body_structure, maildir
from gk.mail.mailbox import store as store_mod

COUNT = store_mod.LAZY_FROM + 8


def _msg(i: int) -> bytes:
    head = f"From: =?utf-8?q?J=C3=B6rg?= <j{i}@example.de>\r\nTo: ann@example.org\r\nSubject: note {i}\r\n"
    head += f"Date: Mon, {1 + i % 27} Jan 2024 10:00:00 +0100\r\nMessage-ID: <{i}@example.de>\r\n"
    if i % 3:
        return (head + f"\r\nplain body word{i} here\r\n").encode()
    return (
        head + 'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="b"\r\n\r\n--b\r\n'
        f"Content-Type: text/plain; charset=utf-8\r\n\r\nalt body word{i}\r\n--b\r\n"
        f"Content-Type: text/html\r\n\r\n<p>alt body word{i}</p>\r\n--b--\r\n"
    ).encode()


def _fill(root: Path) -> None:
    cur = maildir.user_root(root, "ann@example.org") / "cur"
    cur.mkdir(parents=True, exist_ok=True)
    for d in ("new", "tmp"):
        (cur.parent / d).mkdir(exist_ok=True)
    for i in range(COUNT):
        data = _msg(i)
        path = cur / f"{1_700_000_000 + i}.M{i}P1.test,S={len(data)}:2,{'S' if i % 2 else ''}"
        path.write_bytes(data)
        os.utime(path, (1_700_000_000 + i * 60,) * 2)


def _table(path: Path) -> dict[str, list[Any]]:
    conn = sqlite3.connect(path)
    try:
        return {
            "messages": conn.execute(
                "SELECT uid, size, internaldate, sentdate, flags, envelope, structure FROM messages ORDER BY uid"
            ).fetchall(),
            "fts": conn.execute(
                "SELECT m.uid, f.hfrom, f.subject, f.body FROM fts f JOIN messages m ON m.id = f.rowid ORDER BY 1"
            ).fetchall(),
        }
    finally:
        conn.close()


def _wait_parsed(mb: Any) -> None:
    deadline = time.monotonic() + 60
    while mb.db.one("SELECT count(*) FROM messages WHERE structure IS NULL")[0]:
        assert time.monotonic() < deadline, "the background indexer did not finish"
        gevent.sleep(0.05)


@pytest.fixture
def eager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """The same Maildir indexed the old way (every message parsed at the first scan)."""
    root = tmp_path / "eager"
    _fill(root)
    with monkeypatch.context() as m:
        m.setattr(store_mod, "LAZY_FROM", 10**9)
        mb = MailboxStore(root).user("ann@example.org")
        assert mb.folder("INBOX").exists == COUNT
        mb.close()
    return _table(root / "ann@example.org" / "index.sqlite3")


def test_first_scan_is_lazy_and_answers_like_an_eager_index(tmp_path: Path, eager: dict[str, list[Any]]) -> None:
    root = tmp_path / "lazy"
    _fill(root)
    mb = MailboxStore(root).user("ann@example.org")
    mb._kick_backfill = lambda: None  # type: ignore[method-assign]  # on demand only, in this test
    info = mb.folder("INBOX")
    assert info.exists == COUNT and info.uidnext == COUNT + 1 and info.unseen == COUNT // 2
    mb._join_build()  # the rows are written after the answer (store._defer_build): read them
    rows = mb.db.query("SELECT count(*) FROM messages WHERE structure IS NULL AND envelope IS NULL")
    assert rows[0][0] == COUNT  # nothing parsed: UIDs, sizes, dates and flags only
    flags_only = mb.infos("INBOX", range(1, COUNT + 1), envelopes=False)
    assert [m.size for m in flags_only.values()] == [r[1] for r in eager["messages"]]
    assert mb.db.one("SELECT count(*) FROM messages WHERE envelope IS NOT NULL")[0] == 0
    # ENVELOPE on demand (top header block only), the same as the full parse gives
    env = mb.infos("INBOX", [1, 2, 3])
    assert [m.envelope_json for m in env.values()] == [r[5] for r in eager["messages"][:3]]
    assert env[2].subject == "note 1" and env[2].sender == "Jörg <j1@example.de>"
    assert mb.db.one("SELECT count(*) FROM messages WHERE structure IS NOT NULL")[0] == 0
    # BODYSTRUCTURE on demand: that message only
    top = mb.structure("INBOX", 4)
    assert "ALTERNATIVE" in body_structure(top, True)
    assert mb.db.one("SELECT count(*) FROM messages WHERE structure IS NOT NULL")[0] == 1
    # SENTON and TEXT search need what the parse gives: the backlog is parsed first
    assert mb.search("INBOX", ("text", "word7 ")) == [8]
    assert mb.search("INBOX", ("body", "alt body word9")) == [10]
    assert mb.db.one("SELECT count(*) FROM messages WHERE structure IS NULL")[0] == 0
    # the rows a client can see are those of the eager index; UIDs and flags unchanged
    mb.close()
    assert _table(root / "ann@example.org" / "index.sqlite3") == eager


def test_search_parses_the_backlog_in_overlapping_groups(
    tmp_path: Path, eager: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first TEXT search parses the backlog group by group, each stored while the next
    parses: every row ends up as the eager index has it, whatever the group boundaries."""
    monkeypatch.setattr(store_mod, "INDEX_GROUP", 7)  # COUNT is not a multiple: a short last group
    root = tmp_path / "lazy"
    _fill(root)
    mb = MailboxStore(root).user("ann@example.org")
    mb._kick_backfill = lambda: None  # type: ignore[method-assign]
    mb.sync("INBOX")
    assert mb.search("INBOX", ("text", "word33 ")) == [34]
    assert mb.db.one("SELECT count(*) FROM messages WHERE structure IS NULL")[0] == 0
    mb.close()
    assert _table(root / "ann@example.org" / "index.sqlite3") == eager


def test_background_indexer_resumes_after_a_stop(tmp_path: Path, eager: dict[str, list[Any]]) -> None:
    root = tmp_path / "lazy"
    _fill(root)
    store = MailboxStore(root)
    mb = store.user("ann@example.org")
    started: list[int] = []
    real = mb._kick_backfill
    mb._kick_backfill = lambda: started.append(1)  # type: ignore[method-assign]
    mb.sync("INBOX")
    mb._join_build()  # the rows are written after the answer (store._defer_build)
    assert started  # the scan asked for the background indexer
    mb._kick_backfill = real  # type: ignore[method-assign]
    # one batch stored, then the process "dies" (the index is closed without the rest)
    rows = mb.db.query("SELECT id, name FROM messages ORDER BY id LIMIT ?", (store_mod.BACKFILL_BATCH,))
    cur = maildir.user_root(root, "ann@example.org") / "cur"
    parsed = store_mod._parse_files([str(cur / r[1]) for r in rows])
    mb._store_parsed([(r[0], p) for r, p in zip(rows, parsed, strict=True) if p is not None])
    mb.close()
    half = _table(root / "ann@example.org" / "index.sqlite3")
    assert 0 < len(half["fts"]) < COUNT
    # a new process opens the index: the indexer resumes by itself and finishes
    mb = MailboxStore(root).user("ann@example.org")
    _wait_parsed(mb)
    assert list(mb.uids("INBOX")) == list(range(1, COUNT + 1))
    mb.close()
    assert _table(root / "ann@example.org" / "index.sqlite3") == eager


def test_the_full_parse_leaves_an_envelope_it_holds_alone(
    tmp_path: Path, eager: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The full parse of messages whose ENVELOPE the index holds (read from the header block
    first) does not build it again: the addresses were a third of a parse. The rows still end
    up as the eager index has them."""
    from gk.mail.mailbox import mime

    root = tmp_path / "lazy"
    _fill(root)
    mb = MailboxStore(root).user("ann@example.org")
    mb._kick_backfill = lambda: None  # type: ignore[method-assign]
    mb.sync("INBOX")
    mb.infos("INBOX", range(1, 11))  # ten ENVELOPEs from the header blocks
    built: list[object] = []
    real = mime.envelope
    monkeypatch.setattr(mime, "envelope", lambda msg: (built.append(msg), real(msg))[1])
    assert mb.search("INBOX", ("text", "word33 ")) == [34]  # the whole backlog parsed for it
    assert len(built) == COUNT - 10  # only the ENVELOPEs it did not hold
    mb.close()
    assert _table(root / "ann@example.org" / "index.sqlite3") == eager
    # the background indexer reads every ENVELOPE first (``_prefill_envelopes``): none built twice
    root = tmp_path / "lazy2"
    _fill(root)
    built.clear()
    mb = MailboxStore(root).user("ann@example.org")
    mb.sync("INBOX")
    mb._join_build()  # the rows are written after the answer (store._defer_build)
    _wait_parsed(mb)
    assert built == []
    mb.close()
    assert _table(root / "ann@example.org" / "index.sqlite3") == eager


def test_flag_change_during_lazy_index_is_kept(tmp_path: Path) -> None:
    """A STORE renames a file the background indexer is about to read: the message is parsed
    all the same (a later pass finds it under its new name) and keeps its new flags."""
    root = tmp_path / "lazy"
    _fill(root)
    mb = MailboxStore(root).user("ann@example.org")
    mb.sync("INBOX")
    mb.set_flags("INBOX", list(range(1, COUNT + 1)), ["\\Flagged"])
    _wait_parsed(mb)
    assert all("\\Flagged" in m.flags for m in mb.infos("INBOX", range(1, COUNT + 1)).values())
    assert mb.db.one("SELECT count(*) FROM fts")[0] == COUNT
    mb.close()


def test_envelope_wire_form_is_kept_and_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gk.mail.imap.response import pack

    root = tmp_path / "lazy"
    _fill(root)
    mb = MailboxStore(root).user("ann@example.org")
    mb._kick_backfill = lambda: None  # type: ignore[method-assign]
    mb.folder("INBOX")
    mb.structure("INBOX", 4)  # one message fully parsed: its wire form comes from the stored ENVELOPE
    first = mb.infos("INBOX", range(1, COUNT + 1))
    assert all(m.envelope_wire == pack(m.envelope) for m in first.values())
    stored = dict(mb.db.query("SELECT uid, envwire FROM messages"))
    assert all(stored[u] == m.envelope_wire for u, m in first.items())

    def no_parse(*_: object) -> object:
        raise AssertionError("a kept wire form is read, not made again")

    monkeypatch.setattr(store_mod, "_parse_envelopes", no_parse)
    assert mb.infos("INBOX", range(1, COUNT + 1)) == first
    mb.close()


def test_background_indexer_makes_every_envelope_wire_form_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a lazy first scan the ENVELOPE wire forms are made at once, in the background (the
    FETCH ENVELOPE a client sends next reads them), before the full parse, which waits for the
    mailbox to be idle; they are what the general path renders."""
    from gk.mail.imap.response import pack

    monkeypatch.setattr(store_mod, "BACKFILL_IDLE", 3600.0)  # the full parse never starts here
    root = tmp_path / "lazy"
    _fill(root)
    mb = MailboxStore(root).user("ann@example.org")
    mb.sync("INBOX")
    mb._join_build()  # the rows are written after the answer (store._defer_build)
    deadline = time.monotonic() + 60
    while mb.db.one("SELECT count(*) FROM messages WHERE envwire IS NULL")[0]:
        assert time.monotonic() < deadline, "the ENVELOPEs were not made in the background"
        gevent.sleep(0.05)
    assert mb.db.one("SELECT count(*) FROM messages WHERE structure IS NULL")[0] == COUNT

    def no_parse(*_: object) -> object:
        raise AssertionError("a kept wire form is read, not made again")

    monkeypatch.setattr(store_mod, "_parse_envelopes", no_parse)
    infos = mb.infos("INBOX", range(1, COUNT + 1))
    assert len(infos) == COUNT
    assert all(m.envelope_wire == pack(m.envelope) for m in infos.values())
    assert infos[2].subject == "note 1" and infos[2].sender == "Jörg <j1@example.de>"
    mb.close()


def test_a_flag_change_commits_then_renames_on_the_hub_when_small_else_in_one_pool_hand_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = store_mod.HUB_RENAMES_MAX + 1
    mb = MailboxStore(tmp_path / "mail").user("ann@example.org")
    for i in range(big + 1):
        mb.append("INBOX", _msg(i))
    runner = mb.db.commit_runner
    handed: list[str] = []
    real = store_mod.pools.run_io

    def run_io(fn: Any, *args: Any) -> Any:
        handed.append(fn.__name__)
        return real(fn, *args)

    monkeypatch.setattr(store_mod.pools, "run_io", run_io)
    mb.set_flags("INBOX", [1, 2], ["\\Seen"], "add")
    assert handed == [] and mb.db.commit_runner is runner  # a client's STORE: no hand-off
    assert mb.db.one("PRAGMA wal_autocheckpoint")[0] == store_mod.WAL_AUTOCHECKPOINT
    mb.set_flags("INBOX", range(1, big + 1), ["\\Flagged"], "add")
    assert handed == ["_commit_and_rename"] and mb.db.commit_runner is runner
    cur = maildir.user_root(tmp_path / "mail", "ann@example.org") / "cur"
    names = sorted(p.name for p in cur.iterdir())
    assert [n.endswith(":2,FS") for n in names] == [True, True] + [False] * (big - 1)
    # every HUB_COMMITS_MAX-th small change starts a WAL checkpoint in the pool, on a connection
    # of its own, which no STORE waits for: the commits all stay on the hub
    handed.clear()
    for i in range(store_mod.HUB_COMMITS_MAX + 1):
        mb.set_flags("INBOX", [big + 1], ["\\Answered"], "add" if i % 2 == 0 else "remove")
    assert handed == [] and mb._checkpointer is not None  # started, not run yet: nobody waited
    mb._checkpointer.join(60)
    assert handed == ["_checkpoint_wal"]
    assert mb.db.one("PRAGMA wal_checkpoint(PASSIVE)")[0] == 0  # not busy: the WAL could be copied back
    mb.close()
    again = MailboxStore(tmp_path / "mail").user("ann@example.org")
    seen = [m.seen for m in again.infos("INBOX", range(1, big + 2), envelopes=False).values()]
    assert seen == [True, True] + [False] * (big - 1)
    again.close()


@pytest.mark.parametrize("wide", [False, True])
def test_a_flag_change_reads_only_the_rows_it_touches_and_only_the_uids_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wide: bool
) -> None:
    """Adding reads the rows that lack a flag, removing those that have one (case-insensitively,
    as IMAP compares flags); a wide change reads its UID span once and keeps to the UIDs named."""
    if wide:
        monkeypatch.setattr(store_mod, "WIDE_STORE", 2)
    mb = MailboxStore(tmp_path / "mail").user("ann@example.org")
    for i in range(6):
        mb.append("INBOX", _msg(i))
    mb.set_flags("INBOX", [1, 3, 4], ["\\Flagged", "Foo"], "add")
    changed, failed = mb.set_flags("INBOX", [1, 2, 3, 5], ["\\flagged"], "remove")
    assert [c[0] for c in changed] == [1, 3] and failed == []
    flags = {u: set(m.flags) for u, m in mb.infos("INBOX", range(1, 7), envelopes=False).items()}
    assert flags == {1: {"Foo"}, 2: set(), 3: {"Foo"}, 4: {"\\Flagged", "Foo"}, 5: set(), 6: set()}
    changed, _ = mb.set_flags("INBOX", [1, 2, 4, 6], ["FOO", "\\Seen"], "add")
    assert [(c[0], set(c[1])) for c in changed] == [
        (1, {"Foo", "\\Seen"}),
        (2, {"FOO", "\\Seen"}),
        (4, {"\\Flagged", "Foo", "\\Seen"}),
        (6, {"FOO", "\\Seen"}),
    ]
    changed, _ = mb.set_flags("INBOX", [1, 2, 3], ["foo"], "add")
    assert changed == []  # each has it, in some case: nothing to change, no MODSEQ spent
    mb.close()


def test_a_folder_first_seen_full_keeps_its_file_names_and_its_uids_survive_a_lost_index(tmp_path: Path) -> None:
    """No rename per file at the first scan: the UIDs go to gk-uidmap (one append), from which
    a rebuilt index takes them back; a torn last line of the map is ignored."""
    root = tmp_path / "lazy"
    _fill(root)
    cur = maildir.user_root(root, "ann@example.org") / "cur"
    names = sorted(os.listdir(cur))
    store = MailboxStore(root)
    mb = store.user("ann@example.org")
    mb._kick_backfill = lambda: None  # type: ignore[method-assign]
    assert mb.folder("INBOX").exists == COUNT
    assert sorted(os.listdir(cur)) == names  # not one rename
    mb.set_flags("INBOX", [3], ["\\Flagged"])
    before = {m.uid: (m.size, m.flags) for m in mb.infos("INBOX", range(1, COUNT + 1), envelopes=False).values()}
    subjects = {u: m.subject for u, m in mb.infos("INBOX", [1, 5, COUNT]).items()}
    mb.close()
    with open(cur.parent / store_mod.uidlist.UIDMAP, "ab") as f:
        f.write(b"77 torn-in-the-middle")  # a crash cut the last append short
    for suffix in ("", "-wal", "-shm"):
        (root / "ann@example.org" / f"index.sqlite3{suffix}").unlink(missing_ok=True)
    again = MailboxStore(root).user("ann@example.org")
    again._kick_backfill = lambda: None  # type: ignore[method-assign]
    assert again.folder("INBOX").exists == COUNT
    after = {m.uid: (m.size, m.flags) for m in again.infos("INBOX", range(1, COUNT + 1), envelopes=False).values()}
    assert after == before
    assert {u: m.subject for u, m in again.infos("INBOX", [1, 5, COUNT]).items()} == subjects
    # a later delivery appends to the same map after the torn line, and its line is read back
    store_mod.uidlist.append_map(cur.parent, [("late", 99)])
    assert store_mod.uidlist.read_map(cur.parent)["late"] == 99
    assert "torn-in-the-middle" not in store_mod.uidlist.read_map(cur.parent)
    again.close()


def test_first_scan_primes_the_select_views_with_what_the_queries_give(tmp_path: Path) -> None:
    """A first open makes SELECT's views (UIDs, counts, keywords, first unseen) from the rows it
    inserts; they equal what the queries over the index give. Its files get the server's zone."""
    root = tmp_path / "lazy"
    _fill(root)
    cur = maildir.user_root(root, "ann@example.org") / "cur"
    (cur.parent / "dovecot-keywords").write_text("0 $Junk\n1 work\n")
    first = sorted(cur.iterdir())[3]
    first.rename(cur / (first.name.split(":")[0] + ":2,Sab"))  # keywords from the file name
    mb = MailboxStore(root, zone=lambda: zoneinfo.ZoneInfo("America/New_York")).user("ann@example.org")
    mb._kick_backfill = lambda: None  # type: ignore[method-assign]
    mb.sync("INBOX")
    # the zone (looked up in the I/O pool with the stats) is the internal dates' (Nov 2023: EST)
    assert {m.tzoffset for m in mb.infos("INBOX", range(1, COUNT + 1), envelopes=False).values()} == {-300}
    assert [set(v[1]) for v in mb._views.values()] == [{"counts", "uids", "keywords", "first_unseen"}]
    primed = (mb.folder("INBOX"), list(mb.uids("INBOX")), mb.keywords("INBOX"), mb.first_unseen("INBOX"))
    assert primed[2] == ["$Junk", "work"] and primed[3] == 1
    mb._views.clear()
    assert (mb.folder("INBOX"), list(mb.uids("INBOX")), mb.keywords("INBOX"), mb.first_unseen("INBOX")) == primed
    mb.close()
