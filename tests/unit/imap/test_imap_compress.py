"""COMPRESS=DEFLATE (RFC 4978) on the real session (in-process harness): the capability after
login, the switch after the tagged OK, FETCH/APPEND/IDLE through the compressed stream, the
refusals (before login, twice, another mechanism), input that is not DEFLATE, and input that
inflates far beyond what it weighs (read a buffer at a time, under the line limit)."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.imapharness import Client, IMAPHarness, SessionClosed

MESSAGE = b"Subject: squeezed\r\nFrom: a@example.net\r\n\r\n" + b"the same line again and again\r\n" * 2000


class ClientDeflate:
    """The client's end of RFC 4978: what the harness's client sends is deflated, what it reads
    inflated; ``wire`` counts the compressed bytes received."""

    def __init__(self, sock: Any):
        self.sock = sock
        self.out = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflate = zlib.decompressobj(-15)
        self.wire = 0

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(self.out.compress(data) + self.out.flush(zlib.Z_SYNC_FLUSH))

    def recv(self, n: int) -> bytes:
        while True:
            raw = self.sock.recv(n)
            if not raw:
                return b""
            self.wire += len(raw)
            data = self.inflate.decompress(raw)
            if data:
                return data

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[IMAPHarness]:
    h = IMAPHarness(tmp_path / "data")
    yield h
    h.close()


def compressed(client: Client) -> ClientDeflate:
    """``COMPRESS DEFLATE``, answered OK in clear, then the client's socket deflated."""
    _, tagged = client.cmd("COMPRESS DEFLATE")
    assert tagged.split(b" ")[1] == b"OK", tagged
    assert client.buf == b""  # nothing after the OK came in clear
    wrapped = ClientDeflate(client.sock)
    client.sock = wrapped  # type: ignore[assignment]
    return wrapped


def test_compress_is_offered_after_login_and_the_session_runs_compressed(harness: IMAPHarness) -> None:
    c = harness.connect()
    assert b"COMPRESS=DEFLATE" not in c.ok("CAPABILITY")[0]  # before login: not in the list
    c.login()
    assert b"COMPRESS=DEFLATE" in c.ok("CAPABILITY")[0]
    harness.deliver(MESSAGE)
    wire = compressed(c)
    assert c.session.compressed
    c.ok("SELECT INBOX")
    c.send(b"a1 APPEND INBOX {%d}\r\n" % len(MESSAGE))
    assert c.line().startswith(b"+ ")
    c.send(MESSAGE + b"\r\n")
    _, tagged = c.until_tagged("a1")
    assert b"OK [APPENDUID" in tagged
    before = wire.wire
    (line,) = c.ok("FETCH 1 (BODY.PEEK[])")
    assert line.endswith(MESSAGE + b")")
    assert wire.wire - before < len(MESSAGE) / 10  # ~64 KB of one repeated line: a few hundred bytes
    # IDLE: a delivery's EXISTS comes through the compressed stream, DONE goes back through it
    c.send(b"i1 IDLE\r\n")
    assert c.line().startswith(b"+ ")
    harness.deliver(b"Subject: while idle\r\n\r\nhi\r\n")
    assert c.line() == b"* 3 EXISTS"
    c.send(b"DONE\r\n")
    assert c.until_tagged("i1")[1].startswith(b"i1 OK")
    _, tagged = c.cmd("COMPRESS DEFLATE")
    assert tagged.split(b" ")[1:3] == [b"NO", b"[COMPRESSIONACTIVE]"]
    c.ok("NOOP")


@pytest.mark.parametrize("line", ["COMPRESS", "COMPRESS GZIP", "COMPRESS DEFLATE extra"])
def test_malformed_or_unknown_compress_is_bad_and_changes_nothing(harness: IMAPHarness, line: str) -> None:
    c = harness.connect()
    c.login()
    _, tagged = c.cmd(line)
    assert tagged.split(b" ")[1] == b"BAD", tagged
    assert not c.session.compressed
    c.ok("NOOP")  # still in clear


def test_compress_before_login_is_refused(harness: IMAPHarness) -> None:
    c = harness.connect()
    _, tagged = c.cmd("COMPRESS DEFLATE")
    assert tagged.split(b" ")[1] == b"BAD" and not c.session.compressed
    c.login()


def test_input_that_is_not_deflate_ends_the_session_cleanly(harness: IMAPHarness) -> None:
    c = harness.connect()
    c.login()
    compressed(c)
    c.sock.sock.sendall(b"\xff" * 64 + b"a1 NOOP\r\n")  # type: ignore[attr-defined]
    with pytest.raises(SessionClosed):
        c.line(timeout=10)
    c.greenlet.join(timeout=10)
    assert c.greenlet.dead
    harness.connect().login()  # the server goes on


def test_a_line_that_inflates_far_past_its_size_gets_the_line_limit_not_the_memory(harness: IMAPHarness) -> None:
    c = harness.connect()
    c.login()
    wire = compressed(c)
    bomb = b"a1 NOOP " + b"x" * (64 * 1024 * 1024)  # 64 MB without an end of line: ~64 KB deflated
    packed = wire.out.compress(bomb) + wire.out.flush(zlib.Z_SYNC_FLUSH)
    assert len(packed) < 200_000
    c.sock.sock.sendall(packed)  # type: ignore[attr-defined]
    c.send(b"\r\n")
    _, tagged = c.until_tagged("a1")
    assert tagged.startswith(b"a1 BAD line longer than"), tagged
    c.ok("NOOP")  # and the session goes on, compressed
