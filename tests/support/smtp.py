"""Helpers for the SMTP tests (no tests here): a running ``gk serve`` with users, TLS clients,
Maildir readers and a raw line-level SMTP client for the cases smtplib cannot express."""

from __future__ import annotations

import contextlib
import email
import email.policy
import smtplib
import socket
import ssl
import time
from pathlib import Path

PASSWORD = "correct horse battery staple"


def tls_client_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the server's certificate is self-signed, made at first start
    return ctx


def start_smtp_server(make_server, dns_server, smtp: dict | None = None, auth: dict | None = None, name: str = "gk"):  # type: ignore[no-untyped-def]
    overrides = {
        "dns": dns_server.config(),
        "smtp": {"command_timeout": 30.0, **(smtp or {})},
        "http": {"https_port": 0},
        "auth": {"argon2_time_cost": 1, "argon2_memory_kib": 8192, **(auth or {})},
    }
    srv = make_server(name, overrides)
    srv.write_config()
    # users straight into the real account store (a `gk user add` subprocess per user is slow)
    from gk.config import load
    from gk.context import open_accounts

    store = open_accounts(load(srv.data_dir), srv.data_dir)
    store.add_user("alice@example.org", PASSWORD)
    store.add_user("bob@example.org", PASSWORD)
    store.add_alias("postmaster@example.org", "alice@example.org")
    store.db.close()
    return srv.start()


@contextlib.contextmanager
def module_server(tmp_path_factory, smtp: dict | None = None, auth: dict | None = None):  # type: ignore[no-untyped-def]
    """A server shared by the tests of one module (starting one costs seconds: argon2, imports)."""
    from support.dnsserver import LoopbackDNS
    from support.gkserver import GKServer

    dns = LoopbackDNS().start()
    servers: list = []

    def make(name: str, overrides: dict):  # type: ignore[no-untyped-def]
        srv = GKServer(tmp_path_factory.mktemp(name), overrides)
        servers.append(srv)
        return srv

    try:
        srv = start_smtp_server(make, dns, smtp=smtp, auth=auth)
        srv.dns = dns  # type: ignore[attr-defined]
        yield srv
    finally:
        for srv in servers:
            srv.stop()
        dns.stop()


def empty_maildirs(srv) -> None:  # type: ignore[no-untyped-def]
    """Remove delivered messages so each test of a shared server starts from empty mailboxes."""
    root = srv.data_dir / "mail"
    if root.is_dir():
        for path in root.glob("*/Maildir/**/new/*"):
            path.unlink()


def smtp25(srv) -> smtplib.SMTP:  # type: ignore[no-untyped-def]
    return smtplib.SMTP("127.0.0.1", srv.port("smtp.port"), local_hostname="client.example.net", timeout=30)


def submission(srv, login: bool = True) -> smtplib.SMTP:  # type: ignore[no-untyped-def]
    s = smtplib.SMTP("127.0.0.1", srv.port("smtp.submission_port"), local_hostname="laptop.example.net", timeout=30)
    s.starttls(context=tls_client_context())
    if login:
        s.login("alice@example.org", PASSWORD)
    return s


def maildir(srv, user: str, folder: str = "") -> Path:  # type: ignore[no-untyped-def]
    root = srv.data_dir / "mail" / user / "Maildir"
    return root / ("." + folder) if folder else root


def messages(srv, user: str, folder: str = "") -> list[bytes]:  # type: ignore[no-untyped-def]
    new = maildir(srv, user, folder) / "new"
    if not new.is_dir():
        return []
    return [p.read_bytes() for p in sorted(new.iterdir())]


def parsed(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def wait_for(predicate, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


class RawSMTP:
    """Line-level SMTP over a socket: send exact bytes, read whole replies."""

    def __init__(self, port: int, tls: bool = False, source: str | None = None):
        # source: another loopback address (127.0.0.2, ...) to act as another client IP
        sock = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0) if source else None)
        if tls:
            sock = tls_client_context().wrap_socket(sock)
        self.sock = sock
        self.buf = b""
        self.greeting = self.reply()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> str:
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("server closed the connection; got " + repr(lines))
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode("utf-8", "replace"))
            if len(line) < 4 or line[3:4] != b"-":
                return "\r\n".join(lines)

    def cmd(self, line: str | bytes) -> str:
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.reply()

    def closed(self, timeout: float = 10.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)  # e.g. a TLS alert before the close
                if not data:
                    return True
        except TimeoutError:
            return False
        except OSError:  # reset
            return True

    def close(self) -> None:
        self.sock.close()
