"""The mailbox index against torn writes, kill -9 and power cuts (issue 9 §3), through a real
``gk serve`` and real IMAP clients:

- damaged pages in ``index.sqlite3`` (after a clean stop: met by a query; after kill -9: found by
  ``quick_check``) are quarantined and the index rebuilt, with the same UIDVALIDITY, UIDs and flags;
- a kill -9 in the middle of a MOVE of 1,107 messages leaves each in exactly one folder;
- a STORE answered OK whose file rename a power cut took is not undone at the next start;
- a mailbox deleted and re-created within a second gets a greater UIDVALIDITY (RFC 3501 2.3.1.1).
"""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import time
from pathlib import Path

from support.imap import (
    ALICE,
    PASSWORD,
    client,
    imaps,
    maildir,
    simple_message,
    start_imap_server,
    tls_client_context,
)


def _index(srv) -> Path:  # type: ignore[no-untyped-def]
    return srv.data_dir / "mail" / ALICE / "index.sqlite3"


def _damage(index: Path, table: str = "messages") -> None:
    """Overwrite the root b-tree page of ``table`` with garbage, as a torn write on an SD card
    would (the WAL a kill -9 leaves is folded in first, so the damage is what a reader meets)."""
    conn = sqlite3.connect(index)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    (size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    with open(index, "r+b") as f:
        f.seek((root - 1) * size)
        f.write(bytes([0xA5]) * size)


def _snapshot(srv, folder: str = "INBOX") -> tuple[int, dict[int, tuple[frozenset[bytes], bytes]]]:  # type: ignore[no-untyped-def]
    """(UIDVALIDITY, {uid: (flags, subject line)}) read with imaplib: LOGIN, SELECT, UID FETCH."""
    m = imaps(srv)
    try:
        typ, data = m.select(folder)
        assert typ == "OK", data
        validity = int(m.response("UIDVALIDITY")[1][0])
        typ, data = m.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK", data
        out = {}
        for item in data:
            if not isinstance(item, tuple):
                continue
            head, body = item
            uid = int(re.search(rb"UID (\d+)", head).group(1))  # type: ignore[union-attr]
            flags = frozenset(re.search(rb"FLAGS \(([^)]*)\)", head).group(1).split()) - {b"\\Recent"}  # type: ignore[union-attr]
            out[uid] = (flags, body.strip())
        return validity, out
    finally:
        m.logout()


def _fill(srv, count: int = 12) -> None:  # type: ignore[no-untyped-def]
    c = client(srv)
    for i in range(count):
        c.append("INBOX", simple_message(f"kept {i}"), flags=[b"\\Seen"] if i % 3 == 0 else [])
    c.select_folder("INBOX")
    c.add_flags([2, 5], [b"\\Flagged", b"$Todo"])
    c.delete_messages([count])
    c.expunge()
    c.logout()


def _quarantined(srv) -> list[Path]:  # type: ignore[no-untyped-def]
    return sorted(_index(srv).parent.glob("index.sqlite3.corrupt-*"))


def test_damaged_index_after_a_clean_stop_is_rebuilt_with_the_same_uids(make_server):  # type: ignore[no-untyped-def]
    srv = start_imap_server(make_server)
    _fill(srv)
    before = _snapshot(srv)
    srv.stop()
    _damage(_index(srv))
    srv.start()
    after = _snapshot(srv)  # was: NO [SERVERBUG] at SELECT, on every restart
    assert after == before
    assert "index.sqlite3 is damaged" in srv.log() and "moved aside to index.sqlite3.corrupt-" in srv.log()
    assert len(_quarantined(srv)) == 1  # kept for a post-mortem
    c = client(srv)  # the rebuilt index takes new mail as before, under the next UID
    c.append("INBOX", simple_message("after"))
    c.logout()
    validity, msgs = _snapshot(srv)
    assert validity == before[0] and sorted(msgs) == sorted(before[1]) + [13]
    srv.stop()
    srv.start()  # and stays sound: no second quarantine
    assert _snapshot(srv) == (validity, msgs)
    assert len(_quarantined(srv)) == 1


def test_damaged_index_after_kill_9_is_found_at_open(make_server):  # type: ignore[no-untyped-def]
    srv = start_imap_server(make_server)
    _fill(srv)
    before = _snapshot(srv)
    c = client(srv)
    c.select_folder("INBOX")  # the index is open when the process dies
    srv.kill9()
    assert (_index(srv).parent / "index.open").exists()
    _damage(_index(srv))
    d = maildir(srv)
    (d / "new" / f"{time.time_ns()}.while-down.localhost").write_bytes(simple_message("arrived while down"))
    srv.start()
    validity, msgs = _snapshot(srv)
    assert "quick_check after an unclean shutdown" in srv.log()
    assert validity == before[0]
    assert {u: v for u, v in msgs.items() if u in before[1]} == before[1]
    (new_uid,) = set(msgs) - set(before[1])
    assert new_uid == 13 and msgs[new_uid][1] == b"Subject: arrived while down"


def _raw_login(srv):  # type: ignore[no-untyped-def]
    sock = tls_client_context().wrap_socket(
        socket.create_connection(("127.0.0.1", srv.port("imap.tls_port")), timeout=60)
    )
    f = sock.makefile("rwb")
    assert f.readline().startswith(b"* OK")
    f.write(f'a LOGIN {ALICE} "{PASSWORD}"\r\n'.encode())
    f.flush()
    while not f.readline().startswith(b"a OK"):
        pass
    return sock, f


def test_kill_9_during_a_move_of_1107_messages_loses_and_duplicates_nothing(make_server):  # type: ignore[no-untyped-def]
    count = 1107
    srv = start_imap_server(make_server)
    c = client(srv)
    c.create_folder("Big")
    big = maildir(srv, folder="Big")
    for i in range(count):  # delivered behind the server's back: fast, indexed at SELECT
        (big / "new" / f"17000{i:05d}.M1P1Q{i}.localhost").write_bytes(simple_message(f"move {i}"))
    assert c.select_folder("Big")[b"EXISTS"] == count
    c.logout()
    archive = maildir(srv, folder="Archive") / "cur"
    sock, f = _raw_login(srv)
    f.write(b"b SELECT Big\r\n")
    f.flush()
    while not f.readline().startswith(b"b OK"):
        pass
    f.write(b"c UID MOVE 1:* Archive\r\n")
    f.flush()
    deadline = time.monotonic() + 120
    while not os.listdir(archive):  # kill as soon as the first message reached the target
        assert time.monotonic() < deadline, srv.log()[-3000:]
    srv.kill9()
    in_archive_at_kill = len(os.listdir(archive))
    sock.close()
    srv.start()
    m = imaps(srv)
    subjects: list[bytes] = []
    for folder in ("Big", "Archive"):
        typ, data = m.select(folder)
        assert typ == "OK", data
        typ, data = m.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        subjects += [item[1].strip() for item in data if isinstance(item, tuple)]
    m.logout()
    assert len(subjects) == count, f"{len(subjects)} messages after the restart, {count} before"
    assert sorted(subjects) == sorted(f"Subject: move {i}".encode() for i in range(count))
    on_disk = len(os.listdir(big / "cur")) + len(os.listdir(archive))
    assert on_disk == count
    print(f"kill -9 with {in_archive_at_kill} of {count} files in the target; after restart each once")


def test_an_acknowledged_store_survives_a_lost_rename(make_server):  # type: ignore[no-untyped-def]
    srv = start_imap_server(make_server)
    c = client(srv)
    c.append("INBOX", simple_message("flag me"))
    c.append("INBOX", simple_message("unflag me"), flags=[b"\\Flagged", b"\\Seen"])
    cur = maildir(srv) / "cur"
    old_names = sorted(os.listdir(cur))
    c.select_folder("INBOX")
    c.add_flags([1], [b"\\Flagged"])  # OK: the client was told
    c.remove_flags([2], [b"\\Flagged", b"\\Seen"])
    new_names = sorted(os.listdir(cur))
    assert new_names != old_names
    srv.kill9()
    # a power cut right after the OK: the index (synchronous=FULL) kept the flags, the
    # directory lost the renames
    for old, new in zip(old_names, new_names, strict=True):
        os.rename(cur / new, cur / old)
    srv.start()
    c = client(srv)
    c.select_folder("INBOX")
    flags = c.get_flags([1, 2])
    assert set(flags[1]) == {b"\\Flagged"} and set(flags[2]) == set(), flags
    c.logout()
    assert sorted(os.listdir(cur)) == new_names  # the file names follow the index again


def test_a_recreated_mailbox_gets_a_greater_uidvalidity(make_server):  # type: ignore[no-untyped-def]
    srv = start_imap_server(make_server)
    c = client(srv)
    seen = []
    for _ in range(3):  # within the same second, most of the time
        c.create_folder("Again")
        seen.append(c.select_folder("Again")[b"UIDVALIDITY"])
        c.append("Again", simple_message("x"))
        c.unselect_folder()
        c.delete_folder("Again")
    c.logout()
    assert seen[0] < seen[1] < seen[2], seen


def test_a_maildir_copied_in_answers_at_once_and_its_stores_survive_kill_9(make_server):  # type: ignore[no-untyped-def]
    """A folder first seen full (its files in cur/ without UIDs in their names, indexed lazily):
    FETCH ENVELOPE / BODYSTRUCTURE and SEARCH right after the first SELECT answer what the
    messages hold; STOREs answered OK (most committed on the hub, without a pool hand-off)
    survive a kill -9 that follows the last OK at once; and a lost index gives every message
    its UID back from gk-uidmap."""
    count = 60
    srv = start_imap_server(make_server)
    imaps(srv).logout()  # the user's Maildir exists
    cur = maildir(srv, folder="Copied") / "cur"
    for sub in ("cur", "new", "tmp"):
        (cur.parent / sub).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        body = f"copied body {i}\r\n" + ("needle here\r\n" if i == 41 else "")
        data = simple_message(f"copied {i}", body=body, sender=f"s{i}@example.net")
        (cur / f"17000{i:05d}.M{i}P1.other,S={len(data)}:2,{'S' if i % 2 else ''}").write_bytes(data)
    names = sorted(os.listdir(cur))
    m = imaps(srv)
    m.create("Copied")  # ALREADYEXISTS or OK: the folder is found on disk either way
    typ, data = m.select("Copied")
    assert typ == "OK" and int(data[0]) == count
    typ, data = m.uid("FETCH", "1:*", "(UID ENVELOPE)")
    assert typ == "OK"
    envs = [item for item in data if isinstance(item, bytes)]
    assert len(envs) == count
    assert b'"copied 7" (("Carol" NIL "s7" "example.net"))' in envs[7]
    typ, data = m.uid("FETCH", "42", "(BODYSTRUCTURE)")
    assert typ == "OK" and b'("TEXT" "PLAIN" ("CHARSET" "utf-8")' in data[0]
    assert m.uid("SEARCH", "TEXT", "needle")[1] == [b"42"]
    assert m.uid("SEARCH", "FROM", "s13@")[1] == [b"14"]
    assert sorted(os.listdir(cur)) == names  # no rename per file at the first open
    for uid in range(1, 41):  # more than HUB_COMMITS_MAX: on the hub, and once in the pool
        typ, _ = m.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Flagged)")
        assert typ == "OK"
    typ, _ = m.uid("STORE", "41:60", "+FLAGS.SILENT", "($Later)")
    assert typ == "OK"
    srv.kill9()
    srv.start()
    validity, before = _snapshot(srv, "Copied")
    assert sorted(before) == list(range(1, count + 1))
    for uid, (flags, subject) in before.items():
        assert subject == f"Subject: copied {uid - 1}".encode()
        want = {b"\\Flagged"} if uid <= 40 else {b"$Later"}
        assert flags == want | ({b"\\Seen"} if (uid - 1) % 2 else set()), (uid, flags)
    srv.stop()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{_index(srv)}{suffix}").unlink(missing_ok=True)
    srv.start()
    assert _snapshot(srv, "Copied") == (validity, before)  # UIDs from gk-uidmap, flags from names
