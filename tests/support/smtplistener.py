"""A loopback TCP port that greets like an MTA and hangs up: the diagnosis port-25 probe's target."""

from __future__ import annotations

import socket
import threading


def smtp_listener() -> tuple[int, threading.Event]:
    """A loopback port that greets like an MTA (the port-25 probe's target)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    done = threading.Event()

    def serve() -> None:
        srv.settimeout(0.2)
        while not done.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            conn.sendall(b"220 peer.example ESMTP\r\n")
            conn.close()
        srv.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv.getsockname()[1], done
