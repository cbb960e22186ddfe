"""Raw-socket helpers shared by the attack-probe tests and ``bench/listener_probes.py``."""

from __future__ import annotations

import socket
import ssl


def still_open(sock: socket.socket, timeout: float | None = None) -> bool:
    """The server has not closed ``sock`` (no EOF, no reset); whatever it said is read and
    dropped. The socket is left with ``timeout`` (None: blocking)."""
    sock.setblocking(False)
    try:
        while True:
            if not sock.recv(65536):
                return False
    except (BlockingIOError, ssl.SSLWantReadError):
        return True
    except OSError:
        return False
    finally:
        sock.settimeout(timeout)
