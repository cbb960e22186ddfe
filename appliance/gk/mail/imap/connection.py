"""A session's connection state: the socket and its buffered writes, the command reader and its
limits (small literals and the short ``imap.login_timeout`` before login), the command-rate
throttle, the state (not authenticated → authenticated → selected → logout), and the commands
valid in any state that only touch that state (CAPABILITY, LOGOUT, ID).

Per-session memory is kept small (an idle session holds its socket, an 8 KB read buffer,
the selected folder's UID list as a 4-byte ``array`` and a few ints); the user's index and
caches live once per user in ``gk.mail.mailbox``. Measured by ``bench/imap``: about 40 KB of
RSS per idle TLS session in IDLE on a 5,000-message INBOX (Dovecot: ~670 KB, a process each).
"""

from __future__ import annotations

import bisect
import io
import socket
import time
from array import array
from typing import Any

import gevent
import gevent.event

from gk import events
from gk.mail.imap import compress, quota
from gk.mail.imap.parser import CommandReader, Parser
from gk.mail.imap.protocol import BASE_CAPS, MEMORY_LITERAL, PREAUTH_LITERAL_BYTES, BadCommand
from gk.mail.imap.response import string
from gk.mail.mailbox import UserMailbox

NOTAUTH, AUTH, SELECTED, LOGOUT = "notauth", "auth", "selected", "logout"
CHUNK = 65536


class Logout(Exception):
    """The session ends (LOGOUT, or the client went away in the middle of a command)."""


class LoginDeadline(TimeoutError):
    """A session that has not logged in reached ``imap.login_deadline``."""


class Selected:
    """A session's view of its selected folder.

    \\Recent (RFC 3501 2.3.2): ``recent`` holds the UID ranges (inclusive, ascending) that are
    recent in this session; ``rtop`` is the highest UID already considered. A read-write session
    claims the UIDs it reports through the folder's ``recentuid`` in the index (so exactly one
    session gets each message); a read-only one (EXAMINE) sees the unclaimed ones without
    claiming them. Usually one range: a few ints per session. ``saved`` is SEARCHRES's ``$``
    (RFC 5182), as UIDs: it names the same messages in UID and non-UID commands. ``keywords``
    (lower-case → as first seen) are the keywords this session's last FLAGS response named: a
    FETCH may show only those (RFC 3501 7.2.6), so a new one is announced first.
    """

    __slots__ = ("name", "readonly", "uids", "modseq", "uidvalidity", "recent", "rtop", "saved", "keywords")

    def __init__(self, name: str, readonly: bool, uids: array[int], modseq: int, uidvalidity: int):
        self.name = name
        self.readonly = readonly
        self.uids = uids
        self.modseq = modseq
        self.uidvalidity = uidvalidity
        self.recent: list[tuple[int, int]] = []
        self.rtop = 0
        self.saved: list[int] = []  # SEARCHRES ``$``: UIDs of the last SEARCH RETURN (SAVE)
        self.keywords: dict[str, str] = {}

    def seq_of(self, uid: int) -> int:
        i = bisect.bisect_left(self.uids, uid)
        return i + 1 if i < len(self.uids) and self.uids[i] == uid else 0

    def claim_recent(self, mb: UserMailbox) -> None:
        """Take this session's share of \\Recent among the UIDs in its view not considered yet."""
        top = self.uids[-1] if self.uids else 0
        if top <= self.rtop:
            return
        mark = mb.recent_uid(self.name) if self.readonly else mb.claim_recent(self.name, top)
        lo = max(self.rtop, mark)
        self.rtop = top
        if top > lo:
            if self.recent and self.recent[-1][1] == lo:
                self.recent[-1] = (self.recent[-1][0], top)
            else:
                self.recent.append((lo + 1, top))

    def is_recent(self, uid: int) -> bool:
        i = bisect.bisect_right(self.recent, (uid, 1 << 32)) - 1  # the last range starting at or below uid
        return i >= 0 and self.recent[i][1] >= uid

    def recent_count(self) -> int:
        return sum(bisect.bisect_right(self.uids, hi) - bisect.bisect_left(self.uids, lo) for lo, hi in self.recent)


class _Input(io.RawIOBase):
    """A session's raw input under its buffered reader: before it waits on the socket for more
    bytes, the replies still buffered go out (when the session asked for that: ``coalesce``).
    So commands a client pipelined — already in the reader's buffer — are answered together in
    one write, and a reply never waits behind a read (the session flushes before anything else
    that may wait: a literal's continuation, IDLE, the command throttle)."""

    def __init__(self, conn: Connection):
        self.conn = conn

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        conn = self.conn
        if conn.coalesce and conn.out:
            conn.flush()
        if conn.state == NOTAUTH:
            return conn.recv_before_login(buf)
        n: int = conn.sock.recv_into(buf)
        return n


class Connection:
    """The socket, the reader and the state of one IMAP session (the base of every command mixin)."""

    def __init__(self, service: Any, sock: socket.socket, address: tuple[str, int], tls: bool):
        self.svc = service
        self.ctx = service.ctx
        self.cfg = service.ctx.config.imap
        self.sock = sock
        self.ip = address[0] if address else ""
        self.tls = tls
        self.state = NOTAUTH
        self.user = ""
        self.mb: UserMailbox | None = None
        self.sel: Selected | None = None
        self.condstore = False
        self.qresync = False  # ENABLE QRESYNC: expunges are reported as VANISHED (RFC 7162 3.2.10)
        self.compressed = False  # COMPRESS DEFLATE (RFC 4978): ``sock`` is a ``compress.DeflateSocket``
        self.out: list[bytes] = []
        self.outlen = 0
        self.changed = gevent.event.Event()
        self.pending: list[
            events.MessagesAdded | events.FlagsChanged | events.Expunged
        ] = []  # events of the selected folder not applied yet (see view.py)
        self.full_diffs = 0  # times the view was diffed against the whole folder (tests and logs)
        self.overflow = False  # more than view.MAX_PENDING queued: resynchronize in full
        self.waiting = False  # blocked reading the next command (or in IDLE): safe to send BYE
        self.coalesce = False  # reading the next command: replies go out before the socket is read
        try:  # replies are written whole; do not let Nagle hold back the last segment
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.tokens = float(self.cfg.max_commands_per_second)
        self.last = time.monotonic()
        self.login_by = self.last + self.cfg.login_deadline  # see check_login_deadline
        self._new_reader()

    # -- I/O --------------------------------------------------------------------------------
    def _new_reader(self) -> None:
        self.rfile = io.BufferedReader(_Input(self))  # a new buffer: nothing read before STARTTLS is kept
        self.reader = CommandReader(
            self.rfile,
            self._continuation,
            self.cfg.max_line_length,
            self.cfg.max_literal_size,
            str(self.svc.spool_dir),
        )
        self.reader.check_literal = lambda parts, size: quota.append_literal_check(self, parts, size)
        self._apply_limits()

    def _apply_limits(self) -> None:
        """Before login: small literals only (no memory held, nothing spooled for a stranger) and
        the short ``imap.login_timeout``; after: the configured literal size and idle timeout."""
        r = self.reader
        if self.state == NOTAUTH:
            r.max_literal = r.max_literal_total = PREAUTH_LITERAL_BYTES
            r.limit_hint = " before login"
            self.sock.settimeout(self.cfg.login_timeout)
        else:
            r.max_literal = self.cfg.max_literal_size
            r.max_literal_total = self.cfg.max_literal_size + MEMORY_LITERAL
            r.limit_hint = ""
            self.sock.settimeout(self.cfg.idle_timeout)

    def recv_before_login(self, buf: Any) -> int:
        """Each read while not logged in: ``imap.login_timeout`` is the silence allowed (each
        byte restarts it), ``imap.login_deadline`` the time from the greeting to a login, however
        the client spends it. Without it a stranger sending a command line a byte every few
        seconds (or a literal, or NOOPs) held a session slot for ever: 50 per address."""
        left = self.login_by - time.monotonic()
        if left <= 0:
            raise LoginDeadline(f"not logged in within {self.cfg.login_deadline:g} seconds")
        at_deadline = left < self.cfg.login_timeout
        self.sock.settimeout(left if at_deadline else self.cfg.login_timeout)
        try:
            n: int = self.sock.recv_into(buf)
        except TimeoutError:
            if at_deadline:
                raise LoginDeadline(f"not logged in within {self.cfg.login_deadline:g} seconds") from None
            raise
        return n

    def _continuation(self) -> None:
        self.write(b"+ Ready for literal data\r\n")
        self.flush()

    def write(self, data: bytes) -> None:
        self.out.append(data)
        self.outlen += len(data)
        if self.outlen > CHUNK:
            self.flush()

    def flush(self) -> None:
        """Send what the buffer holds in one write. Through ``send``, not ``sendall``: gevent's
        ``sendall`` costs a ``getsockopt(SO_SNDBUF)`` syscall and four Python frames per call (a
        reply is at most ``2 * CHUNK``); a TLS socket's ``send`` writes it whole (OpenSSL without
        partial writes, waiting on the hub while the socket is full), a plain one may take part
        of it and ``sendall`` sends the rest."""
        if self.out:
            data = self.out[0] if len(self.out) == 1 else b"".join(self.out)
            self.out.clear()
            self.outlen = 0
            sent = self.sock.send(data)
            if sent < len(data):
                self.sock.sendall(memoryview(data)[sent:])

    def stream(self, f: Any, start: int, length: int) -> None:
        """``length`` bytes of ``f`` from ``start``, through the buffer a ``CHUNK`` at a time: the
        literal's announcement goes out with its first bytes and its last bytes with what follows
        (the next message, the tagged reply), in writes of ``CHUNK`` to ``2 * CHUNK`` bytes; at most
        that much is held, whatever the size. (Flushed before its first chunk and sent chunk by
        chunk, a message over ``CHUNK`` cost two more small TLS records and sends.)"""
        f.seek(start)
        while length > 0:
            chunk = f.read(min(CHUNK, length))
            if not chunk:  # file shorter than the index says: pad so the literal stays valid
                chunk = b" " * min(CHUNK, length)
            length -= len(chunk)
            self.write(chunk)

    def caps(self) -> str:
        if self.state == NOTAUTH:
            if not self.tls:
                return BASE_CAPS + " STARTTLS LOGINDISABLED"
            return BASE_CAPS + " AUTH=PLAIN AUTH=LOGIN"
        return BASE_CAPS + " " + quota.caps(self) + " " + compress.CAPABILITY

    def shutdown(self) -> None:
        """Server stopping: say BYE to a waiting session; every session ends after its current command."""
        try:
            if self.waiting:
                self.sock.sendall(b"* BYE server shutting down\r\n")
            self.sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass

    def close(self) -> None:
        if self.mb is not None:
            self.svc.store.release(self.mb)
            self.mb = None
        self.sel = None
        try:
            self.sock.close()
        except OSError:
            pass

    def _throttle(self) -> None:
        rate = float(self.cfg.max_commands_per_second)
        now = time.monotonic()
        self.tokens = min(rate * 2, self.tokens + (now - self.last) * rate)
        self.last = now
        self.tokens -= 1
        if self.tokens < 0:
            self.flush()  # the replies to the commands before this one do not wait
            gevent.sleep(-self.tokens / rate)

    def ok(self, tag: str, text: str) -> None:
        self.write(f"{tag} OK {text}\r\n".encode("utf-8", "replace"))

    # -- any state --------------------------------------------------------------------------
    def cmd_capability(self, tag: str, p: Parser) -> None:
        p.end()
        self.write(f"* CAPABILITY {self.caps()}\r\n".encode())
        self.ok(tag, "CAPABILITY completed")

    def cmd_logout(self, tag: str, p: Parser) -> None:
        p.end()
        self.write(b"* BYE logging out\r\n")
        self.ok(tag, "LOGOUT completed")
        self.state = LOGOUT
        self.flush()

    def cmd_id(self, tag: str, p: Parser) -> None:
        p.sp()
        if not p.try_(b"NIL"):
            p.open_list()
            n = 0
            while not p.close_list():
                if n:
                    p.sp()
                p.string()
                p.sp()
                p.nstring()
                n += 1
                if n > 30:
                    raise BadCommand("too many ID fields")
        p.end()
        from gk import __version__

        self.write(b'* ID ("name" "GK" "version" ' + string(__version__) + b")\r\n")
        self.ok(tag, "ID completed")
