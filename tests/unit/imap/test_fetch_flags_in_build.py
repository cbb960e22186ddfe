"""A FETCH of UID / FLAGS / MODSEQ alone, sent right after the first SELECT of a big folder the
index has never seen, is answered from the folder's listing while the index rows are still being
written (``UserMailbox.flag_rows`` during ``store._defer_build``): what Thunderbird and mutt send
at a first open. The answer must be the one the index gives once the rows are committed — the
same flags (system flags and keywords), MODSEQ, sequence numbers, UIDs and \\Recent — and a flag
change another session makes meanwhile must reach the session as an update.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.imapharness import USER, Client, IMAPHarness

from gk.mail.mailbox import maildir
from gk.mail.mailbox import store as store_mod

COUNT = store_mod.LAZY_FROM + 12
# the letters of the files' ":2," infos, in turn: system flags, keywords (a-c, dovecot-keywords)
INFOS = ["", "S", "FS", "RSa", "Tb", "Sac", "D", "DFRSTabc"]


def _copy_in(md: Path, *, with_uids: bool = False) -> None:
    """COUNT files in cur/ (a Maildir copied in from Dovecot) with mixed flags and keywords."""
    for sub in ("cur", "new", "tmp"):
        (md / sub).mkdir(parents=True, exist_ok=True)
    (md / "dovecot-keywords").write_text("0 $Forwarded\n1 Work\n2 $Junk\n")
    for i in range(COUNT):
        data = f"From: ann@example.com\r\nSubject: n{i}\r\n\r\nbody {i}\r\n".encode()
        uid = f",U={2 * i + 3}" if with_uids else ""  # with gaps: sequence numbers are not UIDs
        name = f"{1_700_000_000 + i}.M{i}P1.old,S={len(data)}{uid}:2,{INFOS[i % len(INFOS)]}"
        (md / "cur" / name).write_bytes(data)
    for sub in ("cur", "new"):
        os.utime(md / sub, (1_700_000_000,) * 2)


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """The first build's rows held back until ``gate`` gets an item."""
    opened: list[bool] = []
    real = store_mod.UserMailbox._write_build

    def held(self: store_mod.UserMailbox, *args: object) -> list[int]:  # in the I/O pool
        deadline = time.monotonic() + 60
        while not opened and time.monotonic() < deadline:
            time.sleep(0.01)
        return real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(store_mod.UserMailbox, "_write_build", held)
    yield opened
    opened.append(True)  # a test that failed with the rows held: not 60 s more


def _fetches(lines: list[bytes]) -> list[bytes]:
    return [x for x in lines if re.match(rb"\* \d+ FETCH ", x)]


def _without_size(lines: list[bytes]) -> list[bytes]:
    return [re.sub(rb" RFC822\.SIZE \d+", b"", x) for x in _fetches(lines)]


# (what the fast path answers, the same through the general FETCH: RFC822.SIZE is read from the rows)
COMMANDS = [
    ("UID FETCH 1:* (UID FLAGS)", "UID FETCH 1:* (UID FLAGS RFC822.SIZE)"),
    ("FETCH 1:* (FLAGS MODSEQ)", "FETCH 1:* (FLAGS MODSEQ RFC822.SIZE)"),
    ("FETCH 2,5:9,30:* FLAGS", "FETCH 2,5:9,30:* (FLAGS RFC822.SIZE)"),
    ("UID FETCH 4:20 (FLAGS)", "UID FETCH 4:20 (FLAGS RFC822.SIZE)"),
]


def _during_build(harness: IMAPHarness, gate: list[bool], a: Client, commands: list[str]) -> list[list[bytes]]:
    """``commands`` sent while the first build is held: each answered before its rows commit."""
    mb = harness.store.user(USER)
    out = []
    for command in commands:
        untagged, tagged = a.cmd(command)
        assert b" OK " in tagged, tagged
        assert mb._build is not None and not gate  # answered from the listing, not after the commit
        out.append(untagged)
    return out


@pytest.mark.parametrize("with_uids", [False, True], ids=["names-without-uids", "dovecot-uids"])
def test_flags_fetched_during_the_first_build_are_those_of_the_index(
    harness: IMAPHarness, gate: list[bool], with_uids: bool
) -> None:
    _copy_in(maildir.user_root(harness.ctx.mail_root, USER), with_uids=with_uids)
    a = harness.connect()
    a.login()
    a.ok("ENABLE CONDSTORE")  # every FETCH below shows MODSEQ: those the rows get, read before
    selected = a.ok("SELECT INBOX")
    assert f"* {COUNT} EXISTS".encode() in selected
    early = _during_build(harness, gate, a, [fast for fast, _ in COMMANDS])
    assert b"\\Draft $Forwarded $Junk Work)" in b"".join(selected)  # SELECT named the keywords: not again
    assert not [x for answer in early for x in answer if x.startswith(b"* FLAGS")]
    gate.append(True)
    a.ok("FETCH 1 (RFC822.SIZE)")  # waits for the rows
    assert harness.store.user(USER)._build is None
    for (fast, slow), got in zip(COMMANDS, early, strict=True):
        assert _fetches(got) == _without_size(a.ok(slow)), fast
        assert _fetches(got) == _fetches(a.ok(fast)), fast  # and by the fast path from the rows
    first = _fetches(early[0])
    assert len(first) == COUNT
    uid = (lambda i: 2 * i + 3) if with_uids else (lambda i: i + 1)
    top = re.search(rb"HIGHESTMODSEQ (\d+)", b"".join(selected)).group(1).decode()  # type: ignore[union-attr]
    assert first[0] == f"* 1 FETCH (UID {uid(0)} FLAGS (\\Recent) MODSEQ ({top}))".encode()
    assert first[7] == f"* 8 FETCH (UID {uid(7)} FLAGS ({_all_flags()} \\Recent) MODSEQ ({top}))".encode()
    assert first[3] == f"* 4 FETCH (UID {uid(3)} FLAGS (\\Answered \\Seen $Forwarded \\Recent) MODSEQ ({top}))".encode()


def _all_flags() -> str:
    return "\\Draft \\Flagged \\Answered \\Seen \\Deleted $Forwarded Work $Junk"


def test_a_flag_change_waiting_for_the_build_reaches_a_session_that_fetched_from_the_listing(
    harness: IMAPHarness, gate: list[bool]
) -> None:
    _copy_in(maildir.user_root(harness.ctx.mail_root, USER))
    a = harness.connect()
    a.login()
    a.ok("SELECT INBOX")
    b = harness.connect()
    b.login()
    b.ok("EXAMINE INBOX")  # served from the listing too
    c = harness.connect()
    c.login()
    c.ok("SELECT INBOX")
    c.send(b"s1 STORE 1 +FLAGS (\\Flagged Later)\r\n")  # waits for the rows
    (fetched,) = _during_build(harness, gate, a, ["FETCH 1 (FLAGS)"])
    assert _fetches(fetched) == [b"* 1 FETCH (FLAGS (\\Recent))"]
    gate.append(True)
    stored, tagged = c.until_tagged("s1")
    assert tagged.startswith(b"s1 OK")
    untagged = a.ok("NOOP")
    assert any(b"Later" in x and x.startswith(b"* FLAGS") for x in untagged)  # the new keyword first
    assert _fetches(untagged) == [b"* 1 FETCH (FLAGS (\\Flagged Later \\Recent) UID 1)"]
    assert _fetches(a.ok("FETCH 1 (FLAGS)")) == [b"* 1 FETCH (FLAGS (\\Flagged Later \\Recent))"]
    assert _fetches(b.ok("FETCH 1 (FLAGS)")) == [  # the update first, then the answer
        b"* 1 FETCH (FLAGS (\\Flagged Later) UID 1)",
        b"* 1 FETCH (FLAGS (\\Flagged Later))",
    ]
