"""Free loopback ports for test servers, each handed out at most once per test run.

Ports come from below the kernel's ephemeral range (32768-60999 here): a port the kernel
handed out with bind(0) can be taken again as the source port of an outgoing connection before
the server binds it. Picking at random in that range is not enough on its own: a suite starts
some sixty servers with seven ports each, and independent random picks collide (the birthday
bound gives about one run in ten), which once gave a server the same port for SMTP and IMAP.
So ports are taken in order from a per-process start and never handed out twice; the bind
test skips ports something else on the machine holds.
"""

from __future__ import annotations

import os
import socket
import threading

LOW, HIGH = 20000, 32000
_lock = threading.Lock()
_issued: set[int] = set()
# each pytest process starts at its own offset, so two runs side by side rarely meet
_next = LOW + (os.getpid() * 7919) % (HIGH - LOW)


def _bindable(port: int, udp: bool) -> bool:
    kinds = [socket.SOCK_STREAM] + ([socket.SOCK_DGRAM] if udp else [])
    socks = []
    try:
        for kind in kinds:
            s = socket.socket(socket.AF_INET, kind)
            socks.append(s)
            s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def free_port(udp: bool = False) -> int:
    """A loopback port nobody holds now and this test run has not handed out before.

    With ``udp=True`` the port is free for both TCP and UDP (a DNS server listens on both).
    """
    global _next
    with _lock:
        for _ in range(HIGH - LOW):
            port = _next
            _next = LOW if _next + 1 >= HIGH else _next + 1
            if port in _issued:
                continue
            _issued.add(port)
            if _bindable(port, udp):
                return port
    raise RuntimeError(f"no free port left in {LOW}-{HIGH}")
