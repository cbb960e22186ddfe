"""The first SELECT of a user's INBOX while mail is being delivered to it (issue 11, found in the
image test: once in 6 runs the server closed the session at that SELECT).

Deterministic: each round a fresh user gets messages in ``new/`` (never indexed), logs in, and
sends SELECT while a greenlet delivers more through the real group committer; every delivery is
made to land while the SELECT builds the index (the store's scan is paused in the middle, after
it listed the directories, and the deliveries run then)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest
from support.imapharness import PASSWORD, IMAPHarness

from gk.mail.mailbox import store as store_mod

ROUNDS = 6
USERS = tuple((f"user{i}@example.org", PASSWORD) for i in range(ROUNDS))


def _msg(i: int) -> bytes:
    return f"From: a@example.com\r\nSubject: m{i}\r\n\r\nbody {i}\r\n".encode()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[IMAPHarness]:
    h = IMAPHarness(tmp_path / "gk", users=USERS)
    yield h
    h.close()


@pytest.mark.parametrize("pause_in", ["_rename_files", "_index_files"])
def test_first_select_while_delivering(harness: IMAPHarness, monkeypatch: pytest.MonkeyPatch, pause_in: str) -> None:
    real = getattr(store_mod.UserMailbox, pause_in)
    state = {"user": ""}

    def paused(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.address == state["user"]:  # deliver 3 messages now, in the middle of the scan
            jobs = [gevent.spawn(harness.deliver, _msg(100 + i), state["user"]) for i in range(3)]
            gevent.joinall(jobs, raise_error=True)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(store_mod.UserMailbox, pause_in, paused)
    for user, _ in USERS:
        for i in range(5):
            harness.deliver(_msg(i), user)
        c = harness.connect()
        c.login(user)
        state["user"] = user
        untagged, tagged = c.cmd("SELECT INBOX")
        state["user"] = ""
        assert tagged.startswith(b"t2 OK"), (untagged, tagged)
        exists = [int(x.split()[1]) for x in untagged if x.endswith(b" EXISTS")]
        assert exists and exists[0] >= 5
        untagged = c.ok("NOOP")
        found = c.ok("SEARCH ALL")
        assert found[-1].split()[2:] == [str(i).encode() for i in range(1, 9)], (user, untagged, found)
        assert c.alive
        c.ok("LOGOUT")
