"""The first SELECT of a big folder the index has never seen (issue 11 item 4) is answered from
the directory listing while its rows are written after (``store._defer_build``):

- commands that follow — in the same session (FETCH, STORE, EXPUNGE), a second session's
  SELECT, a delivery meanwhile, IDLE — see the folder whole, never a half-written index;
- a process killed after the answer and before the rows commit (kill -9) comes back with the
  same UIDVALIDITY and the same UID for every message, and never gives a UID a client saw to
  another message (here: the file of the highest one removed before the restart).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.imapharness import USER, IMAPHarness

from gk.mail.mailbox import MailboxStore, maildir
from gk.mail.mailbox import store as store_mod

COUNT = store_mod.LAZY_FROM + 8
ROOT = Path(__file__).resolve().parents[3]


def _msg(i: int) -> bytes:
    return f"From: Ann <ann@example.com>\r\nSubject: note {i}\r\nMessage-ID: <n{i}@example.com>\r\n\r\nbody {i}\r\n".encode()


def _copy_in(md: Path) -> list[str]:
    """A Maildir copied in from another server: COUNT files in cur/, no UIDs in their names,
    every second one \\Seen. Returns the names in UID order (name order)."""
    for sub in ("cur", "new", "tmp"):
        (md / sub).mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(COUNT):
        data = _msg(i)
        name = f"{1_700_000_000 + i}.M{i}P1.old,S={len(data)}:2,{'S' if i % 2 else ''}"
        (md / "cur" / name).write_bytes(data)
        names.append(name)
    for sub in ("cur", "new"):  # copied in a while ago (a directory changed this instant is looked at again)
        os.utime(md / sub, (1_700_000_000,) * 2)
    return sorted(names)


def test_commands_after_a_first_select_see_the_whole_folder(
    harness: IMAPHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    _copy_in(maildir.user_root(harness.ctx.mail_root, USER))
    gate: list[bool] = []
    real = store_mod.UserMailbox._write_build

    def held(self: store_mod.UserMailbox, *args: object) -> list[int]:  # in the I/O pool
        deadline = time.monotonic() + 60
        while not gate and time.monotonic() < deadline:
            time.sleep(0.01)
        return real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(store_mod.UserMailbox, "_write_build", held)
    a = harness.connect()
    a.login()
    untagged = a.ok("SELECT INBOX")  # answered while the rows are held back
    assert f"* {COUNT} EXISTS".encode() in untagged and f"* {COUNT} RECENT".encode() in untagged
    assert f"[UIDNEXT {COUNT + 1}]".encode() in b"\n".join(untagged)
    assert b"[UNSEEN 1]" in b"\n".join(untagged)
    mb = harness.store.user(USER)
    assert mb._build is not None and not gate  # the SELECT did not wait for the rows
    # pipelined before the rows are written: they wait for them, and see every message
    a.send(b"f1 UID FETCH 1:* (UID FLAGS)\r\nf2 STORE 2 +FLAGS (\\Deleted)\r\n")
    b = harness.connect()
    b.login()
    untagged_b = b.ok("EXAMINE INBOX")  # a second session, served the same view
    assert f"* {COUNT} EXISTS".encode() in untagged_b and b"* 0 RECENT" in untagged_b
    gate.append(True)
    fetched, tagged = a.until_tagged("f1")
    assert b"f1 OK" in tagged and len(fetched) == COUNT
    assert fetched[0] == b"* 1 FETCH (UID 1 FLAGS (\\Recent))"
    assert fetched[1] == b"* 2 FETCH (UID 2 FLAGS (\\Seen \\Recent))"
    stored, tagged = a.until_tagged("f2")
    assert b"f2 OK" in tagged and stored == [b"* 2 FETCH (FLAGS (\\Seen \\Deleted \\Recent))"]
    assert mb._build is None
    harness.deliver(_msg(99))
    untagged = a.ok("EXPUNGE")
    assert b"* 2 EXPUNGE" in untagged and f"* {COUNT} EXISTS".encode() in untagged
    assert a.ok(f"UID FETCH {COUNT + 1} (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[0].startswith(
        f"* {COUNT} FETCH (UID {COUNT + 1} ".encode()
    )
    b.send(b"i1 IDLE\r\n")
    assert b.line().startswith(b"+ ")
    for line in (b.line(), b.line()):  # what happened since its EXAMINE
        assert line in (b"* 2 EXPUNGE", f"* {COUNT} EXISTS".encode())
    b.send(b"DONE\r\n")
    assert b"i1 OK" in b.until_tagged("i1")[1]


_KILLED_AFTER_ANSWER = """
import os, signal, sys
from pathlib import Path
from gk.mail.mailbox import store

def killed(self, *args):  # in the I/O pool, before the rows' transaction: what kill -9 does
    os.kill(os.getpid(), signal.SIGKILL)

store.UserMailbox._write_build = killed
mb = store.MailboxStore(Path(sys.argv[1])).user(sys.argv[2])
info = mb.folder("INBOX")
print(info.uidvalidity, info.uidnext, ",".join(map(str, mb.uids("INBOX"))), flush=True)
import gevent
gevent.sleep(60)  # the writer runs now
"""


def _killed_after_answer(mail: Path) -> subprocess.CompletedProcess[str]:
    """A process that opens the folder, prints what SELECT showed and is killed (SIGKILL) in
    the pool thread before the index rows commit."""
    run = subprocess.run(
        [sys.executable, "-c", _KILLED_AFTER_ANSWER, str(mail), USER],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT / "appliance")},
    )
    assert run.returncode == -signal.SIGKILL, run.stderr
    return run


@pytest.mark.parametrize("removed", [1, 10])  # the rebuild is lazy again / small enough to parse at once
def test_killed_before_the_rows_commit_the_same_uids_come_back(tmp_path: Path, removed: int) -> None:
    mail = tmp_path / "mail"
    md = maildir.user_root(mail, USER)
    names = _copy_in(md)
    run = _killed_after_answer(mail)
    uidvalidity, uidnext, shown = run.stdout.split()
    assert shown == ",".join(str(u) for u in range(1, COUNT + 1)) and int(uidnext) == COUNT + 1
    # the files of the highest UIDs a client saw go before the restart (another program)
    for name in names[-removed:]:
        (md / "cur" / name).unlink()
    mb = MailboxStore(mail).user(USER)
    info = mb.folder("INBOX")
    assert info.uidvalidity == int(uidvalidity)
    assert list(mb.uids("INBOX")) == list(range(1, COUNT + 1 - removed))
    for uid in (1, 2, COUNT - removed):  # each UID names the message it named before the kill
        assert mb.message_bytes("INBOX", uid) == (md / "cur" / names[uid - 1]).read_bytes()
    _, uid = mb.append("INBOX", _msg(100))
    assert uid == COUNT + 1  # not one of the UIDs shown for the messages removed
    mb.close()


def test_a_build_whose_rows_fail_to_commit_is_made_again_with_the_same_uids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    mail = tmp_path / "mail"
    _copy_in(maildir.user_root(mail, USER))
    real = store_mod.UserMailbox._write_build
    calls: list[int] = []

    def fails_once(self: store_mod.UserMailbox, *args: object) -> list[int]:
        calls.append(1)
        if len(calls) == 1:
            raise sqlite3.OperationalError("disk I/O error")
        return real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(store_mod.UserMailbox, "_write_build", fails_once)
    mb = MailboxStore(mail).user(USER)
    info = mb.folder("INBOX")
    shown = list(mb.uids("INBOX"))
    assert shown == list(range(1, COUNT + 1))
    infos = mb.infos("INBOX", shown, envelopes=False)  # waits for the rows: made again
    assert len(calls) == 2 and "indexing folder INBOX failed" in caplog.text
    assert sorted(infos) == shown and mb.folder("INBOX").uidvalidity == info.uidvalidity
    assert [infos[u].seen for u in shown[:4]] == [False, True, False, True]
    mb.close()


def test_killed_before_the_rows_commit_with_mail_in_new_too(tmp_path: Path) -> None:
    """Files in new/ are renamed into cur/ with their UID in the name before the answer; the
    highest of them removed before the restart, its UID is not given out again either."""
    mail = tmp_path / "mail"
    md = maildir.user_root(mail, USER)
    _copy_in(md)
    for i in range(2):
        maildir.deliver(md, [_msg(200 + i)])
    os.utime(md / "new", (1_700_000_000,) * 2)
    run = _killed_after_answer(mail)
    uidvalidity, _, shown = run.stdout.split()
    assert shown == ",".join(str(u) for u in range(1, COUNT + 3))
    (top,) = [p for p in (md / "cur").iterdir() if p.name.split(":")[0].endswith(f",U={COUNT + 2}")]
    top.unlink()
    mb = MailboxStore(mail).user(USER)
    assert mb.folder("INBOX").uidvalidity == int(uidvalidity)
    assert list(mb.uids("INBOX")) == list(range(1, COUNT + 2))
    assert mb.message_bytes("INBOX", COUNT + 1) == _msg(200)
    assert mb.append("INBOX", _msg(100))[1] == COUNT + 3
    mb.close()


def test_a_first_build_announces_the_copied_in_history_as_imported(tmp_path: Path) -> None:
    """The MessagesAdded of a first build names the files it found in cur/ (a Maildir copied in)
    as ``imported``, and not those it took from new/ (mail delivered): the DAV iTIP watcher acts
    on the second kind only (gk.dav.itip.ReplyWatcher)."""
    from gk import events

    mail = tmp_path / "mail"
    md = maildir.user_root(mail, USER)
    _copy_in(md)
    for i in range(2):
        maildir.deliver(md, [_msg(300 + i)])
    os.utime(md / "new", (1_700_000_000,) * 2)
    seen: list[events.Event] = []
    events.subscribe(USER, seen.append)
    store = MailboxStore(mail)
    try:
        mb = store.user(USER)
        assert mb.folder("INBOX").exists == COUNT + 2
        mb._join_build()
        added = [e for e in seen if isinstance(e, events.MessagesAdded) and e.folder == "INBOX"]
        assert len(added) == 1, seen
        assert added[0].uids == tuple(range(1, COUNT + 3))
        assert added[0].imported == tuple(range(1, COUNT + 1))  # the two delivered ones are not history
        mb.append("INBOX", _msg(100))  # later mail is never imported
        assert [e.imported for e in seen if isinstance(e, events.MessagesAdded)][-1] == ()
    finally:
        events.unsubscribe(USER, seen.append)
        store.stop(5)
