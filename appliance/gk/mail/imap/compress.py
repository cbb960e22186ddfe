"""COMPRESS=DEFLATE (RFC 4978): after ``COMPRESS DEFLATE`` in the authenticated state, both
directions of the session are raw DEFLATE streams (RFC 1951, no zlib header), each reply flushed
with a sync flush so the client can read it whole. Thunderbird, K-9 Mail/Thunderbird for
Android, iOS Mail, mutt (``imap_deflate``) and mbsync use it when offered: on a phone's link a
message list (ENVELOPEs, header fields, BODYSTRUCTUREs) shrinks several times (to 0.10-0.12 of
its size for the bench's corpus), message bodies to about two thirds.

The session's socket is swapped for a ``DeflateSocket`` (as STARTTLS swaps it for a TLS socket)
and a new reader made; everything else of the session writes and reads through the socket as
before. zlib compresses and inflates in C, holding the GIL for the size of one reply.

Costs on a small board (measured, docs/performance.md "IMAP COMPRESS=DEFLATE"):
- memory: a compressor (level ``LEVEL``, a ``WINDOW_BITS`` window, ``MEM_LEVEL``) and an inflater
  (a 32 KB window: a client may use the largest) per compressed session, 77 KB (tracemalloc);
  a session that does not ask holds nothing more;
- CPU: every reply byte compressed (level 1: ~30 MB/s of message bodies, ~230 MB/s of ENVELOPE
  lists on this machine; a big reply in the CPU pool, zlib without the GIL), every command
  byte inflated.

The inflater never makes more than the reader asks for (``max_length``): a small packet of
compressed data that inflates to gigabytes (a "zip bomb") is read a buffer at a time by the
command reader, whose line and literal limits apply as they do to plain input.

Hand-written: the standard library's ``zlib`` does the compression; no library wraps a socket
for RFC 4978.
"""

from __future__ import annotations

import logging
import socket
import zlib
from typing import TYPE_CHECKING, Any

import gevent.lock

from gk import pools
from gk.mail.imap.protocol import BadCommand, NoCommand

if TYPE_CHECKING:
    from gk.mail.imap.connection import Connection
    from gk.mail.imap.parser import Parser

log = logging.getLogger("gk.imap")

CAPABILITY = "COMPRESS=DEFLATE"
# Measured on the bench corpus (docs/performance.md): level 1 compresses 2.5-3x faster than
# zlib's default 6 (Dovecot's), for output 2-20 % larger; a small board is short of CPU first
LEVEL = 1
WINDOW_BITS = 13  # an 8 KB window for what GK sends (a client's 32 KB inflater reads it) ...
MEM_LEVEL = 6  # ... and 16 KB of hash state: 77 KB a compressed session with the inflater, 270 at zlib's defaults
RECV = 16384  # compressed bytes read from the socket at a time
ON_HUB = 16384  # a reply up to this size is compressed on the hub, a bigger one in the CPU pool


class DeflateSocket:
    """The part of a socket an IMAP session uses (``recv_into``, ``send``, ``sendall``, timeouts,
    shutdown, close), over ``sock`` with RFC 4978's raw DEFLATE in both directions."""

    def __init__(self, sock: Any):
        self._sock = sock
        self._out = zlib.compressobj(LEVEL, zlib.DEFLATED, -WINDOW_BITS, MEM_LEVEL)
        self._in = zlib.decompressobj(-zlib.MAX_WBITS)
        self._sending = gevent.lock.Semaphore()

    def recv_into(self, buf: Any, nbytes: int = 0) -> int:
        """Inflated bytes into ``buf``: at most its size, however much the input inflates to;
        0 at the end of the connection (or of the client's DEFLATE stream)."""
        want = nbytes or len(buf)
        while True:
            if self._in.unconsumed_tail:  # input already read that inflates to more than was asked
                data = self._in.decompress(self._in.unconsumed_tail, want)
            elif self._in.eof:
                return 0  # the client ended its stream: nothing can follow it
            else:
                raw = self._sock.recv(RECV)
                if not raw:
                    return 0
                try:
                    data = self._in.decompress(raw, want)
                except zlib.error as exc:  # not DEFLATE: the session cannot read the client any more
                    raise ConnectionResetError(f"bad compressed input: {exc}") from None
            if data:
                n = len(data)
                buf[:n] = data
                return n
            # a block header or a sync flush marker alone: read on

    def send(self, data: bytes) -> int:
        self.sendall(data)
        return len(data)

    def _deflate(self, data: bytes | memoryview) -> bytes:
        return self._out.compress(data) + self._out.flush(zlib.Z_SYNC_FLUSH)

    def sendall(self, data: bytes | memoryview) -> None:
        """``data`` compressed and sync-flushed: the client can inflate all of it now. A big reply
        (a message body: up to two of the session's 64 KB chunks) is compressed in the CPU pool,
        where zlib runs without the GIL, not on the hub (~3 ms a 64 KB chunk here, ~4x that on a
        Pi). One at a time: the stream's bytes go out in the order they were compressed."""
        with self._sending:
            packed = self._deflate(data) if len(data) <= ON_HUB else pools.run_cpu(self._deflate, data)
            self._sock.sendall(packed)

    def settimeout(self, timeout: float | None) -> None:
        self._sock.settimeout(timeout)

    def setsockopt(self, *args: Any) -> None:
        self._sock.setsockopt(*args)

    def shutdown(self, how: int = socket.SHUT_RDWR) -> None:
        self._sock.shutdown(how)

    def close(self) -> None:
        self._sock.close()


def cmd_compress(session: Connection, tag: str, p: Parser) -> None:
    """``COMPRESS DEFLATE`` (authenticated state): the tagged OK goes out uncompressed, everything
    after it compressed both ways. Anything the client sent after the command and before that OK
    (RFC 4978 forbids it) is dropped with the old reader, as after STARTTLS."""
    p.sp()
    mechanism = p.atom("a compression mechanism")
    p.end()
    if session.compressed:
        raise NoCommand("compression is already active", "COMPRESSIONACTIVE")
    if mechanism.upper() != "DEFLATE":
        raise BadCommand(f"unknown compression mechanism {mechanism}; this server offers DEFLATE")
    session.ok(tag, "DEFLATE active")
    session.flush()
    session.sock = DeflateSocket(session.sock)  # type: ignore[assignment]
    session.compressed = True
    session._new_reader()
    log.debug("imap: %s compressed (DEFLATE)", session.user)
