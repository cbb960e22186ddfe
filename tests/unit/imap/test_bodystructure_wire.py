"""The BODYSTRUCTURE wire form kept in the index (``bswire``): the same bytes the IMAP layer's
packer makes of the tree, made once, and for a folder indexed lazily without the whole parse."""

from __future__ import annotations

import io
import sqlite3
import time

import gevent
import gevent.event
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.imapharness import USER, Client, IMAPHarness
from test_mime_structure import trees

from gk.mail.imap.messages import WIRE_CHUNKS
from gk.mail.imap.response import pack
from gk.mail.mailbox import bodywire, maildir
from gk.mail.mailbox import store as store_mod
from gk.mail.mailbox.mime import body_structure, parse_structure

# parameters, descriptions and names a quoted string cannot carry as they are
ODD = st.text(alphabet=st.sampled_from(['"', "\\", "é", "a", " ", "\x7f", "=", ";"]), min_size=1, max_size=12)


@settings(max_examples=80, deadline=None)
@given(trees(), ODD, st.booleans())
def test_the_wire_form_is_what_the_imap_packer_makes(msg, odd: str, long: bool) -> None:  # type: ignore[no-untyped-def]
    msg["Content-Description"] = odd * (200 if long else 1)  # > 1,000 bytes: a literal
    msg.set_param("x-odd", odd)
    raw = msg.as_bytes()
    top = parse_structure(io.BytesIO(raw))
    assert bodywire.wire(top) == pack(body_structure(top, True))


def _mixed(i: int) -> bytes:
    return (
        f"From: Ann <ann@example.com>\r\nSubject: note {i}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        f"Content-Type: text/plain; charset=utf-8\r\n\r\nbody {i} xylophone\r\n--b\r\n"
        'Content-Type: application/pdf; name="a.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        "JVBERi0=\r\n--b--\r\n"
    ).encode()


@pytest.fixture
def client(harness: IMAPHarness) -> Client:
    c = harness.connect()
    c.login()
    return c


def _lazy_folder(harness: IMAPHarness, client: Client, monkeypatch: pytest.MonkeyPatch, ahead: int = 0) -> int:
    """A Maildir copied in (more files than LAZY_FROM), then SELECTed: indexed lazily. The full
    parse never starts in the background; ``ahead``: how many of the newest messages get their
    BODYSTRUCTURE made by the background pass."""
    monkeypatch.setattr(store_mod, "BACKFILL_IDLE", 3600.0)
    monkeypatch.setattr(store_mod, "PREFILL_BODIES", ahead)
    cur = maildir.user_root(harness.ctx.mail_root, USER) / "cur"
    count = store_mod.LAZY_FROM + 8
    for i in range(1, count + 1):
        data = _mixed(i)
        (cur / f"{1_700_000_000 + i}.M{i}P1.test,S={len(data)}:2,").write_bytes(data)
    client.ok("SELECT INBOX")
    return count


def test_a_phones_first_sync_of_a_lazy_folder_skips_the_whole_parse(
    harness: IMAPHarness, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FETCH BODYSTRUCTURE over messages indexed lazily (a Maildir copied in): their structure is
    read and its wire form kept, but they stay unparsed for the rest (no text index yet, the
    background indexer's job); the answers are those of a parsed folder, and a second FETCH
    reads the kept bytes without opening a file."""
    count = _lazy_folder(harness, client, monkeypatch)
    mb = harness.store.user(USER)
    lazy = client.ok("FETCH 1:* (UID BODYSTRUCTURE)")
    assert len(lazy) == count
    assert b'BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 16 1 NIL NIL NIL NIL)' in lazy[0]
    assert b'"MIXED" ("BOUNDARY" "b") NIL NIL NIL)' in lazy[0]
    unparsed = mb.db.one("SELECT count(*) FROM messages WHERE structure IS NULL")[0]  # type: ignore[index]
    assert unparsed == count  # the text index and the rest: later
    mb._join_wiring()  # kept after the answer
    assert mb.db.one("SELECT count(*) FROM messages WHERE bswire IS NULL")[0] == 0  # type: ignore[index]
    opened: list[object] = []
    real = store_mod._body_wires
    store_mod._body_wires = lambda items: (opened.append(items), real(items))[1]  # type: ignore[assignment]
    try:
        assert client.ok("FETCH 1:* (UID BODYSTRUCTURE)") == lazy
        assert opened == []  # the kept bytes
        # the whole parse (a BODY section needs the tree) agrees, and keeps the wire form
        client.ok("FETCH 1:* (BODY.PEEK[1])")
        assert mb.db.one("SELECT count(*) FROM messages WHERE structure IS NULL")[0] == 0  # type: ignore[index]
        assert client.ok("FETCH 1:* (UID BODYSTRUCTURE)") == lazy
        assert opened == []
    finally:
        store_mod._body_wires = real  # type: ignore[assignment]
    assert client.ok('SEARCH TEXT "xylophone"')[0] == b"* SEARCH " + " ".join(map(str, range(1, count + 1))).encode()


def test_an_index_from_before_the_wire_form_makes_it_from_the_stored_tree(harness: IMAPHarness, client: Client) -> None:
    """Messages parsed by an older GK have a tree but no ``bswire``: the first FETCH makes it from
    the tree (the file is not parsed again) and keeps it; the answer is the tree's."""
    for i in range(1, 4):
        harness.deliver(_mixed(i))
    client.ok("SELECT INBOX")
    mb = harness.store.user(USER)
    fresh = client.ok("FETCH 1:* (UID BODYSTRUCTURE)")
    with sqlite3.connect(mb.db.path) as conn:
        assert conn.execute("SELECT count(*) FROM messages WHERE bswire IS NOT NULL").fetchone()[0] == 3
    mb.db.execute("UPDATE messages SET bswire = NULL")
    parsed: list[str] = []
    real = store_mod.parse_structure
    store_mod.parse_structure = lambda f, **kw: (parsed.append(f.name), real(f, **kw))[1]  # type: ignore[assignment]
    try:
        assert client.ok("FETCH 1:* (UID BODYSTRUCTURE)") == fresh
    finally:
        store_mod.parse_structure = real  # type: ignore[assignment]
    assert parsed == []
    mb._join_wiring()
    assert mb.db.one("SELECT count(*) FROM messages WHERE bswire IS NULL")[0] == 0  # type: ignore[index]


def test_the_background_pass_makes_the_newest_first(
    harness: IMAPHarness, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a lazy first scan the background pass makes, right after the ENVELOPEs, the
    BODYSTRUCTURE of each folder's newest messages (what a phone's first sync asks for), and,
    while the mailbox is busy, only theirs; the full parse, which waits for the mailbox to be
    idle, has not started."""
    count = _lazy_folder(harness, client, monkeypatch, ahead=10)
    mb = harness.store.user(USER)
    deadline = time.monotonic() + 60
    while mb.db.one("SELECT count(*) FROM messages WHERE bswire IS NOT NULL")[0] < 10:  # type: ignore[index]
        assert time.monotonic() < deadline, "the newest BODYSTRUCTUREs were not made in the background"
        gevent.sleep(0.05)
    gevent.sleep(0.2)  # ... and no more come
    made = [r[0] for r in mb.db.query("SELECT uid FROM messages WHERE bswire IS NOT NULL ORDER BY uid")]
    assert made == list(range(count - 9, count + 1))
    assert mb.db.one("SELECT count(*) FROM messages WHERE structure IS NULL")[0] == count  # type: ignore[index]
    opened: list[object] = []
    real = store_mod._body_wires
    monkeypatch.setattr(store_mod, "_body_wires", lambda items: (opened.append(items), real(items))[1])
    newest = client.ok(f"UID FETCH {count - 9}:* (UID BODYSTRUCTURE)")
    assert len(newest) == 10 and b'"MIXED" ("BOUNDARY" "b")' in newest[0]
    assert opened == []  # made by the background pass
    client.ok("UID FETCH 1:2 (UID BODYSTRUCTURE)")
    assert len(opened) == 1  # older ones: made by the FETCH


def test_an_idle_mailbox_gets_the_rest_newest_first_before_the_full_parse(
    harness: IMAPHarness, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the mailbox is idle, the pass makes the BODYSTRUCTURE of the older messages too,
    newest first, ``IDLE_BODIES`` a batch, all before the full parse starts, but not of a message
    over ``IDLE_BODY_SIZE`` (left to the full parse, which reads it anyway)."""
    calls: list[tuple[str, list[str]]] = []
    wires, parses = store_mod._body_wires, store_mod._parse_files
    monkeypatch.setattr(
        store_mod, "_body_wires", lambda items: (calls.append(("wire", [p for p, _ in items])), wires(items))[1]
    )
    monkeypatch.setattr(
        store_mod,
        "_parse_files",
        lambda paths, known=(): (calls.append(("parse", list(paths))), parses(paths, known))[1],
    )
    monkeypatch.setattr(store_mod, "IDLE_BODIES", 8)
    monkeypatch.setattr(store_mod, "IDLE_BODY_SIZE", len(_mixed(99)) + 100)
    cur = maildir.user_root(harness.ctx.mail_root, USER) / "cur"
    big = _mixed(0).replace(b"JVBERi0=", b"JVBERi0=\r\n" * 100)
    (cur / f"1699999999.M0P1.test,S={len(big)}:2,").write_bytes(big)  # the oldest: uid 1
    count = _lazy_folder(harness, client, monkeypatch, ahead=10) + 1
    mb = harness.store.user(USER)
    mb._join_build()  # the SELECT answered from the listing; its index rows are written after it
    assert mb.db.one("SELECT count(*) FROM messages WHERE structure IS NULL")[0] == count  # type: ignore[index]
    monkeypatch.setattr(store_mod, "BACKFILL_IDLE", 0.05)
    mb._touched = 0.0  # idle as from now (the pass already waits with the old setting)
    deadline = time.monotonic() + 60
    while mb.db.one("SELECT count(*) FROM messages WHERE structure IS NULL")[0]:  # type: ignore[index]
        assert time.monotonic() < deadline, "the background pass did not finish"
        gevent.sleep(0.05)
    uid_of = {r[1]: r[0] for r in mb.db.query("SELECT uid, name FROM messages")}
    kinds = [k for k, _ in calls]
    first_parse = kinds.index("parse")
    assert "wire" not in kinds[first_parse:]  # every BODYSTRUCTURE pass before the full parse
    order = [[uid_of[p.rsplit("/", 1)[1]] for p in paths] for _, paths in calls[:first_parse]]
    assert [len(b) for b in order] == [10, 8, 8, 8, 6]  # the newest 10, then the 30 older but the big one
    assert sum(order, []) == list(range(count, 1, -1))  # newest first
    assert mb.db.one("SELECT count(*) FROM messages WHERE bswire IS NULL")[0] == 0  # type: ignore[index]


def test_a_cold_fetch_stores_its_wire_forms_once_after_its_last_chunk(
    harness: IMAPHarness, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A FETCH reads cold messages in chunks (WIRE_CHUNKS: the client parses the first lines
    meanwhile); the wire forms of all its chunks are stored in one commit after the last one, not
    one a chunk that the next chunk's read would wait for (the store holds the mailbox lock).
    Past HELD_WIRES_MAX they are stored as they come (memory on a big folder's FETCH 1:*)."""
    count = _lazy_folder(harness, client, monkeypatch)
    assert count > WIRE_CHUNKS[0]  # two chunks at least
    mb = harness.store.user(USER)
    stores: list[int] = []
    real = mb._store_bodywires
    monkeypatch.setattr(mb, "_store_bodywires", lambda updates: (stores.append(len(updates)), real(updates))[1])
    lines = client.ok("FETCH 1:* (UID BODYSTRUCTURE)")
    mb._join_wiring()
    assert stores == [count]
    assert mb.db.one("SELECT count(*) FROM messages WHERE bswire IS NULL")[0] == 0  # type: ignore[index]

    mb.db.execute("UPDATE messages SET bswire = NULL")
    stores.clear()
    monkeypatch.setattr(store_mod, "HELD_WIRES_MAX", 10)
    assert client.ok("FETCH 1:* (UID BODYSTRUCTURE)") == lines
    mb._join_wiring()
    assert stores == [WIRE_CHUNKS[0], count - WIRE_CHUNKS[0]]
    assert mb.db.one("SELECT count(*) FROM messages WHERE bswire IS NULL")[0] == 0  # type: ignore[index]


def test_a_cold_fetch_answers_before_its_wire_forms_are_kept(
    harness: IMAPHarness, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wire forms a FETCH makes are stored after its answer (the commit is no part of what the
    client waits for); kept only for the same file: a row whose message was renamed (a flag
    change) or replaced meanwhile is left for the next FETCH to make."""
    count = _lazy_folder(harness, client, monkeypatch)
    mb = harness.store.user(USER)
    gate = gevent.event.Event()
    real = mb._store_bodywires
    monkeypatch.setattr(mb, "_store_bodywires", lambda updates: (gate.wait(30), real(updates))[1])
    lines = client.ok("FETCH 1:* (UID BODYSTRUCTURE)")  # answered while the store waits
    assert len(lines) == count
    assert mb.db.one("SELECT count(*) FROM messages WHERE bswire IS NOT NULL")[0] == 0  # type: ignore[index]
    gate.set()
    mb._join_wiring()
    assert mb.db.one("SELECT count(*) FROM messages WHERE bswire IS NULL")[0] == 0  # type: ignore[index]
    assert client.ok("FETCH 1:* (UID BODYSTRUCTURE)") == lines  # the kept bytes, the same answer
    rowid, name = mb.db.one("SELECT id, name FROM messages WHERE uid = 1")  # type: ignore[misc]
    mb.db.execute("UPDATE messages SET bswire = NULL WHERE id = ?", (rowid,))
    real([(b"(stale)", rowid, name + "S")])  # the file is no longer under that name
    assert mb.db.one("SELECT bswire FROM messages WHERE id = ?", (rowid,))[0] is None  # type: ignore[index]
