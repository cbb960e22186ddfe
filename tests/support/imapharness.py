"""An in-process IMAP harness: the real ``Session`` of ``gk.mail.imap`` on one end of a gevent
socket pair, a line-level client on the other; no ``gk serve``, no listener, no TLS handshake.

The parts are the real ones: ``build_context`` (config, accounts with argon2 passwords, the
login throttle), the ``IMAPService`` (its mailbox store, spool dir and session set) and the
mailbox store on a temporary data dir. The session believes it runs over TLS (``tls=True``:
LOGIN is allowed), as on port 993 after the handshake.

    h = IMAPHarness(tmp_path)                  # one user: USER / PASSWORD
    c = h.connect()                            # greeting read
    c.login()                                  # LOGIN, asserts OK
    untagged, tagged = c.cmd("SELECT INBOX")   # lines without CRLF; literals inline
    h.deliver(b"Subject: x\\r\\n\\r\\nhi\\r\\n")  # through the real delivery committer
    c.close()

Everything runs on the gevent hub of the test's thread (gevent sockets, not monkey-patching):
a client call that waits yields to the session greenlet. Every wait has a deadline (``WAIT``).
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import gevent
import gevent.socket

from gk.config import Config
from gk.context import AppContext, build_context
from gk.mail.delivery.local import LocalDelivery, Target
from gk.mail.imap.service import IMAPService
from gk.mail.imap.session import Session
from gk.mail.mailbox import MailboxStore
from gk.mail.mailbox import service as mailbox_service

USER = "alice@example.org"
PASSWORD = "correct horse battery staple 1"
WAIT = 60.0  # seconds any single reply may take on a loaded machine

_LITERAL = re.compile(rb"\{(\d+)\}$")


class SessionClosed(AssertionError):
    """The server closed the connection (EOF) while the client waited for a reply."""


class IMAPHarness:
    def __init__(
        self,
        data_dir: Path,
        users: tuple[tuple[str, str], ...] = ((USER, PASSWORD),),
        config: Config | None = None,
    ) -> None:
        config = config or Config()
        config.server.hostname = "mx.test.example"
        config.auth.argon2_time_cost = 1
        config.auth.argon2_memory_kib = 8192
        self.ctx: AppContext = build_context(config, data_dir)
        for address, password in users:
            self.ctx.accounts.add_user(address, password)
        self.ctx.services.register("mailbox", mailbox_service.start(self.ctx))  # as gk.features does
        self.service = IMAPService(self.ctx)
        self.store: MailboxStore = self.service.store
        self.delivery = LocalDelivery(self.ctx.mail_root, self.ctx.authserv_id)
        self.clients: list[Client] = []

    def connect(self) -> Client:
        """A new session (greenlet) and its client, greeting read."""
        server_end, client_end = gevent.socket.socketpair()
        session = Session(self.service, server_end, ("127.0.0.1", 0), True)
        self.service.sessions.add(session)

        def run() -> None:
            try:
                session.run()
            finally:
                self.service.sessions.discard(session)
                session.close()

        client = Client(client_end, session, gevent.spawn(run))
        greeting = client.line()
        assert greeting.startswith(b"* OK "), greeting
        self.clients.append(client)
        return client

    def deliver(self, message: bytes, user: str = USER, folder: str = "INBOX") -> None:
        """One message through SMTP's local delivery path (group committer, then notification)."""
        self.delivery.deliver(message, [Target(user, user, folder)], b"", "sender@example.net")

    def close(self) -> None:
        for c in self.clients:
            c.close()
        self.store.stop(0)


class Client:
    """Line-level IMAP client over the harness's socket pair."""

    def __init__(self, sock: gevent.socket.socket, session: Session, greenlet: gevent.Greenlet) -> None:
        self.sock = sock
        self.session = session
        self.greenlet = greenlet
        self.buf = b""
        self.tags = (f"t{i}" for i in itertools.count(1))

    @property
    def alive(self) -> bool:
        return not self.greenlet.dead

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, timeout: float) -> None:
        with gevent.Timeout(timeout, TimeoutError(f"no reply within {timeout} s; got so far {self.buf[-300:]!r}")):
            chunk = self.sock.recv(65536)
        if not chunk:
            raise SessionClosed(f"the server closed the session; unread {self.buf[-300:]!r}")
        self.buf += chunk

    def line(self, timeout: float = WAIT) -> bytes:
        """One response line without CRLF; a literal it announces is read and appended whole."""
        while b"\r\n" not in self.buf:
            self._fill(timeout)
        line, _, self.buf = self.buf.partition(b"\r\n")
        m = _LITERAL.search(line)
        while m:  # `{n}` ends the line: n bytes of literal, then the line goes on
            n = int(m.group(1))
            while len(self.buf) < n:
                self._fill(timeout)
            data, self.buf = self.buf[:n], self.buf[n:]
            while b"\r\n" not in self.buf:
                self._fill(timeout)
            rest, _, self.buf = self.buf.partition(b"\r\n")
            line += b"\r\n" + data + rest
            m = _LITERAL.search(rest)
        return line

    def until_tagged(self, tag: str, timeout: float = WAIT) -> tuple[list[bytes], bytes]:
        untagged: list[bytes] = []
        prefix = tag.encode() + b" "
        while True:
            line = self.line(timeout)
            if line.startswith(prefix):
                return untagged, line
            untagged.append(line)

    def cmd(self, command: str | bytes, timeout: float = WAIT) -> tuple[list[bytes], bytes]:
        """Send ``<tag> command``; (untagged lines, the tagged line)."""
        tag = next(self.tags)
        raw = command.encode() if isinstance(command, str) else command
        self.send(tag.encode() + b" " + raw + b"\r\n")
        return self.until_tagged(tag, timeout)

    def ok(self, command: str | bytes, timeout: float = WAIT) -> list[bytes]:
        """``cmd`` that must answer OK; returns the untagged lines."""
        untagged, tagged = self.cmd(command, timeout)
        assert tagged.split(b" ", 2)[1] == b"OK", (command, untagged, tagged)
        return untagged

    def login(self, user: str = USER, password: str = PASSWORD) -> None:
        self.ok(f'LOGIN {user} "{password}"')

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            self.greenlet.join(timeout=WAIT)
