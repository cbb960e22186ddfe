"""Loopback ports for the benchmarks' servers (GK and its peer)."""

from __future__ import annotations

import socket
import time

_issued: set[int] = set()


def free_port() -> int:
    """A free loopback port not handed out before in this run (the kernel may give the same
    port to two bind(0) calls once the first socket is closed; two servers on one port would
    fail the bench)."""
    for _ in range(1000):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _issued:
            _issued.add(port)
            return port
    raise RuntimeError("no unused loopback port")


def wait_port(port: int, timeout: float = 60.0) -> None:
    """Return once something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")
