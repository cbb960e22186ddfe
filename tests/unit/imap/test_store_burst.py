"""A burst of flag changes right after new mail does not rescan the folder for every command,
and a change made in cur/ within the same clock tick as the last scan is still found once the
directory's mtime has settled (``UserMailbox._stamp_holds``)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from gk.mail.mailbox import MailboxStore, maildir
from gk.mail.mailbox import store as store_mod

USER = "carol@example.org"


def _setup(tmp_path: Path) -> tuple[MailboxStore, store_mod.UserMailbox, Path, list[int]]:
    root = tmp_path / "mail"
    store = MailboxStore(root)
    mb = store.user(USER)
    for i in range(8):
        mb.append("INBOX", f"From: a@example.com\r\nSubject: m{i}\r\n\r\nbody {i}\r\n".encode())
    d = maildir.folder_path(root, USER, "INBOX")
    # the moment after a scan moved new mail from new/ to cur/: new/ long settled, cur/ just changed
    old = time.time_ns() - 10 * store_mod.STAMP_SETTLED_NS
    os.utime(d / "new", ns=(old, old))
    now = time.time_ns()
    os.utime(d / "cur", ns=(now, now))
    scans: list[str] = []
    real = mb._scan

    def counting(f, path):  # type: ignore[no-untyped-def]
        scans.append(f["name"])
        real(f, path)

    mb._scan = counting  # type: ignore[method-assign]
    mb.sync_modseq("INBOX")  # the directories changed: one scan, which finds cur/ young
    assert scans == ["INBOX"]
    scans.clear()
    return store, mb, d, scans  # type: ignore[return-value]


def test_flag_changes_with_a_young_cur_do_not_rescan(tmp_path: Path) -> None:
    store, mb, _, scans = _setup(tmp_path)
    try:
        for uid in list(mb.uids("INBOX")) * 3:  # as IMAP does: a sync before each STORE
            mb.sync_modseq("INBOX")
            mb.set_flags("INBOX", [uid], ["\\Flagged"], "add" if len(scans) % 2 == 0 else "remove")
        # before: 24 scans of the whole folder (each STORE's rename kept cur/ young, and a young
        # stamp was forgotten); now at most one, to verify cur/ once it settled (a stall here)
        assert len(scans) <= 1, scans
    finally:
        store.stop(0)


def test_same_tick_change_in_cur_is_found_once_settled(tmp_path: Path) -> None:
    store, mb, d, scans = _setup(tmp_path)
    try:
        uid = mb.uids("INBOX")[0]
        cur = d / "cur"
        kept = os.stat(cur).st_mtime_ns
        name = mb.infos("INBOX", [uid], envelopes=False)[uid].file
        assert name and "F" not in name.split(":2,")[1]
        os.rename(cur / name, cur / (name + "F"))  # another program flags it …
        os.utime(cur, ns=(kept, kept))  # … within the same clock tick: cur/'s mtime unchanged
        time.sleep(2 * store_mod.STAMP_SETTLED_NS / 1e9)
        mb.sync_modseq("INBOX")
        assert scans == ["INBOX"]
        assert "\\Flagged" in mb.info("INBOX", uid).flags
    finally:
        store.stop(0)
