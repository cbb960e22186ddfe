"""Helpers for the IMAP tests (no tests here): a running ``gk serve`` with two users, imaplib and
imapclient connections over implicit TLS or STARTTLS, and sample messages."""

from __future__ import annotations

import imaplib
import socket
import ssl
from pathlib import Path

import pytest
from imapclient import IMAPClient

PASSWORD = "correct horse battery staple"
ALICE = "alice@example.org"
BOB = "bob@example.org"


_CLIENT_TLS: list[ssl.SSLContext] = []


def tls_client_context() -> ssl.SSLContext:
    """One shared client context (making one loads the CA store, ~100 ms each)."""
    if not _CLIENT_TLS:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # self-signed certificate made at first start
        _CLIENT_TLS.append(ctx)
    return _CLIENT_TLS[0]


def start_imap_server(make_server, imap: dict | None = None, name: str = "gk"):  # type: ignore[no-untyped-def]
    overrides = {
        "http": {"https_port": 0},
        "imap": {**(imap or {})},
        "auth": {"argon2_time_cost": 1, "argon2_memory_kib": 8192},
    }
    srv = make_server(name, overrides)
    srv.write_config()
    srv.add_user(ALICE, PASSWORD)
    srv.add_user(BOB, PASSWORD)
    return srv.start()


def module_server(imap: dict | None = None):  # type: ignore[no-untyped-def]
    """A module-scoped fixture: one ``gk serve`` per test module (tests use their own folders).

    Use as ``imap_server = module_server()`` at the top of a test module.
    """

    @pytest.fixture(scope="module")
    def fixture(tmp_path_factory):  # type: ignore[no-untyped-def]
        from support.gkserver import GKServer

        servers: list[GKServer] = []

        def factory(name: str, overrides: dict) -> GKServer:
            srv = GKServer(tmp_path_factory.mktemp(name), overrides)
            servers.append(srv)
            return srv

        yield start_imap_server(factory, imap)
        for srv in servers:
            srv.stop()

    return fixture


def smtp_delivery_server():  # type: ignore[no-untyped-def]
    """A function-scoped fixture: a ``gk serve`` with SMTP on (support.smtp's server), for
    IMAP tests that need a real delivery. Use as ``smtp_server = smtp_delivery_server()``."""

    @pytest.fixture
    def fixture(tmp_path_factory):  # type: ignore[no-untyped-def]
        from support.smtp import module_server as smtp_module_server

        with smtp_module_server(tmp_path_factory) as srv:
            yield srv

    return fixture


class Raw:
    """A line-level IMAP session over TLS as ``ALICE`` (or ``user``): ``cmd`` returns every line
    of a command's answer, so tests can check untagged responses exactly."""

    def __init__(self, srv, folder: str | None = None, examine: bool = False, user: str = ALICE):  # type: ignore[no-untyped-def]
        sock = socket.create_connection(("127.0.0.1", srv.port("imap.tls_port")), timeout=30)
        self.sock = tls_client_context().wrap_socket(sock)
        self.f = self.sock.makefile("rwb")
        assert self.f.readline().startswith(b"* OK")
        self.n = 0
        self.tag = ""  # the last command's tag
        self.cmd(f'LOGIN {user} "{PASSWORD}"')
        self.selected: list[bytes] = []
        if folder:
            self.selected = self.cmd(f"{'EXAMINE' if examine else 'SELECT'} {folder}")

    def cmd(self, line: str, ok: bool = True) -> list[bytes]:
        self.n += 1
        tag = self.tag = f"r{self.n}"
        self.send(f"{tag} {line}")
        out = []
        while True:
            resp = self.f.readline()
            assert resp, "connection closed"
            out.append(resp)
            if resp.startswith(tag.encode() + b" "):
                if ok:
                    assert resp.split()[1] == b"OK", out
                return out

    def send(self, line: str) -> None:
        self.f.write(line.encode() + b"\r\n")
        self.f.flush()

    def line(self) -> bytes:
        return self.f.readline()

    def wait_for(self, want: bytes) -> list[bytes]:
        """Read lines until one contains ``want``; return them all."""
        got = []
        while True:
            line = self.f.readline()
            assert line, "connection closed"
            got.append(line)
            if want in line:
                return got

    def close(self) -> None:
        try:
            self.cmd("LOGOUT", ok=False)
        except (AssertionError, OSError):
            pass  # logged out already, or the server has gone (a test of shutdown)
        finally:
            self.sock.close()


_counter = [0]


def fresh_folder(c: IMAPClient, prefix: str = "t") -> str:
    """Create and select a new, empty folder for one test."""
    _counter[0] += 1
    name = f"{prefix}{_counter[0]}"
    c.create_folder(name)
    c.select_folder(name)
    return name


def imaps(srv, user: str = ALICE, login: bool = True) -> imaplib.IMAP4_SSL:  # type: ignore[no-untyped-def]
    m = imaplib.IMAP4_SSL("127.0.0.1", srv.port("imap.tls_port"), ssl_context=tls_client_context(), timeout=30)
    if login:
        m.login(user, PASSWORD)
    return m


def imap_starttls(srv) -> imaplib.IMAP4:  # type: ignore[no-untyped-def]
    m = imaplib.IMAP4("127.0.0.1", srv.port("imap.port"), timeout=30)
    m.starttls(ssl_context=tls_client_context())
    return m


def client(srv, user: str = ALICE) -> IMAPClient:  # type: ignore[no-untyped-def]
    c = IMAPClient("127.0.0.1", port=srv.port("imap.tls_port"), ssl=True, ssl_context=tls_client_context(), timeout=30)
    c.login(user, PASSWORD)
    return c


def maildir(srv, user: str = ALICE, folder: str = "") -> Path:  # type: ignore[no-untyped-def]
    root = srv.data_dir / "mail" / user / "Maildir"
    return root / ("." + folder) if folder else root


def drop(srv, data: bytes, user: str = ALICE, name: str = "") -> Path:  # type: ignore[no-untyped-def]
    """Put a message into a Maildir's new/ behind the server's back (tmp, then rename)."""
    import os
    import time

    d = maildir(srv, user)
    for sub in ("tmp", "new", "cur"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    name = name or f"{time.time_ns()}.test{os.getpid()}.localhost"
    tmp = d / "tmp" / name
    tmp.write_bytes(data)
    final = d / "new" / name
    os.rename(tmp, final)
    return final


def simple_message(
    subject: str = "hello", body: str = "plain body text\r\n", sender: str = "carol@example.net"
) -> bytes:
    return (
        f"From: Carol <{sender}>\r\nTo: Alice <{ALICE}>\r\nSubject: {subject}\r\n"
        f"Date: Mon, 2 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{subject.replace(' ', '.')}@example.net>\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    ).encode()


NESTED = (
    b"From: =?utf-8?q?J=C3=B6rg?= <joerg@example.net>\r\n"
    b'To: alice@example.org, "Bob B." <bob@example.org>\r\n'
    b"Subject: =?utf-8?b?R3LDvMOfZQ==?= nested\r\n"
    b"Date: Tue, 3 Nov 2026 11:12:13 +0100\r\n"
    b"Message-ID: <nested@example.net>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"\r\n"
    b"This is the preamble.\r\n"
    b"--outer\r\n"
    b"Content-Type: multipart/alternative; boundary=inner\r\n"
    b"\r\n"
    b"--inner\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Gr=C3=BC=C3=9Fe aus dem Text, zebrafish\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n"
    b"<p>Hallo <b>HTML</b></p>\r\n"
    b"--inner--\r\n"
    b"--outer\r\n"
    b"Content-Type: message/rfc822\r\n"
    b'Content-Disposition: attachment; filename="fwd.eml"\r\n'
    b"\r\n"
    b"From: dave@example.com\r\n"
    b"Subject: inner message\r\n"
    b"\r\n"
    b"inner body line 1\r\n"
    b"inner body line 2\r\n"
    b"--outer\r\n"
    b'Content-Type: application/octet-stream; name="blob.bin"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b'Content-Disposition: attachment; filename="blob.bin"\r\n'
    b"\r\n"
    b"AAECAwQFBgcICQ==\r\n"
    b"--outer--\r\n"
    b"epilogue\r\n"
)
