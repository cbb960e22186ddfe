"""Slow-client probes against a real ``gk serve`` on loopback (IMAP, SMTP, IRC).

Each probe opens ``N`` connections that misbehave (a byte every ``STEP`` seconds, an announced
literal never sent, pipelined commands never read...) under short timeouts, and prints how many
are still open after several timeouts' worth of seconds, with the server's RSS and open fds.
A listener with a total deadline closes them all; one with only a silence timeout keeps them.

    PYTHONPATH=appliance:tests .venv/bin/python bench/listener_probes.py [probe ...]
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.gkserver import GKServer
from support.sockets import still_open

N = 20
STEP = 1.0  # seconds between dripped bytes (below every silence timeout here)
HOLD = 15.0  # seconds a probe keeps dripping (5x the short timeouts)
LINES = int(os.environ.get("PROBE_LINES", "6000"))  # irc_slow: lines the talker sends
USER, PASSWORD = "probe@example.org", "correct horse battery staple"
USER2 = "talker@example.org"

OVERRIDES = {
    "auth": {"argon2_time_cost": 1, "argon2_memory_kib": 8192},
    "imap": {"login_timeout": 3.0, "login_deadline": 6.0, "idle_timeout": 10.0},
    "smtp": {"command_timeout": 3.0, "data_idle_timeout": 3.0, "data_timeout": 6.0},
    "chat": {"registration_timeout": 3.0, "ping_interval": 5.0, "line_burst": 10000, "lines_per_second": 10000.0},
    "http": {"https_port": 0},
}


def tls_ctx() -> ssl.SSLContext:
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def stats(pid: int) -> str:
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return f"rss={rss / 1024:.1f}MB fds={fds}"


def alive(s: socket.socket) -> bool:
    """Still open from the server's side (no EOF, no reset), reading whatever it said."""
    return still_open(s, timeout=10)


def drip(srv: GKServer, name: str, conns: list[socket.socket], payload: bytes) -> None:
    """Send ``payload`` one byte per STEP on every connection for HOLD seconds."""
    pid = srv.pid()
    print(f"[{name}] start: {len(conns)} conns, {stats(pid)}", flush=True)
    t0 = time.monotonic()
    i = 0
    closed_at: dict[int, float] = {}
    while time.monotonic() - t0 < HOLD:
        for k, s in enumerate(conns):
            if k in closed_at:
                continue
            try:
                s.send(payload[i % len(payload) : i % len(payload) + 1])
            except OSError:
                closed_at[k] = time.monotonic() - t0
                continue
            if not alive(s):
                closed_at[k] = time.monotonic() - t0
        i += 1
        time.sleep(STEP)
    still = len(conns) - len(closed_at)
    first = min(closed_at.values(), default=0.0)
    print(
        f"[{name}] after {HOLD:.0f}s: {still}/{len(conns)} still open (first closed at {first:.1f}s), {stats(pid)}",
        flush=True,
    )
    for s in conns:
        s.close()


def imap_conn(srv: GKServer) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", srv.port("imap.port")), timeout=10)
    s.recv(1000)  # greeting
    return s


def probe_imap_drip(srv: GKServer) -> None:
    drip(srv, "imap pre-login line drip", [imap_conn(srv) for _ in range(N)], b"a CAPABILITY" + b"X" * 1000)


def probe_imap_literal(srv: GKServer) -> None:
    conns = [imap_conn(srv) for _ in range(N)]
    for s in conns:
        s.sendall(b"a LOGIN {5}\r\n")
    drip(srv, "imap pre-login literal drip", conns, b"x" * 1000)


def probe_imap_huge_literal(srv: GKServer) -> None:
    s = imap_conn(srv)
    s.sendall(b"a LOGIN {999999999}\r\n")
    print("[imap pre-login {999999999}]", s.recv(1000), flush=True)
    s.close()
    s = socket.create_connection(("127.0.0.1", srv.port("imap.tls_port")), timeout=10)
    s = tls_ctx().wrap_socket(s)
    s.recv(1000)
    s.sendall(f'a LOGIN "{USER}" "{PASSWORD}"\r\n'.encode())
    print("[imap login]", s.recv(1000)[-60:], flush=True)
    s.sendall(b"b APPEND INBOX {999999999}\r\n")
    print("[imap APPEND {999999999}]", s.recv(1000), flush=True)
    s.sendall(b"c APPEND INBOX {60000000}\r\n")
    print("[imap APPEND {60000000}]", s.recv(1000), flush=True)
    t0 = time.monotonic()
    s.settimeout(60)
    try:
        data = s.recv(1000)
    except OSError as exc:
        data = repr(exc).encode()
    print(f"[imap APPEND literal never sent] after {time.monotonic() - t0:.1f}s: {data!r}", flush=True)
    s.close()
    s = socket.create_connection(("127.0.0.1", srv.port("imap.tls_port")), timeout=10)
    s = tls_ctx().wrap_socket(s)
    s.recv(1000)
    s.sendall(f'a LOGIN "{USER}" "{PASSWORD}"\r\nb SELECT INBOX\r\n'.encode())
    time.sleep(1)
    s.recv(10000)
    s.sendall(b"c SEARCH " + b"(" * 5000 + b"ALL" + b")" * 5000 + b"\r\n")
    s.sendall(b"d FETCH 1:* " + b"(" * 5000 + b"FLAGS" + b")" * 5000 + b"\r\n")
    time.sleep(1)
    print("[imap nested parens]", s.recv(10000), flush=True)
    s.close()


def probe_imap_pipeline(srv: GKServer) -> None:
    """Pipelined commands, replies never read: does the server stop reading?"""
    s = imap_conn(srv)
    s.setblocking(False)
    cmd = b"a NOOP\r\n" * 8192
    sent = 0
    t0 = time.monotonic()
    before = stats(srv.pid())
    while time.monotonic() - t0 < 10:
        try:
            sent += s.send(cmd)
        except BlockingIOError:
            time.sleep(0.05)
        except OSError:
            break
    print(f"[imap pipeline, never read] sent {sent / 1e6:.1f} MB in 10s; {before} -> {stats(srv.pid())}", flush=True)
    s.close()


def smtp_conn(srv: GKServer, ehlo: bool = True) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", srv.port("smtp.port")), timeout=10)
    s.recv(1000)
    if ehlo:
        s.sendall(b"EHLO probe\r\n")
        time.sleep(0.05)
        s.recv(1000)
    return s


def probe_smtp(srv: GKServer) -> None:
    drip(srv, "smtp command-line drip", [smtp_conn(srv) for _ in range(5)], b"NOOP" + b"X" * 1000)
    conns = [smtp_conn(srv) for _ in range(5)]
    for s in conns:
        s.sendall(b"MAIL FROM:<>\r\nRCPT TO:<" + USER.encode() + b">\r\nDATA\r\n")
    time.sleep(0.5)
    drip(srv, "smtp DATA drip", conns, b"Subject: x\r\n\r\n" + b"y" * 1000)
    # NOOP every 2 s (under command_timeout 3 s)
    s = smtp_conn(srv)
    t0 = time.monotonic()
    ok = True
    while time.monotonic() - t0 < HOLD:
        try:
            s.sendall(b"NOOP\r\n")
            if not s.recv(100):
                ok = False
                break
        except OSError:
            ok = False
            break
        time.sleep(2)
    print(f"[smtp NOOP every 2s] open after {HOLD:.0f}s: {ok}", flush=True)
    s.close()
    s = smtp_conn(srv)
    s.sendall(b"MAIL FROM:<>\r\n" + (b"RCPT TO:<" + USER.encode() + b">\r\n") * 300)
    time.sleep(2)
    replies = s.recv(100000).split(b"\r\n")
    print(f"[smtp 300 RCPT] {len(replies) - 1} replies, last: {replies[-2]!r}", flush=True)
    s.sendall(b"RSET\r\nMAIL FROM:<>\r\nRCPT TO:<" + USER.encode() + b">\r\nDATA\r\n")
    time.sleep(0.5)
    s.recv(1000)
    s.sendall(b"Subject: " + b"x" * 100000 + b"\r\n\r\nbody\r\n.\r\n")
    time.sleep(1)
    print("[smtp 100 KB header line]", s.recv(1000), flush=True)
    s.sendall(b"BDAT 10 LAST\r\n")
    time.sleep(0.3)
    print("[smtp BDAT]", s.recv(1000), flush=True)
    s.close()


def irc_conn(srv: GKServer) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", srv.port("chat.irc_port")), timeout=10)
    return tls_ctx().wrap_socket(s)


def probe_irc_drip(srv: GKServer) -> None:
    drip(srv, "irc registration line drip", [irc_conn(srv) for _ in range(N)], b"NICK " + b"x" * 1000)


def probe_irc_lines(srv: GKServer) -> None:
    drip(srv, "irc registration whole-line drip", [irc_conn(srv) for _ in range(N)], b"PING x\r\n")


def probe_tls_handshake(srv: GKServer) -> None:
    """A TLS ClientHello dripped a byte at a time (IMAPS, IRC)."""
    hello = bytes.fromhex("16030100a1010000") + b"\0" * 500
    for name, port in (("imaps", srv.port("imap.tls_port")), ("irc", srv.port("chat.irc_port"))):
        conns = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(N)]
        drip(srv, f"{name} TLS handshake drip", conns, hello)


def probe_irc_slow_reader(srv: GKServer) -> None:
    """Clients of one room that never read while another floods it: the send queue's bound."""
    from support.irc import connect

    port = srv.port("chat.irc_port")
    slow = []
    for _ in range(10):
        c = connect(port, USER, password=PASSWORD)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.append(c)
    talker = connect(port, USER2, password=PASSWORD)
    before = stats(srv.pid())
    line = "PRIVMSG #general :" + "z" * 400
    for i in range(LINES):
        talker.send(f"{line} {i}")
    peak = ""
    for _ in range(10):
        time.sleep(1)
        peak += " " + stats(srv.pid())
    dropped = srv.log().count("send queue full")  # the server says so (the client still reads its buffered lines)
    print(
        f"[irc 10 slow readers, {LINES} x 420-byte lines] {before} -> each second:{peak};"
        f" slow readers dropped: {dropped}/10",
        flush=True,
    )
    for c in slow:
        c.sock.close()
    talker.sock.close()


def probe_irc_long_line(srv: GKServer) -> None:
    s = irc_conn(srv)
    s.sendall(b"NICK " + b"x" * 100000 + b"\r\nCAP LS 302\r\n")
    time.sleep(1)
    print("[irc 100 KB line]", s.recv(10000)[:200], flush=True)
    s.close()


def probe_irc_joins(srv: GKServer) -> None:
    """One logged-in client JOINing 10,000 new rooms (200 lines of 50)."""
    from support.irc import connect

    c = connect(srv.port("chat.irc_port"), USER2, password=PASSWORD)
    before = stats(srv.pid())
    t0 = time.monotonic()
    for i in range(200):
        c.send("JOIN " + ",".join(f"#p{i}x{k}" for k in range(50)))  # a line under 512 bytes
    c.send("PING done")
    c.until("PONG.*done", timeout=300)
    lines = c.seen
    joins = sum(" JOIN " in ln for ln in lines)
    chat_db = srv.data_dir / "chat.sqlite3"
    print(
        f"[irc 10,000 new rooms by JOIN] {time.monotonic() - t0:.1f}s; {before} -> {stats(srv.pid())};"
        f" {joins} JOIN lines back, chat.sqlite3 {chat_db.stat().st_size / 1e6:.1f} MB; {lines[-3:]}",
        flush=True,
    )
    c.sock.close()


PROBES = {
    "imap_drip": probe_imap_drip,
    "imap_literal": probe_imap_literal,
    "imap_huge": probe_imap_huge_literal,
    "imap_pipeline": probe_imap_pipeline,
    "smtp": probe_smtp,
    "irc_drip": probe_irc_drip,
    "irc_lines": probe_irc_lines,
    "tls": probe_tls_handshake,
    "irc_slow": probe_irc_slow_reader,
    "irc_long": probe_irc_long_line,
    "irc_joins": probe_irc_joins,
}


def main() -> None:
    names = sys.argv[1:] or list(PROBES)
    with tempfile.TemporaryDirectory() as tmp:
        srv = GKServer(Path(tmp) / "gk", OVERRIDES)
        srv.write_config()
        srv.add_user(USER, PASSWORD)
        srv.add_user(USER2, PASSWORD)
        srv.start()
        try:
            print(f"gk serve pid {srv.pid()}: {stats(srv.pid())}", flush=True)
            for name in names:
                PROBES[name](srv)
        finally:
            srv.stop()


if __name__ == "__main__":
    main()
