"""IMAP resource limits against a real ``gk serve`` (issue 9, parts 1.1, 1.4, 1.6 and IMAP on a
full disk): literals before login can hold neither memory nor disk, a full server answers BYE,
connections per IP are capped, an unauthenticated session times out after ``imap.login_timeout``,
costly or overflowing SEARCH programs are BAD and a slow search leaves the hub serving, and a
full data disk is answered with response codes while the session, and the login delay, go on."""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
from support.imap import (
    ALICE,
    BOB,
    PASSWORD,
    drop,
    module_server,
    simple_message,
    start_imap_server,
    tls_client_context,
)

MB = 1024 * 1024


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class Conn:
    """A raw IMAP connection (plain port 143 unless ``tls``), from ``source`` (a loopback address)."""

    def __init__(self, srv, tls: bool = False, source: str = "127.0.0.1", greet: bool = True):  # type: ignore[no-untyped-def]
        port = srv.port("imap.tls_port" if tls else "imap.port")
        sock = socket.create_connection(("127.0.0.1", port), timeout=60, source_address=(source, 0))
        self.sock = tls_client_context().wrap_socket(sock) if tls else sock
        self.f = self.sock.makefile("rwb")
        self.greeting = self.f.readline() if greet else b""

    def send(self, data: bytes) -> None:
        self.f.write(data)
        self.f.flush()

    def until(self, tag: bytes) -> list[bytes]:
        """Lines up to the tagged reply (or a continuation, or EOF)."""
        out = []
        while True:
            line = self.f.readline()
            out.append(line)
            if not line or line.startswith(tag + b" ") or line.startswith(b"+ "):
                return out

    def cmd(self, line: bytes) -> bytes:
        tag = line.split(b" ", 1)[0]
        self.send(line + b"\r\n")
        return self.until(tag)[-1]

    def login(self, user: str = ALICE) -> None:
        assert self.cmd(f'l LOGIN {user} "{PASSWORD}"'.encode()).startswith(b"l OK")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


# -- 1. literals before login --------------------------------------------------------------------

literal_server = module_server({"max_literal_size": 2 * MB})


def test_a_big_literal_before_login_is_refused_before_it_is_sent(literal_server):  # type: ignore[no-untyped-def]
    c = Conn(literal_server)
    # 1 MB: under imap.max_literal_size (2 MB here), far over what LOGIN needs
    reply = c.cmd(b"x LOGIN {1048576}")
    assert reply.startswith(b"x BAD") and b"before login" in reply  # not "+ Ready": nothing is spooled
    assert c.cmd(b"y NOOP").startswith(b"y OK")  # the session goes on
    # LITERAL+ data is on its way and cannot be skipped: BAD, BYE and the end of the session
    c.send(b"z LOGIN {1048576+}\r\n")
    lines = c.until(b"z") + [c.f.readline(), c.f.readline()]
    assert lines[0].startswith(b"z BAD") and lines[1].startswith(b"* BYE") and lines[2] == b""
    c.close()


def test_small_literals_before_login_still_log_in(literal_server):  # type: ignore[no-untyped-def]
    c = Conn(literal_server, tls=True)
    user, password = ALICE.encode(), PASSWORD.encode()
    assert c.cmd(b"a LOGIN {%d}" % len(user)).startswith(b"+ ")
    c.send(user + b" {%d}\r\n" % len(password))
    assert c.until(b"a")[-1].startswith(b"+ ")
    c.send(password + b"\r\n")
    assert c.until(b"a")[-1].startswith(b"a OK")
    c.close()


def test_unfinished_commands_before_login_hold_no_memory(literal_server):  # type: ignore[no-untyped-def]
    """Each client sends one unfinished command of 63 LITERAL+ literals of 256 KiB (16 MB; before
    the fix the server kept them all in memory: 10 clients, +160 MB RSS)."""
    pid = literal_server.pid()
    warm = Conn(literal_server)
    warm.cmd(b"w NOOP")
    warm.close()
    before = rss_kb(pid)
    chunk = b"{262144+}\r\n" + b"x" * 262144 + b" "
    clients = [Conn(literal_server) for _ in range(10)]
    for c in clients:
        c.sock.settimeout(120)
        with contextlib.suppress(OSError):  # the server ends the session at the first literal
            c.sock.sendall(b"a LOGIN " + chunk * 63)
    grown = rss_kb(pid) - before
    print(f"RSS growth with 10 unfinished pre-login commands of 63 x 256 KiB: {grown} kB")
    for c in clients:
        c.close()
    assert grown < 40 * 1024, f"RSS grew by {grown} kB with 10 unfinished pre-login commands"
    assert "Traceback" not in literal_server.log()


def test_literal_bytes_per_command_are_capped_after_login_and_a_big_append_works(literal_server):  # type: ignore[no-untyped-def]
    c = Conn(literal_server, tls=True)
    c.login()
    assert c.cmd(b"s SELECT INBOX").startswith(b"s OK")
    size = 2 * MB - 100  # just under imap.max_literal_size: spooled, then appended
    message = simple_message("big one", "x" * 70 + "\r\n")
    message += b"y" * (size - len(message))
    assert c.cmd(b"a APPEND INBOX {%d}" % size).startswith(b"+ ")
    c.send(message + b"\r\n")
    assert c.until(b"a")[-1].startswith(b"a OK [APPENDUID")
    # two literals of 1.5 MB in one command are over the per-command total (2 MB + 256 KiB)
    half = 1536 * 1024
    assert c.cmd(b"t SEARCH TEXT {%d}" % half).startswith(b"+ ")
    c.send(b"q" * half + b" TEXT {%d}\r\n" % half)
    reply = c.until(b"t")[-1]
    assert reply.startswith(b"t BAD") and b"in one command" in reply
    assert c.cmd(b"n NOOP").startswith(b"n OK")
    c.close()


# -- 2. connection slots and the login timeout ----------------------------------------------------

slots_server = module_server({"max_connections": 4, "max_connections_per_ip": 2})


def _bye_or_greeting(srv, tls: bool, source: str) -> bytes:  # type: ignore[no-untyped-def]
    c = Conn(srv, tls=tls, source=source)
    line = c.greeting
    if line.startswith(b"* BYE"):
        assert c.f.readline() == b""  # and closed
    c.close()
    return line


def _eventually(check, what: str, timeout: float = 90.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_connections_per_ip_are_capped(slots_server):  # type: ignore[no-untyped-def]
    held = [Conn(slots_server, source="127.0.0.1"), Conn(slots_server, source="127.0.0.1")]
    assert all(c.greeting.startswith(b"* OK") for c in held)
    line = _bye_or_greeting(slots_server, False, "127.0.0.1")
    assert line.startswith(b"* BYE [UNAVAILABLE]") and b"your address" in line
    other = Conn(slots_server, source="127.0.0.2")  # another address still gets in
    assert other.greeting.startswith(b"* OK")
    for c in [*held, other]:
        c.close()
    _eventually(lambda: _bye_or_greeting(slots_server, False, "127.0.0.1").startswith(b"* OK"), "slot not freed")


def test_a_full_server_says_bye_instead_of_hanging(slots_server):  # type: ignore[no-untyped-def]
    held = [Conn(slots_server, source=f"127.0.0.{2 + i // 2}") for i in range(4)]
    assert all(c.greeting.startswith(b"* OK") for c in held)
    for tls in (False, True):  # on 993 after the TLS handshake
        line = _bye_or_greeting(slots_server, tls, "127.0.0.9")
        assert line.startswith(b"* BYE [UNAVAILABLE] too many connections"), line
    held.pop().close()
    _eventually(lambda: _bye_or_greeting(slots_server, True, "127.0.0.9").startswith(b"* OK"), "slot not freed")
    for c in held:
        c.close()


timeout_server = module_server({"login_timeout": 2})


def test_an_unauthenticated_session_ends_after_the_login_timeout(timeout_server):  # type: ignore[no-untyped-def]
    c = Conn(timeout_server, tls=True)
    c.sock.settimeout(120)  # the server's 2 s, however busy the machine
    assert c.f.readline().startswith(b"* BYE")
    assert c.f.readline() == b""
    c.close()
    # logged in, the session keeps imap.idle_timeout (30 minutes)
    c = Conn(timeout_server, tls=True)
    c.login()
    time.sleep(5)
    assert c.cmd(b"n NOOP").startswith(b"n OK")
    c.close()


# -- 3. SEARCH cost ------------------------------------------------------------------------------

search_server = module_server()


def test_costly_search_programs_are_bad_without_tracebacks(search_server):  # type: ignore[no-untyped-def]
    c = Conn(search_server, tls=True)
    c.login()
    assert c.cmd(b"s SELECT INBOX").startswith(b"s OK")
    nots = b"SEARCH " + b"NOT " * 16_000 + b"ALL"
    c.send(b"".join(b"n%d " % i + nots + b"\r\n" for i in range(20)))  # pipelined
    for i in range(20):
        reply = c.until(b"n%d" % i)[-1]
        assert reply.startswith(b"n%d BAD" % i) and b"nested deeper" in reply, reply
    for tag, program in [
        (b"o", b"OR " * 5000 + b"ALL " * 5000 + b"ALL"),
        (b"a", b" ".join([b"ALL"] * 10_000)),
        (b"l", b"LARGER 9223372036854775808"),
        (b"m", b"MODSEQ 18446744073709551615"),
        (b"u", b"UID 1:4294967296"),
    ]:
        reply = c.cmd(tag + b" SEARCH " + program)
        assert reply.startswith(tag + b" BAD"), reply
    assert c.cmd(b"f UID FETCH 1 (FLAGS) (CHANGEDSINCE 18446744073709551615)").startswith(b"f BAD")
    assert c.cmd(b"k SEARCH OR SEEN NOT SEEN").startswith(b"k OK")
    c.close()
    log = search_server.log()
    assert "Traceback" not in log and "SERVERBUG" not in log


def test_a_slow_search_runs_off_the_hub(search_server):  # type: ignore[no-untyped-def]
    """While one session's search reads every message file hundreds of times (HEADER with a
    short string checks the file itself), another session's NOOP is answered first."""
    for i in range(400):
        drop(search_server, simple_message(f"slow {i}"), user=BOB)
    a = Conn(search_server, tls=True)
    a.login(BOB)
    assert a.cmd(b"s SELECT INBOX").startswith(b"s OK")  # indexes the 400 files
    b = Conn(search_server, tls=True)
    b.login(ALICE)
    slow = b" ".join(b'NOT HEADER X-Missing-%d ""' % i for i in range(240))
    a.sock.settimeout(600)
    a.send(b"q SEARCH " + slow + b"\r\n")
    time.sleep(1)  # let the search start (only makes the check below stronger)
    assert b.cmd(b"n NOOP").startswith(b"n OK")
    readable, _, _ = select.select([a.sock], [], [], 0)
    assert not readable, "the search finished before another session's NOOP was answered"
    lines = a.until(b"q")
    assert lines[-1].startswith(b"q OK") and lines[0].startswith(b"* SEARCH 1 2 3")
    a.close()
    b.close()


# -- 4. a full disk ------------------------------------------------------------------------------


@pytest.fixture
def full_disk_server(tmp_path) -> Iterator:  # type: ignore[no-untyped-def]
    """A ``gk serve`` whose whole data dir is a 24 MB tmpfs (a real ENOSPC, no patching); its
    log goes to the test's own disk through a symlink so it survives the full disk."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    from support.gkserver import GKServer

    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], check=True)
    srv = None
    try:
        data = mnt / "gk"
        data.mkdir()
        (tmp_path / "serve.log").touch()
        (data / "serve.log").symlink_to(tmp_path / "serve.log")

        def factory(name: str, overrides: dict) -> GKServer:
            nonlocal srv
            srv = GKServer(data, overrides)
            return srv

        yield start_imap_server(factory, {"max_literal_size": 4 * MB}), mnt
    finally:
        if srv is not None:
            srv.stop()
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(mnt) -> None:  # type: ignore[no-untyped-def]
    # unbuffered: a buffered file's close() flushes what is left and raises ENOSPC outside the suppress
    with open(mnt / "filler", "wb", buffering=0) as f:
        block = b"\0" * 65536
        with contextlib.suppress(OSError):
            while True:
                f.write(block)
    for size in (4096, 512, 1):  # the last pages too
        with contextlib.suppress(OSError), open(mnt / f"filler{size}", "wb", buffering=0) as f:
            while True:
                f.write(b"\0" * size)


def test_a_full_disk_is_answered_with_response_codes_and_the_session_goes_on(full_disk_server):  # type: ignore[no-untyped-def]
    srv, mnt = full_disk_server
    drop(srv, simple_message("waiting"), user=ALICE)
    c = Conn(srv, tls=True)
    c.login()
    assert c.cmd(b"s0 SELECT Archive").startswith(b"s0 OK")
    _fill(mnt)
    assert shutil.disk_usage(mnt).free < 64 * 1024
    small = simple_message("small")
    replies = {}
    c.send(b"a1 APPEND INBOX {%d+}\r\n" % len(small) + small + b"\r\n")
    replies["append"] = c.until(b"a1")[-1]
    big = small + b"z" * (2 * MB)  # spooled: the spool write itself fails
    c.send(b"a2 APPEND INBOX {%d+}\r\n" % len(big) + big + b"\r\n")
    replies["append spooled"] = c.until(b"a2")[-1]
    assert c.cmd(b"a3 APPEND INBOX {%d}" % len(big)).startswith(b"+ ")
    c.send(big + b"\r\n")
    replies["append synchronizing"] = c.until(b"a3")[-1]
    replies["create"] = c.cmd(b"c1 CREATE Fresh/Folder/Deep")
    replies["select"] = c.cmd(b"s1 SELECT INBOX")
    for name, reply in replies.items():
        assert b"SERVERBUG" not in reply and reply.split(b" ")[1] in (b"OK", b"NO"), (name, reply)
    for name in ("append", "append spooled", "append synchronizing", "create"):
        assert replies[name].split(b" ")[1:3] == [b"NO", b"[OVERQUOTA]"], (name, replies[name])
    assert c.cmd(b"n1 NOOP").startswith(b"n1 OK")  # the session goes on
    # a failed login on the full disk: the usual answer, after the throttle's delay
    w = Conn(srv, tls=True)
    reply = w.cmd(f'w LOGIN {BOB} "wrong password"'.encode())
    assert reply.startswith(b"w NO [AUTHENTICATIONFAILED]"), reply
    w.close()
    for f in mnt.glob("filler*"):
        f.unlink()
    c.send(b"a4 APPEND INBOX {%d+}\r\n" % len(small) + small + b"\r\n")
    assert c.until(b"a4")[-1].startswith(b"a4 OK [APPENDUID")
    c.close()
    # no IMAP command ended in an internal error (other services may complain about the disk)
    log = srv.log()
    assert not re.search(r"imap command failed \(user [^)]*\)\n|imap session crashed", log), log[-3000:]
    assert "storage: [Errno 28] No space left on device" in log or "database or disk is full" in log
