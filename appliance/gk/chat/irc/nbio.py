"""Writing to a gevent socket without blocking, for the IRC server's end-of-turn flush
(``IRCServer.mark_dirty``): a hub callback may not wait, so it writes what the kernel takes now
and leaves the rest to the connection's writer greenlet."""

from __future__ import annotations

import ssl
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
