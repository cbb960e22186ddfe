"""The web listeners' connection limits and deadlines (``gk.web.service``: ``HTTPSlots`` and
``_Handler``), on the real pywsgi listener started in this process, with raw sockets.

Before them a client that sent half a request, or nothing, or one header byte a second, held its
socket and greenlet for ever (a slowloris: 300 such connections held 300 of the process's 1,024
file descriptors, which mail shares)."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import gevent.socket
import pytest
from support.ports import free_port
from support.wsgiclient import complete_setup, make_context

from gk.web import service

Conn = gevent.socket.socket


def _echo(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A WebSocket mount that echoes each message (stands for the chat's sockets)."""
    ws = environ.get("wsgi.websocket")
    if ws is None:
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [b"websocket only\n"]
    while (msg := ws.receive()) is not None:
        ws.send(msg)
    return []


BIG = 16 * 1024 * 1024  # beyond what the kernel buffers on loopback (4 MB send, 64 KB receive here)


def _big(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A response written in one piece (as an attachment download is)."""
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(BIG))])
    return [b"x" * BIG]


def _start(tmp_path: Path, **http: Any) -> tuple[Any, int]:
    port = free_port()
    ctx = make_context(tmp_path, {"server": {"bind": "127.0.0.1"}, "http": {"port": port, "https_port": 0, **http}})
    svc = service.start(ctx, mounts=[("/echo", _echo, True), ("/big", _big, True)])
    complete_setup(svc.web)  # a claimed box: pages are served, not sent to the wizard
    return svc, port


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Any]:
    services: list[Any] = []

    def start(**http: Any) -> int:
        svc, port = _start(tmp_path / str(len(services)), **http)
        services.append(svc)
        return port

    yield start
    for svc in services:
        svc.stop(1.0)


def _connect(port: int) -> Conn:
    return gevent.socket.create_connection(("127.0.0.1", port), timeout=10)


def _response(conn: Conn) -> bytes:
    """One response's status line and headers (and what came with them)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _closed_within(conn: Conn, seconds: float) -> tuple[bytes, float]:
    """What the server sent until it closed the connection, and after how long."""
    t0 = time.monotonic()
    conn.settimeout(seconds)
    data = b""
    while chunk := conn.recv(4096):
        data += chunk
    return data, time.monotonic() - t0


HEALTH = b"GET /login HTTP/1.1\r\nHost: box\r\n\r\n"  # a page anyone gets


def test_half_sent_headers_get_408_at_the_header_deadline_and_others_are_served(started: Any) -> None:
    port = started(header_timeout=0.5, idle_timeout=30.0, io_timeout=30.0)
    stuck = _connect(port)
    sent = time.monotonic()
    stuck.sendall(b"GET / HTTP/1.1\r\nHost: box\r\n")  # never ends its headers
    other = _connect(port)
    other.sendall(HEALTH)
    assert _response(other).startswith(b"HTTP/1.1 200")
    data, _ = _closed_within(stuck, 10)
    assert data.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert 0.45 <= time.monotonic() - sent < 5


def test_headers_sent_a_byte_at_a_time_are_cut_at_the_deadline(started: Any) -> None:
    """Each byte comes well within the idle and I/O timeouts; the whole request does not."""
    port = started(header_timeout=1.0, idle_timeout=30.0, io_timeout=30.0)
    conn = _connect(port)
    t0 = time.monotonic()
    request = b"GET /login HTTP/1.1\r\nHost: box\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
    answer = b""
    for byte in request:
        try:
            conn.sendall(bytes([byte]))
        except OSError:
            break
        gevent.sleep(0.05)
        conn.setblocking(False)
        try:
            answer = conn.recv(4096)
        except BlockingIOError:
            pass
        finally:
            conn.setblocking(True)
        if answer:
            break
    if not answer:
        answer, _ = _closed_within(conn, 5)
    took = time.monotonic() - t0
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer[:80]
    assert took < 4  # the request would have taken ~11 s to send


def test_an_idle_keep_alive_connection_is_closed_after_idle_timeout(started: Any) -> None:
    port = started(header_timeout=5.0, idle_timeout=1.5, io_timeout=30.0)
    conn = _connect(port)
    conn.sendall(HEALTH)
    assert _response(conn).startswith(b"HTTP/1.1 200")
    gevent.sleep(0.1)
    conn.sendall(HEALTH)  # the next request on the same connection, within the idle time
    assert _response(conn).startswith(b"HTTP/1.1 200")
    data, took = _closed_within(conn, 10)
    assert data == b"" and 1.3 <= took < 8  # closed quietly, as a client closing it would
    silent = _connect(port)  # a connection that never sends a byte: the same
    assert _closed_within(silent, 10)[0] == b""


def test_connections_over_the_per_client_limit_get_503_until_one_closes(started: Any) -> None:
    port = started(max_connections_per_ip=3, idle_timeout=30.0)
    held = [_connect(port) for _ in range(3)]
    gevent.sleep(0.1)
    over = _connect(port)
    data, _ = _closed_within(over, 10)
    assert data.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"Retry-After: 10\r\n" in data and data.endswith(b"too many connections from your address\n")
    held.pop().close()
    gevent.sleep(0.1)
    again = _connect(port)
    again.sendall(HEALTH)
    assert _response(again).startswith(b"HTTP/1.1 200")
    for conn in held:
        conn.close()


def test_connections_over_the_total_get_503(started: Any) -> None:
    port = started(max_connections=2, idle_timeout=30.0)
    held = [_connect(port) for _ in range(2)]
    gevent.sleep(0.1)
    data, _ = _closed_within(_connect(port), 10)
    assert data.startswith(b"HTTP/1.1 503") and data.endswith(b"too many connections; try again later\n")
    for conn in held:
        conn.close()


def _ws_frame(payload: bytes) -> bytes:
    """A masked text frame (RFC 6455 §5.2), as a browser sends one."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


def test_a_websocket_outlives_the_http_deadlines(started: Any) -> None:
    port = started(header_timeout=0.5, idle_timeout=0.5, io_timeout=0.5)
    conn = _connect(port)
    key = base64.b64encode(os.urandom(16))
    conn.sendall(
        b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (port, key)
    )
    assert _response(conn).startswith(b"HTTP/1.1 101")
    gevent.sleep(1.5)  # three times every deadline, silent
    conn.sendall(_ws_frame(b"still here"))
    conn.settimeout(5)
    echoed = conn.recv(64)
    assert echoed == bytes([0x81, len(b"still here")]) + b"still here"
    conn.close()


def test_gk_serve_raises_its_open_files_limit() -> None:
    """The connection limits add up to more than systemd's 1,024 descriptors (``gk.server``):
    ``gk serve`` raises its soft limit to the hard one, at most 65,536 (in a child process, whose
    limits start at 1,024 soft)."""
    script = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 4096))\n"
        "from gk.server import raise_open_files_limit\n"
        "print(raise_open_files_limit(), resource.getrlimit(resource.RLIMIT_NOFILE))\n"
        "print(raise_open_files_limit(), resource.getrlimit(resource.RLIMIT_NOFILE))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.splitlines() == ["(1024, 4096) (4096, 4096)", "(4096, 4096) (4096, 4096)"]


def test_a_slow_reader_gets_its_whole_response_and_a_stalled_one_is_let_go(
    started: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    """``http.io_timeout`` is "no progress for that long": a 16 MB answer read a little at a time
    over several deadlines arrives whole; a client that stops reading is closed and its slot freed,
    with one log line (no traceback: it is the client's doing)."""
    io_timeout = 2.0  # no client read here waits that long, even on a busy machine
    port = started(io_timeout=io_timeout, idle_timeout=30.0, max_connections_per_ip=1)
    slow = _connect(port)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    slow.sendall(b"GET /big HTTP/1.1\r\nHost: box\r\nConnection: close\r\n\r\n")
    got = 0
    t0 = time.monotonic()
    while chunk := slow.recv(128 * 1024):
        got += len(chunk)
        gevent.sleep(0.04)
    assert time.monotonic() - t0 > 2 * io_timeout  # slower than two deadlines in all ...
    assert got > BIG  # ... and whole (with its headers)
    slow.close()

    stalled = _connect(port)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    stalled.sendall(b"GET /big HTTP/1.1\r\nHost: box\r\n\r\n")
    gevent.sleep(io_timeout)  # never reads: the server's write waits, then gives up
    deadline = time.monotonic() + 20
    while True:  # the one slot this client has is free again
        other = _connect(port)
        other.sendall(HEALTH)
        if _response(other).startswith(b"HTTP/1.1 200"):
            break
        assert time.monotonic() < deadline, "the stalled connection kept its slot"
        gevent.sleep(0.2)
    stalled.close()
    assert "Traceback" not in capfd.readouterr().err
