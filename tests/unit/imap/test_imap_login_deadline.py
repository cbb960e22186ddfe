"""``imap.login_deadline``: a session that has not logged in ends that long after its greeting,
however busy the client keeps it. ``imap.login_timeout`` alone is a silence timeout: a stranger
dripping a command line a byte at a time (or a literal, or sending NOOPs) held its session slot
for ever (bench/listener_probes.py: 20 of 20 such sessions open after 5 login_timeouts)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest
from support.imapharness import USER, IMAPHarness

from gk.config import Config

DEADLINE = 1.5


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[IMAPHarness]:
    cfg = Config()
    cfg.imap.login_timeout = 1.0
    cfg.imap.login_deadline = DEADLINE
    h = IMAPHarness(tmp_path / "gk", config=cfg)
    yield h
    h.close()


def _drip(c, data: bytes, step: float, limit: float) -> float:  # type: ignore[no-untyped-def]
    """Send ``data`` a byte every ``step`` seconds (well under login_timeout) until the session
    ends or ``limit`` seconds pass; the seconds it lasted."""
    t0 = time.monotonic()
    i = 0
    while c.alive and time.monotonic() - t0 < limit:
        try:
            c.send(data[i % len(data) : i % len(data) + 1])
        except OSError:
            break
        i += 1
        gevent.sleep(step)
    c.greenlet.join(timeout=5)
    return time.monotonic() - t0


@pytest.mark.parametrize(
    "data",
    [b"a CAPABILITY" + b"X" * 200, b"a NOOP\r\n", b"a LOGIN {50}\r\n" + b"x" * 50],
    ids=["line", "commands", "literal"],
)
def test_a_session_that_does_not_log_in_ends_at_the_deadline(harness: IMAPHarness, data: bytes) -> None:
    c = harness.connect()
    lasted = _drip(c, data, 0.2, 8 * DEADLINE)
    assert not c.alive, f"still open after {lasted:.1f} s of a byte every 0.2 s"
    assert lasted < 4 * DEADLINE
    assert b"* BYE not logged in within 1.5 seconds" in c.buf + c.sock.recv(65536)


def test_a_logged_in_session_is_not_bound_by_it(harness: IMAPHarness) -> None:
    c = harness.connect()
    c.login(USER)
    time.sleep(0)  # the session's clock
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2 * DEADLINE:
        c.ok("NOOP")
        gevent.sleep(0.2)
    assert c.alive
