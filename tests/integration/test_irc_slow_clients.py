"""Slow and greedy IRC clients against a real ``gk serve`` (6697): a registration sent a byte at
a time ends at ``chat.registration_timeout`` (each byte used to restart it: held for ever), a
TLS ClientHello sent a byte at a time ends within the handshake timeout (the same, per read),
and one address holds at most ``chat.max_connections_per_ip`` connections (it could take all
``chat.max_connections``, the web chat's included). bench/listener_probes.py measures them."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.gkserver import NO_MAIL, GKServer
from support.irc import tls
from support.sockets import still_open

from gk import claim

REGISTRATION = 3.0
PER_IP = 4


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GKServer]:
    srv = GKServer(
        Path(tmp_path_factory.mktemp("ircslow")) / "gk",
        {
            **NO_MAIL,
            "http": {"https_port": 0},
            "chat": {"registration_timeout": REGISTRATION, "max_connections_per_ip": PER_IP},
        },
    )
    srv.write_config()
    claim.claim(srv.data_dir, "test")  # an unclaimed box serves only the wizard (no /chat/irc)
    claim.complete(srv.data_dir)
    srv.start()
    yield srv
    srv.stop()


def _connect(srv: GKServer, source: str = "127.0.0.1", handshake: bool = True) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", srv.port("chat.irc_port")), timeout=30, source_address=(source, 0))
    return tls().wrap_socket(sock) if handshake else sock


def _drip(socks: list[socket.socket], data: bytes, limit: float) -> float:
    """A byte of ``data`` every 0.3 s on each socket until all are closed or ``limit`` passes;
    the seconds that took."""
    t0 = time.monotonic()
    i = 0
    live = list(socks)
    while live and time.monotonic() - t0 < limit:
        for s in list(live):
            try:
                s.send(data[i % len(data) : i % len(data) + 1])
            except OSError:
                live.remove(s)
                continue
            if not still_open(s):
                live.remove(s)
        i += 1
        time.sleep(0.3)
    for s in socks:
        s.close()
    assert not live, f"{len(live)} of {len(socks)} still open after {limit:g} s"
    return time.monotonic() - t0


def test_a_registration_dripped_a_byte_at_a_time_ends_at_the_timeout(server: GKServer) -> None:
    took = _drip([_connect(server, "127.0.0.2") for _ in range(3)], b"NICK " + b"x" * 400, 6 * REGISTRATION)
    assert took >= REGISTRATION - 0.5


def test_a_tls_handshake_dripped_a_byte_at_a_time_ends_at_its_timeout(server: GKServer) -> None:
    hello = bytes.fromhex("16030102000100") + b"\x01" * 600  # a ClientHello's start, never complete
    _drip([_connect(server, "127.0.0.3", handshake=False) for _ in range(3)], hello, 6 * REGISTRATION)


def test_one_address_holds_at_most_max_connections_per_ip(server: GKServer) -> None:
    held = [_connect(server, "127.0.0.4") for _ in range(PER_IP)]
    extra = _connect(server, "127.0.0.4")
    extra.settimeout(30)
    assert b"Too many connections from your address" in extra.recv(1000)
    assert extra.recv(1000) == b""
    extra.close()
    other = _connect(server, "127.0.0.5")  # another client still gets in
    other.sendall(b"CAP LS 302\r\n")
    other.settimeout(30)
    assert b"CAP" in other.recv(1000)
    other.close()
    held.pop().close()
    deadline = time.monotonic() + 10
    while True:  # the slot comes back once the server sees the close
        again = _connect(server, "127.0.0.4")
        again.sendall(b"CAP LS 302\r\n")
        again.settimeout(30)
        reply = again.recv(1000)
        again.close()
        if b"CAP" in reply or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert b"CAP" in reply, reply
    for s in held:
        s.close()


def test_websockets_count_in_the_same_slots(server: GKServer) -> None:
    from support.irc import WS

    held = [_connect(server) for _ in range(PER_IP)]  # 6697, from 127.0.0.1 as the WebSocket is
    ws = WS(server.port("http.port"))
    assert ws.line(30) == "ERROR :Too many connections from your address"
    ws.ws.close()
    for s in held:
        s.close()
