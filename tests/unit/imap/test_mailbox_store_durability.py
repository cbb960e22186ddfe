"""The mailbox store survives what an SD card and a kill -9 do to it (issue 9 §3), in-process:

- a damaged index is quarantined (kept, logged) and rebuilt from the Maildir, at open after an
  unclean shutdown (``quick_check``) or when any query meets the damage;
- a rebuilt index gives the same UIDVALIDITY, UIDs and flags (kept in the Maildir), and never
  gives out again a UID expunged before the loss; a re-created folder gets a greater UIDVALIDITY;
- a MOVE cut short (in the middle of its renames, or before its index commit) leaves every
  message in exactly one folder;
- a flag rename lost in a power cut is redone from the index after an unclean shutdown.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import pytest

from gk.mail.mailbox import MailboxStore, UserMailbox, maildir, uidlist
from gk.mail.mailbox import store as store_module

ADDR = "alice@example.org"


def _msg(i: int) -> bytes:
    return f"From: Ann <ann@example.com>\r\nSubject: note {i}\r\nMessage-ID: <n{i}@example.com>\r\n\r\nbody {i}\r\n".encode()


def _subjects(mb: UserMailbox, folder: str) -> list[str]:
    return [m.subject for m in mb.messages(folder, limit=10_000, newest_first=False)]


def _state(mb: UserMailbox, folder: str) -> tuple[int, list[tuple[int, str, frozenset[str]]]]:
    info = mb.folder(folder)
    msgs = mb.messages(folder, limit=10_000, newest_first=False)
    return info.uidvalidity, [(m.uid, m.subject, frozenset(m.flags)) for m in msgs]


def _crash(store: MailboxStore) -> None:
    """What kill -9 leaves: the WAL in the main file (so damage to it shows), no clean close
    (the ``index.open`` marker stays)."""
    for mb in store._open.values():
        mb.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        mb.db.close()
    store._open.clear()


def _damage(index: Path, table: str) -> None:
    """Overwrite the root b-tree page of ``table`` (or index) with garbage, as a torn write would."""
    conn = sqlite3.connect(index)
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    (size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    with open(index, "r+b") as f:
        f.seek((root - 1) * size)
        f.write(bytes([0xA5]) * size)


def _quarantined(root: Path) -> list[Path]:
    return sorted((root / ADDR).glob("index.sqlite3.corrupt-*"))


def _fill(root: Path) -> tuple[MailboxStore, UserMailbox]:
    store = MailboxStore(root)
    mb = store.user(ADDR)
    mb.create_folder("Work")
    for i in range(6):
        mb.append("INBOX", _msg(i))
        mb.append("Work", _msg(100 + i), flags=["\\Seen"] if i % 2 else [])
    mb.set_flags("INBOX", [2], ["\\Flagged", "$Label1"])
    mb.set_flags("INBOX", [6], ["\\Deleted"])
    assert mb.expunge("INBOX") == [6]  # the highest UID is gone: only gk-uidlist remembers it
    return store, mb


def test_a_lost_index_costs_a_client_nothing(tmp_path):  # type: ignore[no-untyped-def]
    root = tmp_path / "mail"
    store, mb = _fill(root)
    before = {f: _state(mb, f) for f in ("INBOX", "Work", "Sent")}
    store.stop(0)
    for p in (root / ADDR).glob("index.sqlite3*"):
        p.unlink()
    mb = MailboxStore(root).user(ADDR)
    after = {f: _state(mb, f) for f in ("INBOX", "Work", "Sent")}
    assert after == before
    # UID 6 was expunged before the loss: it is never given again within this UIDVALIDITY
    _, uid = mb.append("INBOX", _msg(7))
    assert uid == 7
    assert mb.folder("INBOX").uidnext == 8


def test_uidvalidity_of_a_recreated_folder_is_greater(tmp_path):  # type: ignore[no-untyped-def]
    store = MailboxStore(tmp_path / "mail")
    mb = store.user(ADDR)
    seen = []
    for _ in range(3):  # well within one second
        mb.create_folder("Again")
        mb.append("Again", _msg(1))
        seen.append(mb.folder("Again").uidvalidity)
        mb.delete_folder("Again")
    assert seen[0] < seen[1] < seen[2], seen
    # and after the index is lost too
    store.stop(0)
    for p in (tmp_path / "mail" / ADDR).glob("index.sqlite3*"):
        p.unlink()
    mb = MailboxStore(tmp_path / "mail").user(ADDR)
    mb.create_folder("Again")
    assert mb.folder("Again").uidvalidity > seen[2]


@pytest.mark.parametrize("table", ["messages", "folders", "fts_data", "header"])
def test_damage_met_by_a_query_is_quarantined_and_rebuilt(tmp_path, caplog, table):  # type: ignore[no-untyped-def]
    root = tmp_path / "mail"
    store, mb = _fill(root)
    before = _state(mb, "INBOX")
    store.stop(0)  # a clean stop: no quick_check at the next open, the damage is met later
    if table == "header":  # "file is not a database"
        with open(root / ADDR / "index.sqlite3", "r+b") as f:
            f.write(b"\0" * 100)
    else:
        _damage(root / ADDR / "index.sqlite3", table)
    with caplog.at_level(logging.ERROR, logger="gk.mailbox"):
        mb = MailboxStore(root).user(ADDR)
        assert _state(mb, "INBOX") == before
        assert mb.search_text("INBOX", "body 3") == [4]
    assert len(_quarantined(root)) == 1
    assert "index.sqlite3 is damaged" in caplog.text and "moved aside to index.sqlite3.corrupt-" in caplog.text


def test_damage_after_an_unclean_shutdown_is_found_by_quick_check(tmp_path, caplog):  # type: ignore[no-untyped-def]
    root = tmp_path / "mail"
    store, mb = _fill(root)
    before = {f: _state(mb, f) for f in ("INBOX", "Work")}
    _crash(store)
    assert (root / ADDR / store_module.OPEN_MARKER).exists()
    _damage(root / ADDR / "index.sqlite3", "messages_modseq")  # only a full read meets this one
    with caplog.at_level(logging.ERROR, logger="gk.mailbox"):
        mb = MailboxStore(root).user(ADDR)
    assert "quick_check after an unclean shutdown" in caplog.text
    assert len(_quarantined(root)) == 1
    assert {f: _state(mb, f) for f in ("INBOX", "Work")} == before


def test_a_clean_close_removes_the_marker(tmp_path):  # type: ignore[no-untyped-def]
    store, _ = _fill(tmp_path / "mail")
    assert (tmp_path / "mail" / ADDR / store_module.OPEN_MARKER).exists()
    store.stop(0)
    assert not (tmp_path / "mail" / ADDR / store_module.OPEN_MARKER).exists()


def test_a_full_disk_is_not_mistaken_for_damage(tmp_path):  # type: ignore[no-untyped-def]
    from gk.mail.mailbox.index import is_corruption

    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = 13  # type: ignore[attr-defined]
    assert not is_corruption(full)
    broken = sqlite3.DatabaseError("database disk image is malformed")
    broken.sqlite_errorcode = 11  # type: ignore[attr-defined]
    assert is_corruption(broken)


class Crash(BaseException):
    """Stands for kill -9: nothing after it runs, nothing is cleaned up."""


def _moved_everything_once(root: Path, count: int) -> tuple[list[str], list[str]]:
    mb = MailboxStore(root).user(ADDR)
    src, dst = _subjects(mb, "INBOX"), _subjects(mb, "Archive")
    assert sorted(src + dst) == sorted(f"note {i}" for i in range(count)), (src, dst)
    # the Maildir agrees with the index: one file per message, its UID in its name
    for folder in ("INBOX", "Archive"):
        names = os.listdir(maildir.folder_path(root, ADDR, folder) / "cur")
        uids = sorted(uidlist.uid_of(n.split(":")[0]) or 0 for n in names)
        assert uids == list(mb.uids(folder)), (folder, names)
    return src, dst


def test_move_cut_in_the_middle_of_its_renames(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    root = tmp_path / "mail"
    store = MailboxStore(root)
    mb = store.user(ADDR)
    for i in range(40):
        mb.append("INBOX", _msg(i))
    real_rename, calls = os.rename, [0]

    def rename(src, dst):  # type: ignore[no-untyped-def]
        calls[0] += 1
        if calls[0] > 15:
            raise Crash()
        real_rename(src, dst)

    monkeypatch.setattr(store_module.os, "rename", rename)
    with pytest.raises(Crash):
        mb.move("INBOX", range(1, 41), "Archive")
    monkeypatch.setattr(store_module.os, "rename", real_rename)
    _crash(store)
    src, dst = _moved_everything_once(root, 40)
    assert len(dst) == 15 and len(src) == 25


def test_move_cut_before_its_index_commit(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    root = tmp_path / "mail"
    store = MailboxStore(root)
    mb = store.user(ADDR)
    for i in range(30):
        mb.append("INBOX", _msg(i))
    mb.set_flags("INBOX", [3], ["\\Flagged"])

    def bump(self, c, folder_id):  # type: ignore[no-untyped-def]
        raise Crash()

    monkeypatch.setattr(UserMailbox, "_bump", bump)
    with pytest.raises(Crash):
        mb.move("INBOX", range(1, 31), "Archive")
    monkeypatch.undo()
    _crash(store)
    src, dst = _moved_everything_once(root, 30)
    assert src == [] and len(dst) == 30
    mb = MailboxStore(root).user(ADDR)
    flagged = [m.subject for m in mb.messages("Archive", limit=100) if "\\Flagged" in m.flags]
    assert flagged == ["note 2"]


def test_a_lost_flag_rename_is_redone_after_an_unclean_shutdown(tmp_path):  # type: ignore[no-untyped-def]
    root = tmp_path / "mail"
    store = MailboxStore(root)
    mb = store.user(ADDR)
    mb.append("INBOX", _msg(1))
    cur = maildir.folder_path(root, ADDR, "INBOX") / "cur"
    (old,) = os.listdir(cur)
    mb.set_flags("INBOX", [1], ["\\Flagged", "\\Seen"])
    (new,) = os.listdir(cur)
    assert new.endswith(":2,FS")
    _crash(store)
    os.rename(cur / new, cur / old)  # the power cut took the rename, the index kept the flags
    mb = MailboxStore(root).user(ADDR)
    assert mb.folder("INBOX").exists == 1  # SELECT: the first scan since the crash
    assert set(mb.info("INBOX", 1).flags) == {"\\Flagged", "\\Seen"}
    assert os.listdir(cur) == [new]


def test_an_index_from_before_uids_in_file_names_is_carried_over(tmp_path):  # type: ignore[no-untyped-def]
    root = tmp_path / "mail"
    store = MailboxStore(root)
    mb = store.user(ADDR)
    for i in range(3):
        mb.append("INBOX", _msg(i))
    mb.set_flags("INBOX", [2], ["\\Seen"])
    before = _state(mb, "INBOX")
    # make it look like the old layout: no ,U= in names or index, no gk-uidlist
    d = maildir.folder_path(root, ADDR, "INBOX")
    for r in mb.db.query("SELECT id, base, name FROM messages"):
        base = uidlist.without_uid(r["base"])
        name = base + r["name"][len(r["base"]) :]
        os.rename(d / "cur" / r["name"], d / "cur" / name)
        mb.db.execute("UPDATE messages SET base = ?, name = ? WHERE id = ?", (base, name, r["id"]))
    (d / uidlist.UIDLIST).unlink()
    store.stop(0)
    mb = MailboxStore(root).user(ADDR)
    assert _state(mb, "INBOX") == before
    assert uidlist.read(d) is not None
    assert sorted(uidlist.uid_of(n.split(":")[0]) for n in os.listdir(d / "cur")) == [1, 2, 3]
