"""Writing to a gevent socket without blocking, for the IRC server's end-of-turn flush
(``IRCServer.mark_dirty``): a hub callback may not wait, so it writes what the kernel takes now
and leaves the rest to the connection's writer greenlet."""

from __future__ import annotations

import socket
import ssl
import time
from typing import Any

# what one non-blocking write may try: a TLS write that would block must be retried with at
# least the bytes it had, and gevent's sendall writes in chunks of at least 1 MB
NB_MAX = 512 * 1024


def nb_write(sock: Any, data: bytes) -> int | None:
    """Write to a gevent socket without blocking: bytes taken (a TLS socket takes all or, when
    it would block, 0 and must be retried with the same bytes), None if it cannot be tried."""
    if len(data) > NB_MAX:
        return 0  # left whole to the blocking path, which retries in chunks of 1 MB or more
    sslobj = getattr(sock, "_sslobj", None)
    if sslobj is not None:
        try:
            return int(sslobj.write(data))
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
            return 0
    raw = getattr(sock, "_sock", None)
    if raw is None or getattr(sock, "closed", False):
        return None
    try:
        return int(raw.send(data))
    except (BlockingIOError, InterruptedError):
        return 0


def linger_close(sock: Any, timeout: float = 2.0, limit: int = 64 * 1024) -> None:
    """Close a connection so the peer reads our last words (``ERROR :Excess flood``, a close
    frame): half-close, then read and drop what the peer still sends, up to ``limit`` bytes or
    ``timeout`` seconds, before closing. Closing with unread input makes the kernel answer with
    a reset, and a reset makes the peer's kernel drop what it had received but its application
    had not read yet (Apache's "lingering close" for the same reason)."""
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_WR)  # on a TLS socket gevent drops the TLS layer first
        sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        got = 0
        while got < limit and time.monotonic() < deadline:
            data = sock.recv(4096)
            if not data:
                break
            got += len(data)
    except (OSError, ssl.SSLError, ValueError):
        pass
    finally:
        try:
            sock.close()
        except OSError:
            pass
