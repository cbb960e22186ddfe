"""One IMAP connection: the state machine (not authenticated → authenticated → selected) and
the command dispatcher.

Per-session memory is kept small (an idle session holds its socket, an 8 KB read buffer,
the selected folder's UID list as a 4-byte ``array`` and a few ints); the user's index and
caches live once per user in ``gk.mail.mailbox``. Measured by ``bench/imap``: about 40 KB of
RSS per idle TLS session in IDLE on a 5,000-message INBOX (Dovecot: ~670 KB, a process each).
IDLE is ``cmd_idle`` here: a greenlet waits for ``DONE`` while the session waits on its
``changed`` event (set by ``gk.mail.mailbox.notify``) or, every 5 s, re-checks the Maildir.

Consistency between sessions: every session keeps its own view (the UID list it announced and
the HIGHESTMODSEQ it has reported). At the points RFC 3501 §7.4.1 allows (NOOP, IDLE, after
commands other than FETCH/STORE/SEARCH, and as late as possible before the tagged reply),
``_updates`` diffs that view against the index and sends ``EXPUNGE`` (highest first, so each
number is valid when sent), ``EXISTS`` and ``FETCH (FLAGS …)``. Where EXPUNGE is not allowed,
pending expunges hold back all updates until the next allowed point.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import itertools
import logging
import socket
import sqlite3
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.event

from gk.mail.imap import fetch as fetchmod
from gk.mail.imap import utf7
from gk.mail.imap.listing import Listed, list_lines
from gk.mail.imap.parser import CommandReader, Parser, ReaderError
from gk.mail.imap.protocol import (
    BASE_CAPS,
    MEMORY_LITERAL,
    PREAUTH_LITERAL_BYTES,
    STORAGE_ERROR_TEXT,
    BadCommand,
    Literal,
    NoCommand,
    SeqSet,
    in_ranges,
    merge,
    missing,
    ranges_text,
    runs,
    seq_text,
    storage_error_code,
)
from gk.mail.imap.response import flag_list, internal_date, pack, string
from gk.mail.imap.search import (
    SearchParser,
    esearch_line,
    picked,
    resolve_recent,
    return_options,
    seq_ranges_to_uids,
)
from gk.mail.mailbox import MailboxError, UserMailbox, notify
from gk.mail.mailbox.mime import body_structure

log = logging.getLogger("gk.imap")

NOTAUTH, AUTH, SELECTED, LOGOUT = "notauth", "auth", "selected", "logout"
PERMANENT = "\\Answered \\Flagged \\Deleted \\Seen \\Draft"
IDLE_POLL = 5.0  # seconds between checks for files dropped into the Maildir behind our back
CHUNK = 65536


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


class Logout(Exception):
    pass


STATUS_ITEMS = ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ", "SIZE")
MAX_MATCH_PAIRS = 100_000  # QRESYNC sequence match data checked at most


@dataclass(frozen=True, slots=True)
class Resync:
    """SELECT's ``(QRESYNC (uidvalidity modseq [known-uids] [(known-seqs known-uids)]))``."""

    uidvalidity: int
    modseq: int
    known: SeqSet | None
    match: tuple[SeqSet, SeqSet] | None

    @staticmethod
    def parse(p: Parser) -> Resync:
        def uid_set() -> SeqSet:
            s = p.seq_set()
            if s.contains_star():
                raise BadCommand("'*' is not allowed in QRESYNC UID sets")
            return s

        p.open_list()
        uidvalidity = p.number("a UIDVALIDITY", nz=True)
        p.sp()
        modseq = p.mod_sequence()
        known = match = None
        if p.try_(b" ") and p.peek() != ord("("):
            known = uid_set()
            p.try_(b" ")
        if p.peek() == ord("("):
            p.open_list()
            seqs = uid_set()
            p.sp()
            uids = uid_set()
            p.expect(b")")
            p.depth -= 1
            match = (seqs, uids)
        p.expect(b")")
        p.depth -= 1
        return Resync(uidvalidity, modseq, known, match)


def _pairs(seqs: SeqSet, uids: SeqSet) -> Iterator[tuple[int, int]]:
    """The (sequence number, UID) pairs of QRESYNC's sequence match data, in order (at most
    ``MAX_MATCH_PAIRS``)."""

    def each(s: SeqSet) -> Iterator[int]:
        for lo, hi in s.ranges:
            assert lo is not None and hi is not None
            step = 1 if hi >= lo else -1
            yield from range(lo, hi + step, step)

    return itertools.islice(zip(each(seqs), each(uids), strict=False), MAX_MATCH_PAIRS)


class Session:
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
        self.out: list[bytes] = []
        self.outlen = 0
        self.changed = gevent.event.Event()
        self.waiting = False  # blocked reading the next command (or in IDLE): safe to send BYE
        try:  # replies are written whole; do not let Nagle hold back the last segment
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.tokens = float(self.cfg.max_commands_per_second)
        self.last = time.monotonic()
        self._new_reader()

    # -- I/O --------------------------------------------------------------------------------
    def _new_reader(self) -> None:
        self.rfile = self.sock.makefile("rb")
        self.reader = CommandReader(
            self.rfile,
            self._continuation,
            self.cfg.max_line_length,
            self.cfg.max_literal_size,
            str(self.svc.spool_dir),
        )
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

    def _continuation(self) -> None:
        self.write(b"+ Ready for literal data\r\n")
        self.flush()

    def write(self, data: bytes) -> None:
        self.out.append(data)
        self.outlen += len(data)
        if self.outlen > CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.out:
            data = b"".join(self.out)
            self.out.clear()
            self.outlen = 0
            self.sock.sendall(data)

    def stream(self, f: Any, start: int, length: int) -> None:
        f.seek(start)
        if length <= CHUNK:  # small: into the buffer, so the reply goes out in one write
            data = f.read(length)
            self.write(data + b" " * (length - len(data)))
            return
        self.flush()
        while length > 0:
            chunk = f.read(min(CHUNK, length))
            if not chunk:  # file shorter than the index says: pad so the literal stays valid
                chunk = b" " * min(CHUNK, length)
            self.sock.sendall(chunk)
            length -= len(chunk)

    def caps(self) -> str:
        if self.state == NOTAUTH:
            if not self.tls:
                return BASE_CAPS + " STARTTLS LOGINDISABLED"
            return BASE_CAPS + " AUTH=PLAIN AUTH=LOGIN"
        return BASE_CAPS

    # -- main loop --------------------------------------------------------------------------
    def run(self) -> None:
        self._apply_limits()
        try:
            self.write(f"* OK [CAPABILITY {self.caps()}] {self.ctx.hostname} GK IMAP ready\r\n".encode())
            self.flush()
            while self.state != LOGOUT:
                try:
                    self.waiting = True
                    parts = self.reader.read()
                    self.waiting = False
                except ReaderError as exc:
                    self.write(f"{exc.tag} {exc.reply} {exc}\r\n".encode())
                    if exc.fatal:
                        self.write(b"* BYE literal too large\r\n")
                        self.flush()
                        return
                    self.flush()
                    continue
                if parts is None:
                    return
                self._throttle()
                try:
                    self.handle(parts)
                finally:
                    for p in parts:
                        if isinstance(p, Literal):
                            p.close()
                self.flush()
        except TimeoutError:
            try:
                self.write(b"* BYE autologout; idle for too long\r\n")
                self.flush()
            except OSError:
                pass
        except (OSError, Logout):
            pass
        finally:
            self.close()

    def shutdown(self) -> None:
        """Server stopping: say BYE to a waiting session; every session ends after its current command."""
        try:
            if self.waiting:
                self.sock.sendall(b"* BYE server shutting down\r\n")
            self.sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass

    def close(self) -> None:
        if self.user:
            notify.unsubscribe(self.user, self._on_change)
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
            gevent.sleep(-self.tokens / rate)

    def handle(self, parts: list[Any]) -> None:
        p = Parser(parts)
        tag = "*"
        try:
            tag = p.tag()
            p.sp()
            name = p.atom("a command name").upper()
            uid = False
            if name == "UID":
                p.sp()
                uid = True
                name = p.atom("a command after UID").upper()
                if name not in ("FETCH", "SEARCH", "STORE", "COPY", "MOVE", "EXPUNGE"):
                    raise BadCommand(f"UID {name} is not a command")
            entry = COMMANDS.get(name)
            if entry is None:
                raise BadCommand(f"unknown command {name}")
            fn, states = entry
            if self.state not in states:
                raise BadCommand(f"{name} is not allowed {_STATE_TEXT[self.state]}")
            if uid:
                fn(self, tag, p, True)
            else:
                fn(self, tag, p)
        except BadCommand as exc:
            self.write(f"{tag} BAD {exc}\r\n".encode("utf-8", "replace"))
        except NoCommand as exc:
            code: str | None = f"[{exc.code}] " if exc.code else ""
            self.write(f"{tag} NO {code}{exc}\r\n".encode("utf-8", "replace"))
        except MailboxError as exc:
            code = f"[{exc.code}] " if exc.code else ""
            self.write(f"{tag} NO {code}{exc}\r\n".encode("utf-8", "replace"))
        except (OSError, sqlite3.Error) as exc:
            code = storage_error_code(exc)  # the disk or the index failed, not the client's socket
            if code is None and isinstance(exc, OSError):
                raise
            if code is None:
                log.exception("imap command failed (user %s)", self.user or "-")
                self.write(f"{tag} NO [SERVERBUG] internal error; the session goes on\r\n".encode())
            else:
                log.warning("imap command failed (user %s): storage: %s", self.user or "-", exc)
                self.write(f"{tag} NO [{code}] {STORAGE_ERROR_TEXT[code]}\r\n".encode())
        except (Logout, gevent.GreenletExit):
            raise
        except Exception:
            log.exception("imap command failed (user %s)", self.user or "-")
            self.write(f"{tag} NO [SERVERBUG] internal error; the session goes on\r\n".encode())

    def ok(self, tag: str, text: str) -> None:
        self.write(f"{tag} OK {text}\r\n".encode("utf-8", "replace"))

    # -- updates ----------------------------------------------------------------------------
    def _on_change(self, address: str, folder: str, kind: str) -> None:
        if self.sel is not None and folder == self.sel.name:
            self.changed.set()

    def _updates(self, expunge_ok: bool = True) -> None:
        sel, mb = self.sel, self.mb
        if sel is None or mb is None:
            return
        try:
            mb.sync(sel.name)
            top = mb.highestmodseq(sel.name)
        except MailboxError:
            return
        if top == sel.modseq:
            return
        current = mb.uids(sel.name)
        cur_set = set(current)
        gone = [i for i, u in enumerate(sel.uids) if u not in cur_set]
        if gone and not expunge_ok:
            return
        old = sel.uids
        if gone and self.qresync:
            self.write(f"* VANISHED {ranges_text(runs([old[i] for i in gone]))}\r\n".encode())
        else:
            for i in reversed(gone):
                self.write(f"* {i + 1} EXPUNGE\r\n".encode())
        if gone and sel.saved:  # RFC 5182 2.1: expunged messages leave $
            sel.saved = [u for u in sel.saved if u in cur_set]
        known = set(old) - {old[i] for i in gone}
        sel.uids = current
        sel.claim_recent(mb)
        if len(current) != len(old) - len(gone) or gone:
            self.write(f"* {len(current)} EXISTS\r\n* {sel.recent_count()} RECENT\r\n".encode())
        changes = mb.changes_since(sel.name, sel.modseq)
        self._announce_keywords(f for _, flags, _ in changes for f in flags)  # new messages' too
        for u, flags, modseq in changes:
            if u in known:
                self._flags_line(sel.seq_of(u), u, flags, modseq, True)
        sel.modseq = top

    def _flags_line(self, seq: int, uid: int, flags: tuple[str, ...], modseq: int, with_uid: bool) -> None:
        self._announce_keywords(flags)
        items = b"FLAGS " + flag_list(self._with_recent(uid, flags))
        if with_uid or self.qresync:  # with QRESYNC every FETCH names its UID (as Dovecot and James do)
            items += b" UID %d" % uid
        if self.condstore:
            items += b" MODSEQ (%d)" % modseq
        self.write(b"* %d FETCH (" % seq + items + b")\r\n")

    def _send_flags(self, sel: Selected) -> None:
        """``* FLAGS`` and ``* OK [PERMANENTFLAGS]`` with the keywords this session knows of."""
        flags = PERMANENT + "".join(" " + k for k in sorted(sel.keywords.values()))
        self.write(f"* FLAGS ({flags})\r\n".encode())
        perm = "" if sel.readonly else flags + " \\*"
        self.write(f"* OK [PERMANENTFLAGS ({perm})] flags permitted\r\n".encode())

    def _announce_keywords(self, flags: Iterable[str]) -> None:
        """Send FLAGS again when ``flags`` hold a keyword this session has not announced (a STORE
        or APPEND of this or another session made it): RFC 3501 7.2.6 wants it before any FETCH
        that shows the keyword, and clients that check (imaptest) flag it otherwise. The list only
        grows while the folder is selected, as Dovecot's does."""
        sel = self.sel
        if sel is None:
            return
        new = False
        for f in flags:
            if not f.startswith("\\") and f.lower() not in sel.keywords:
                sel.keywords[f.lower()] = f
                new = True
        if new:
            self._send_flags(sel)

    # -- helpers ----------------------------------------------------------------------------
    def _condstore_on(self) -> None:
        """A CONDSTORE-enabling command (RFC 7162 3.1: FETCH MODSEQ or CHANGEDSINCE, STORE
        UNCHANGEDSINCE, SEARCH MODSEQ, STATUS HIGHESTMODSEQ). The first one issued while a folder
        is selected also reports that folder's HIGHESTMODSEQ (as far as this session has seen)."""
        if self.condstore:
            return
        self.condstore = True
        if self.sel is not None:
            self.write(f"* OK [HIGHESTMODSEQ {self.sel.modseq}] highest\r\n".encode())

    def _with_recent(self, uid: int, flags: tuple[str, ...]) -> tuple[str, ...]:
        """The flags to show: the stored ones, plus \\Recent where this session has it."""
        if self.sel is not None and self.sel.is_recent(uid):
            return (*flags, "\\Recent")
        return flags

    def _need_sel(self) -> tuple[Selected, UserMailbox]:
        assert self.sel is not None and self.mb is not None
        return self.sel, self.mb

    def _uid_ranges(self, s: SeqSet) -> list[tuple[int, int]]:
        sel, _ = self._need_sel()
        if s.saved:
            return runs(sel.saved)
        largest = sel.uids[-1] if sel.uids else 0
        return s.resolve(largest)

    def _seq_ranges(self, s: SeqSet, strict: bool = True) -> list[tuple[int, int]]:
        """UID ranges of the messages a sequence set (or ``$``) names.

        A number past the mailbox's size is BAD (RFC 9051 §9) except in SEARCH (``strict``
        False), where it simply matches nothing, as Dovecot and Cyrus answer.
        """
        sel, _ = self._need_sel()
        if s.saved:
            return runs(sel.saved)
        ranges = s.resolve(len(sel.uids))
        if strict and not s.contains_star():
            for _lo, hi in ranges:
                if hi > len(sel.uids):
                    raise BadCommand("message sequence number out of range")
        return seq_ranges_to_uids(ranges, sel.uids)

    def _target_uids(self, s: SeqSet, uid: bool) -> list[int]:
        """The UIDs (in our view) a sequence set names."""
        sel, _ = self._need_sel()
        ranges = self._uid_ranges(s) if uid else self._seq_ranges(s)
        out: list[int] = []
        for lo, hi in ranges:
            i = bisect.bisect_left(sel.uids, lo)
            j = bisect.bisect_right(sel.uids, hi)
            out.extend(sel.uids[i:j])
        return sorted(set(out))

    def _folder_arg(self, p: Parser) -> str:
        return p.mailbox()

    # -- any state --------------------------------------------------------------------------
    def cmd_capability(self, tag: str, p: Parser) -> None:
        p.end()
        self.write(f"* CAPABILITY {self.caps()}\r\n".encode())
        self.ok(tag, "CAPABILITY completed")

    def cmd_noop(self, tag: str, p: Parser) -> None:
        p.end()
        self._updates(True)
        self.ok(tag, "NOOP completed")

    def cmd_check(self, tag: str, p: Parser) -> None:
        self.cmd_noop(tag, p)

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

    # -- not authenticated ------------------------------------------------------------------
    def cmd_starttls(self, tag: str, p: Parser) -> None:
        p.end()
        if self.tls:
            raise BadCommand("TLS is already active")
        self.ok(tag, "Begin TLS negotiation now")
        self.flush()
        # anything the client pipelined after STARTTLS is dropped with the old reader
        self.sock = self.ctx.ssl_context.wrap_socket(self.sock, server_side=True)
        self.tls = True
        self._new_reader()

    def _login_done(self, tag: str, address: str, password: str) -> None:
        result = self.ctx.auth.login(address, password, self.ip, "imap")
        if not result.ok:
            raise NoCommand(result.reason or "authentication failed", "AUTHENTICATIONFAILED")
        self.user = result.user.address
        self.mb = self.svc.store.acquire(self.user)
        self.state = AUTH
        self._apply_limits()
        notify.subscribe(self.user, self._on_change)
        self.ok(tag, f"[CAPABILITY {self.caps()}] logged in")

    def cmd_login(self, tag: str, p: Parser) -> None:
        p.sp()
        user = p.text_astring("a user name")
        p.sp()
        password = p.text_astring("a password")
        p.end()
        if not self.tls:
            raise NoCommand("LOGIN is disabled before STARTTLS", "PRIVACYREQUIRED")
        self._login_done(tag, user, password)

    def cmd_authenticate(self, tag: str, p: Parser) -> None:
        p.sp()
        mech = p.atom("a SASL mechanism").upper()
        initial: bytes | None = None
        if p.try_(b" "):
            if p.peek() == ord("="):
                p.expect(b"=")  # "=": an empty initial response (RFC 4959)
                initial = b""
            else:
                initial = p.atom("an initial response").encode()
        p.end()
        if not self.tls:
            raise NoCommand("authentication is disabled before STARTTLS", "PRIVACYREQUIRED")
        if mech == "LOGIN":
            # draft-murchison-sasl-login: what Outlook-family clients and curl pick when offered
            address = self._sasl_response(b"VXNlcm5hbWU6", initial)  # "Username:"
            password = self._sasl_response(b"UGFzc3dvcmQ6", None)  # "Password:"
            self._login_done(tag, address, password)
            return
        if mech != "PLAIN":
            raise NoCommand(f"SASL mechanism {mech} not supported; use PLAIN or LOGIN", "CANNOT")
        try:
            authz, authc, password = self._sasl_response(b"", initial).split("\0")
        except ValueError as exc:
            raise BadCommand("malformed SASL PLAIN response") from exc
        if authz and authz.lower() != authc.lower():
            raise NoCommand("acting as another user is not allowed", "AUTHORIZATIONFAILED")
        self._login_done(tag, authc, password)

    def _sasl_response(self, challenge: bytes, initial: bytes | None) -> str:
        """One SASL step: send ``+ challenge`` unless the client gave an initial response, read
        the base64 answer (``*`` cancels), return it as text."""
        if initial is None:
            self.write(b"+ " + challenge + b"\r\n")
            self.flush()
            line = self.reader.read_line()
            if line is None:
                raise Logout()
            if line.strip() == b"*":
                raise BadCommand("authentication cancelled")
            initial = line.strip()
        try:
            return base64.b64decode(initial, validate=True).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
            raise BadCommand("malformed SASL response") from exc

    # -- authenticated ----------------------------------------------------------------------
    def cmd_enable(self, tag: str, p: Parser) -> None:
        enabled = []
        if p.at_end():
            raise BadCommand("ENABLE needs at least one capability")
        while p.try_(b" "):
            cap = p.atom("a capability").upper()
            if cap == "CONDSTORE" and not self.condstore:
                self.condstore = True
                enabled.append(cap)
            elif cap == "QRESYNC" and not self.qresync:  # implies CONDSTORE (RFC 7162 3.2.3)
                self.qresync = self.condstore = True
                enabled.append(cap)
        p.end()
        self.write(("* ENABLED" + "".join(" " + c for c in enabled) + "\r\n").encode())
        self.ok(tag, "ENABLE completed")

    def cmd_namespace(self, tag: str, p: Parser) -> None:
        p.end()
        self.write(b'* NAMESPACE (("" "/")) NIL NIL\r\n')
        self.ok(tag, "NAMESPACE completed")

    def _select(self, tag: str, p: Parser, readonly: bool) -> None:
        p.sp()
        try:
            name = self._folder_arg(p)
        except NoCommand:  # a SELECT that fails leaves no folder selected (RFC 3501 6.3.1)
            if self.sel is not None:
                self.write(b"* OK [CLOSED] previous folder closed\r\n")
            self.sel = None
            self.state = AUTH
            raise
        resync: Resync | None = None
        if p.try_(b" "):
            p.open_list()
            while not p.close_list():
                opt = p.atom("a select option").upper()
                if opt == "CONDSTORE":
                    self.condstore = True
                elif opt == "QRESYNC":
                    if not self.qresync:
                        raise BadCommand("QRESYNC is not enabled; send ENABLE QRESYNC first")
                    p.sp()
                    resync = Resync.parse(p)
                else:
                    raise BadCommand(f"unknown SELECT option {opt}")
                p.try_(b" ")
        p.end()
        mb = self.mb
        assert mb is not None
        if self.sel is not None:  # RFC 7162 3.2.11: ends the old folder's responses
            self.write(b"* OK [CLOSED] previous folder closed\r\n")
        self.sel = None
        self.state = AUTH
        info = mb.folder(name)
        uids = mb.uids(info.name)
        self.sel = Selected(info.name, readonly, uids, info.highestmodseq, info.uidvalidity)
        self.sel.claim_recent(mb)
        self.state = SELECTED
        self.changed.clear()
        for k in mb.keywords(info.name):
            self.sel.keywords.setdefault(k.lower(), k)
        self._send_flags(self.sel)
        self.write(f"* {len(uids)} EXISTS\r\n* {self.sel.recent_count()} RECENT\r\n".encode())
        unseen = mb.first_unseen(info.name)
        if unseen:
            self.write(f"* OK [UNSEEN {self.sel.seq_of(unseen)}] first unseen\r\n".encode())
        self.write(f"* OK [UIDVALIDITY {info.uidvalidity}] UIDs valid\r\n".encode())
        self.write(f"* OK [UIDNEXT {info.uidnext}] predicted next UID\r\n".encode())
        self.write(f"* OK [HIGHESTMODSEQ {info.highestmodseq}] highest\r\n".encode())
        if resync is not None and resync.uidvalidity == info.uidvalidity:
            self._resync(self.sel, mb, resync, info.uidnext)
        self.ok(tag, f"[{'READ-ONLY' if readonly else 'READ-WRITE'}] {'EXAMINE' if readonly else 'SELECT'} completed")

    def _resync(self, sel: Selected, mb: UserMailbox, r: Resync, uidnext: int) -> None:
        """SELECT's QRESYNC answer (RFC 7162 3.2.5.1): ``VANISHED (EARLIER)`` for what was expunged
        since the client's MODSEQ, then FETCH (UID FLAGS MODSEQ) for what changed since, both
        limited to the client's known UIDs when it sent them."""
        known = merge(r.known.resolve(0)) if r.known is not None else None
        floor = 0
        if r.match is not None:  # the highest UID whose sequence number is the same for us both:
            seqs, uids = r.match  # nothing at or below it was expunged (3.2.5.2)
            for seq, u in _pairs(seqs, uids):
                if sel.seq_of(u) == seq:
                    floor = max(floor, u)
        self._vanished_earlier(sel, mb, r.modseq, known or [(1, uidnext - 1)], uidnext, floor)
        for u, flags, modseq in mb.changes_since(sel.name, r.modseq):
            seq = sel.seq_of(u)
            if seq and (known is None or in_ranges(known, u)):
                self._flags_line(seq, u, flags, modseq, True)

    def _vanished_earlier(
        self, sel: Selected, mb: UserMailbox, since: int, scope: list[tuple[int, int]], uidnext: int, floor: int = 0
    ) -> None:
        """``* VANISHED (EARLIER)`` with the UIDs in ``scope`` expunged after MODSEQ ``since``; when
        tombstones that old were pruned, every UID in scope (above ``floor``, below UIDNEXT) that
        no longer exists: a superset RFC 7162 3.6 allows."""
        scope = [(max(lo, floor + 1), min(hi, uidnext - 1)) for lo, hi in merge(scope)]
        scope = [(lo, hi) for lo, hi in scope if lo <= hi]
        if not scope:
            return
        gone = mb.vanished(sel.name, since, scope)
        if gone is None:
            ranges = missing(scope, sel.uids)
        else:
            ranges = runs([u for u in gone if not sel.seq_of(u)])
        if ranges:
            self.write(f"* VANISHED (EARLIER) {ranges_text(ranges)}\r\n".encode())

    def cmd_select(self, tag: str, p: Parser) -> None:
        self._select(tag, p, False)

    def cmd_examine(self, tag: str, p: Parser) -> None:
        self._select(tag, p, True)

    def cmd_create(self, tag: str, p: Parser) -> None:
        p.sp()
        name = self._folder_arg(p).rstrip("/")
        p.end()
        assert self.mb is not None
        self.mb.create_folder(name)
        self.ok(tag, "CREATE completed")

    def cmd_delete(self, tag: str, p: Parser) -> None:
        p.sp()
        name = self._folder_arg(p)
        p.end()
        assert self.mb is not None
        if self.sel and self.sel.name == name:
            raise NoCommand("cannot delete the selected folder", "INUSE")
        self.mb.delete_folder(name)
        self.ok(tag, "DELETE completed")

    def cmd_rename(self, tag: str, p: Parser) -> None:
        p.sp()
        old = self._folder_arg(p)
        p.sp()
        new = self._folder_arg(p)
        p.end()
        assert self.mb is not None
        self.mb.rename_folder(old, new)
        self.ok(tag, "RENAME completed")

    def cmd_subscribe(self, tag: str, p: Parser, on: bool = True) -> None:
        p.sp()
        name = self._folder_arg(p)
        p.end()
        assert self.mb is not None
        self.mb.subscribe(name, on)
        self.ok(tag, ("SUBSCRIBE" if on else "UNSUBSCRIBE") + " completed")

    def cmd_unsubscribe(self, tag: str, p: Parser) -> None:
        self.cmd_subscribe(tag, p, False)

    def _listed(self) -> list[Listed]:
        """Every folder, and every subscribed name without a folder (LSUB and LIST (SUBSCRIBED)
        show those too), INBOX first, then by name."""
        assert self.mb is not None
        self.mb.folder_names()
        subs = self.mb.subscriptions()
        rows = self.mb.db.query("SELECT name, special FROM folders")
        out = [Listed(r[0], r[1], r[0] in subs) for r in rows]
        names = {r[0] for r in rows}
        out += [Listed(n, None, True, exists=False) for n in subs if n not in names]
        out.sort(key=lambda f: (f.name != "INBOX", f.name))
        return out

    def cmd_list(self, tag: str, p: Parser, command: str = "LIST") -> None:
        p.sp()
        sel_sub = sel_special = ret_sub = False
        if command == "LIST" and p.peek() == ord("("):
            p.open_list()
            while not p.close_list():
                opt = p.atom("a selection option").upper()
                if opt == "SUBSCRIBED":
                    sel_sub = True
                elif opt == "SPECIAL-USE":
                    sel_special = True
                elif opt not in ("RECURSIVEMATCH", "REMOTE"):
                    raise BadCommand(f"unknown LIST selection option {opt}")
                p.try_(b" ")
            p.sp()
        ref = p.list_mailbox() if p.peek() != ord('"') or p.line[p.pos : p.pos + 2] != b'""' else (p.quoted().decode())
        p.sp()
        patterns: list[str] = []
        if command == "LIST" and p.peek() == ord("("):
            p.open_list()
            while not p.close_list():
                patterns.append(p.list_mailbox())
                p.try_(b" ")
        else:
            patterns.append(p.list_mailbox())
        status: list[str] | None = None
        if command == "LIST" and p.try_(b" RETURN "):
            p.open_list()
            while not p.close_list():
                opt = p.atom("a return option").upper()
                if opt == "SUBSCRIBED":
                    ret_sub = True
                elif opt == "STATUS":  # LIST-STATUS (RFC 5819)
                    p.sp()
                    status = self._status_items(p)
                elif opt not in ("CHILDREN", "SPECIAL-USE"):
                    raise BadCommand(f"unknown LIST return option {opt}")
                p.try_(b" ")
        p.end()
        if patterns == [""]:
            self.write(b"* " + command.encode() + b' (\\Noselect) "/" ""\r\n')
        else:
            for name, line in list_lines(self._listed(), ref, patterns, command, sel_sub, sel_special, ret_sub):
                self.write(line)
                if status:
                    try:
                        self.write(self._status_line(name, status))
                    except MailboxError:  # deleted meanwhile: listed, but no STATUS
                        pass
        self.ok(tag, f"{command} completed")

    def cmd_lsub(self, tag: str, p: Parser) -> None:
        self.cmd_list(tag, p, "LSUB")

    def _status_items(self, p: Parser) -> list[str]:
        p.open_list()
        items = []
        while not p.close_list():
            item = p.atom("a status item").upper()
            if item not in STATUS_ITEMS:
                raise BadCommand(f"unknown STATUS item {item}")
            items.append(item)
            p.try_(b" ")
        return items

    def cmd_status(self, tag: str, p: Parser) -> None:
        p.sp()
        name = self._folder_arg(p)
        p.sp()
        items = self._status_items(p)
        p.end()
        if "HIGHESTMODSEQ" in items:
            self._condstore_on()
        self.write(self._status_line(name, items))
        self._updates(True)
        self.ok(tag, "STATUS completed")

    def _status_line(self, name: str, items: list[str]) -> bytes:
        assert self.mb is not None
        info = self.mb.folder(name)
        recent = 0
        if "RECENT" in items:  # unclaimed ones (recent for whoever selects next), plus our own
            recent = self.mb.count_above(info.name, self.mb.recent_uid(info.name))
            if self.sel is not None and self.sel.name == info.name and not self.sel.readonly:
                recent += self.sel.recent_count()
        values = {
            "MESSAGES": info.exists,
            "RECENT": recent,
            "UIDNEXT": info.uidnext,
            "UIDVALIDITY": info.uidvalidity,
            "UNSEEN": info.unseen,
            "HIGHESTMODSEQ": info.highestmodseq,
            "SIZE": info.size,
        }
        out = " ".join(f"{it} {values[it]}" for it in items)
        wire = info.name if info.name == "INBOX" else utf7.encode(info.name)
        return b"* STATUS " + string(wire) + f" ({out})\r\n".encode()

    def cmd_append(self, tag: str, p: Parser) -> None:
        p.sp()
        name = self._folder_arg(p)
        p.sp()
        flags: list[str] = []
        when: float | None = None
        zone: int | None = None
        if p.peek() == ord("("):
            flags = [f for f in p.flag_list() if f != "\\Recent"]
            p.sp()
        if p.peek() == ord('"'):
            when, zone = p.date_time()
            p.sp()
        lit = p.literal()
        p.end()
        assert self.mb is not None
        try:
            self.mb.folder(name)
        except MailboxError as exc:
            raise NoCommand(f"no folder {name}", "TRYCREATE") from exc
        if lit.size == 0:
            raise NoCommand("an empty message cannot be appended")
        source = lit.bytes() if lit.in_memory else lit.stream()
        uidvalidity, uid = self.mb.append(name, source, flags, when, zone)
        self._updates(True)
        self.ok(tag, f"[APPENDUID {uidvalidity} {uid}] APPEND completed")

    def cmd_idle(self, tag: str, p: Parser) -> None:
        p.end()
        self.write(b"+ idling\r\n")
        self._updates(True)
        self.flush()
        waiter = gevent.spawn(self.reader.read_line)
        self.waiting = True
        try:
            while True:
                self.changed.clear()
                gevent.wait([waiter, self.changed], timeout=IDLE_POLL, count=1)
                if waiter.ready():
                    break
                self._updates(True)
                self.flush()
            line = waiter.get()
        finally:
            self.waiting = False
            waiter.kill()
        if line is None:
            raise Logout()
        if line.strip().upper() != b"DONE":
            raise BadCommand("expected DONE to end IDLE")
        self._updates(True)
        self.ok(tag, "IDLE terminated")

    # -- selected ---------------------------------------------------------------------------
    def cmd_close(self, tag: str, p: Parser) -> None:
        p.end()
        sel, mb = self._need_sel()
        if not sel.readonly:
            mb.expunge(sel.name)
        self.sel = None
        self.state = AUTH
        self.ok(tag, "CLOSE completed")

    def cmd_unselect(self, tag: str, p: Parser) -> None:
        p.end()
        self.sel = None
        self.state = AUTH
        self.ok(tag, "UNSELECT completed")

    def cmd_expunge(self, tag: str, p: Parser, uid: bool = False) -> None:
        sel, mb = self._need_sel()
        uids: list[int] | None = None
        if uid:
            p.sp()
            uids = self._target_uids(p.seq_set_or_saved(), True)
        p.end()
        if sel.readonly:
            raise NoCommand("folder is read-only", "READ-ONLY")
        mb.expunge(sel.name, uids)
        self._updates(True)
        self.ok(tag, "EXPUNGE completed")

    def cmd_search(self, tag: str, p: Parser, uid: bool = False) -> None:
        sel, mb = self._need_sel()
        p.sp()
        options: set[str] | None = None
        if p.try_(b"RETURN "):  # ESEARCH (RFC 4731)
            options = return_options(p)
            p.sp()
        sp = SearchParser(p, lambda s: self._seq_ranges(s, strict=False), self._uid_ranges)
        try:
            criteria = sp.program()  # a $ in it is resolved here, before this search saves its own
            p.end()
        except (BadCommand, NoCommand):
            if options is not None and "SAVE" in options:  # RFC 5182 2.1: a failed SEARCH empties $
                sel.saved = []
            raise
        if sp.uses_modseq:
            self._condstore_on()
        self._updates(uid)
        criteria = resolve_recent(criteria, sel.recent)
        found = [u for u in mb.search(sel.name, criteria) if sel.seq_of(u)]
        nums = found if uid else [sel.seq_of(u) for u in found]
        if options is not None:
            if "SAVE" in options:  # SEARCHRES (RFC 5182): $ for the commands that follow
                sel.saved = picked(options, found)
            shown = options - {"SAVE"}
            if shown:
                modseq = None
                if sp.uses_modseq and found:
                    modseq = max(i.modseq for i in mb.infos(sel.name, picked(shown, found)).values())
                self.write(esearch_line(tag, uid, shown, nums, modseq))
            self.ok(tag, ("UID " if uid else "") + "SEARCH completed")
            return
        line = "* SEARCH" + "".join(f" {n}" for n in nums)
        if sp.uses_modseq and found:
            best = max(i.modseq for i in mb.infos(sel.name, found).values())
            line += f" (MODSEQ {best})"
        self.write((line + "\r\n").encode())
        self.ok(tag, ("UID " if uid else "") + "SEARCH completed")

    def cmd_fetch(self, tag: str, p: Parser, uid: bool = False) -> None:
        sel, mb = self._need_sel()
        p.sp()
        seqset = p.seq_set_or_saved()
        p.sp()
        atts = fetchmod.parse_atts(p)
        changed_since: int | None = None
        vanished = False
        if p.try_(b" "):
            p.open_list()
            while not p.close_list():
                mod = p.atom("a FETCH modifier").upper()
                if mod == "CHANGEDSINCE":
                    p.sp()
                    changed_since = p.mod_sequence()
                elif mod == "VANISHED":  # RFC 7162 3.2.6
                    vanished = True
                else:
                    raise BadCommand(f"unknown FETCH modifier {mod}")
                p.try_(b" ")
        p.end()
        if vanished and not (uid and self.qresync and changed_since is not None):
            raise BadCommand("VANISHED needs UID FETCH, CHANGEDSINCE and ENABLE QRESYNC")
        if changed_since is not None or any(a.name == "MODSEQ" for a in atts):
            self._condstore_on()  # once the command is known to be good
        self._updates(uid)
        if vanished:
            assert changed_since is not None
            uidnext = mb.uidnext(sel.name)
            scope = runs(sel.saved) if seqset.saved else seqset.resolve(max(uidnext - 1, 1))
            self._vanished_earlier(sel, mb, changed_since, scope, uidnext)
        names = {a.name for a in atts}
        if uid or self.qresync:
            names.add("UID")
        if changed_since is not None or (self.condstore and "FLAGS" in names):
            names.add("MODSEQ")
        targets = self._target_uids(seqset, uid)
        want_seen = not sel.readonly and any(a.is_section and not a.peek for a in atts)
        for start in range(0, len(targets), 200):
            chunk = targets[start : start + 200]
            infos = mb.infos(sel.name, chunk)
            if want_seen:
                unseen = [u for u in chunk if u in infos and "\\Seen" not in infos[u].flags]
                if unseen:
                    caught_up = mb.highestmodseq(sel.name) == sel.modseq
                    mb.set_flags(sel.name, unseen, ["\\Seen"], "add")
                    if caught_up:  # our own change: do not report it again as an update
                        sel.modseq = mb.highestmodseq(sel.name)
                    infos = mb.infos(sel.name, chunk)
            for u in chunk:
                info = infos.get(u)
                if info is None:
                    continue  # expunged by another session; reported at the next allowed point
                if changed_since is not None and info.modseq <= changed_since:
                    continue
                self._fetch_one(sel, mb, u, info, atts, names, want_seen)
        self.ok(tag, ("UID " if uid else "") + "FETCH completed")

    def _fetch_one(
        self, sel: Selected, mb: UserMailbox, u: int, info: Any, atts: list[Any], names: set[str], seen: bool
    ) -> None:
        items: list[bytes] = []
        if "UID" in names:
            items.append(b"UID %d" % u)
        if "FLAGS" in names or seen:
            self._announce_keywords(info.flags)
            items.append(b"FLAGS " + flag_list(self._with_recent(u, info.flags)))
        if "MODSEQ" in names:
            items.append(b"MODSEQ (%d)" % info.modseq)
        if "INTERNALDATE" in names:
            items.append(b"INTERNALDATE " + internal_date(info.internaldate, info.tzoffset))
        if "RFC822.SIZE" in names:
            items.append(b"RFC822.SIZE %d" % info.size)
        if "ENVELOPE" in names:
            items.append(b"ENVELOPE " + pack(info.envelope))
        top = None
        if "BODYSTRUCTURE" in names or "BODY" in names or any(a.is_section for a in atts):
            top = mb.structure(sel.name, u)
        if top is not None and "BODYSTRUCTURE" in names:
            items.append(b"BODYSTRUCTURE " + pack(body_structure(top, True)))
        if top is not None and "BODY" in names:
            items.append(b"BODY " + pack(body_structure(top, False)))
        sections = [a for a in atts if a.is_section]
        fh = None
        if sections:
            try:  # open before writing anything: a file removed behind our back skips the message
                fh = mb.open_message(sel.name, u)
            except MailboxError:
                return
        self.write(b"* %d FETCH (" % sel.seq_of(u) + b" ".join(items))
        if fh is not None:
            assert top is not None
            with fh:
                for i, att in enumerate(sections):
                    data, start, length = fetchmod.section_data(fh, top, att, info.size)
                    sep = b" " if items or i else b""
                    if data is not None:
                        self.write(sep + att.label.encode() + b" {%d}\r\n" % len(data) + data)
                    else:
                        self.write(sep + att.label.encode() + b" {%d}\r\n" % length)
                        self.stream(fh, start, length)
        self.write(b")\r\n")

    def cmd_store(self, tag: str, p: Parser, uid: bool = False) -> None:
        sel, mb = self._need_sel()
        p.sp()
        seqset = p.seq_set_or_saved()
        p.sp()
        unchanged: int | None = None
        if p.peek() == ord("("):
            p.open_list()
            mod = p.atom("a STORE modifier").upper()
            if mod != "UNCHANGEDSINCE":
                raise BadCommand(f"unknown STORE modifier {mod}")
            p.sp()
            unchanged = p.mod_sequence()
            if not p.close_list():
                raise BadCommand("expected ')'")
            p.sp()
        item = p.atom("+FLAGS, -FLAGS or FLAGS").upper() if p.peek() not in (ord("+"), ord("-")) else None
        if item is None:
            sign = chr(p.line[p.pos])
            p.pos += 1
            item = sign + p.atom("FLAGS").upper()
        if item.lstrip("+-") not in ("FLAGS", "FLAGS.SILENT"):
            raise BadCommand(f"unknown STORE item {item}")
        p.sp()
        if p.peek() == ord("("):
            flags = p.flag_list()
        else:
            flags = [p.flag()]
            while p.try_(b" "):
                flags.append(p.flag())
        p.end()
        if sel.readonly:
            raise NoCommand("folder is read-only", "READ-ONLY")
        if any(f in ("\\Recent", "\\*") for f in flags):
            raise BadCommand("\\Recent and \\* cannot be stored")
        if unchanged is not None:
            self._condstore_on()
        mode = {"+": "add", "-": "remove"}.get(item[0], "replace")
        silent = item.endswith(".SILENT")
        self._updates(uid)
        caught_up = mb.highestmodseq(sel.name) == sel.modseq
        targets = self._target_uids(seqset, uid)
        changed, failed = mb.set_flags(sel.name, targets, flags, mode, unchanged)
        if caught_up:
            sel.modseq = mb.highestmodseq(sel.name)
        if changed and mode != "remove":  # announced even when .SILENT, before any FETCH
            self._announce_keywords(flags)
        report = {c[0]: c for c in changed}
        if not silent or self.condstore:
            infos = mb.infos(sel.name, [t for t in targets if t not in failed]) if not silent else {}
            for t in targets:
                if t in failed:
                    continue
                if t in report:
                    _, fl, ms = report[t]
                elif not silent and t in infos:
                    fl, ms = infos[t].flags, infos[t].modseq
                else:
                    continue
                self._flags_line(sel.seq_of(t), t, fl, ms, uid)
        if failed:
            nums = failed if uid else [sel.seq_of(u) for u in failed]
            self.ok(tag, f"[MODIFIED {seq_text(sorted(nums))}] conditional STORE failed for some")
        else:
            self.ok(tag, ("UID " if uid else "") + "STORE completed")

    def _copy(self, tag: str, p: Parser, uid: bool, move: bool) -> None:
        sel, mb = self._need_sel()
        p.sp()
        seqset = p.seq_set_or_saved()
        p.sp()
        dest = self._folder_arg(p)
        p.end()
        if move and sel.readonly:
            raise NoCommand("folder is read-only", "READ-ONLY")
        try:
            mb.folder(dest)
        except MailboxError as exc:
            raise NoCommand(f"no folder {dest}", "TRYCREATE") from exc
        if not uid:
            self._seq_ranges(seqset)  # validates the numbers
        targets = self._target_uids(seqset, uid)
        op = mb.move if move else mb.copy
        uidvalidity, pairs = op(sel.name, targets, dest)
        code = ""
        if pairs:
            code = f"[COPYUID {uidvalidity} {seq_text([a for a, _ in pairs])} {seq_text([b for _, b in pairs])}] "
        if move:
            if code:
                self.write(f"* OK {code}moved\r\n".encode())
            self._updates(True)
            self.ok(tag, "MOVE completed")
        else:
            self._updates(uid)
            self.ok(tag, f"{code}COPY completed")

    def cmd_copy(self, tag: str, p: Parser, uid: bool = False) -> None:
        self._copy(tag, p, uid, False)

    def cmd_move(self, tag: str, p: Parser, uid: bool = False) -> None:
        self._copy(tag, p, uid, True)


_STATE_TEXT = {
    NOTAUTH: "before logging in",
    AUTH: "without a selected folder",
    SELECTED: "in this state",
    LOGOUT: "after LOGOUT",
}
_ANY = (NOTAUTH, AUTH, SELECTED)
_AUTHED = (AUTH, SELECTED)
COMMANDS: dict[str, tuple[Callable[..., None], tuple[str, ...]]] = {
    "CAPABILITY": (Session.cmd_capability, _ANY),
    "NOOP": (Session.cmd_noop, _ANY),
    "LOGOUT": (Session.cmd_logout, _ANY),
    "ID": (Session.cmd_id, _ANY),
    "STARTTLS": (Session.cmd_starttls, (NOTAUTH,)),
    "LOGIN": (Session.cmd_login, (NOTAUTH,)),
    "AUTHENTICATE": (Session.cmd_authenticate, (NOTAUTH,)),
    "ENABLE": (Session.cmd_enable, _AUTHED),
    "NAMESPACE": (Session.cmd_namespace, _AUTHED),
    "SELECT": (Session.cmd_select, _AUTHED),
    "EXAMINE": (Session.cmd_examine, _AUTHED),
    "CREATE": (Session.cmd_create, _AUTHED),
    "DELETE": (Session.cmd_delete, _AUTHED),
    "RENAME": (Session.cmd_rename, _AUTHED),
    "SUBSCRIBE": (Session.cmd_subscribe, _AUTHED),
    "UNSUBSCRIBE": (Session.cmd_unsubscribe, _AUTHED),
    "LIST": (Session.cmd_list, _AUTHED),
    "LSUB": (Session.cmd_lsub, _AUTHED),
    "STATUS": (Session.cmd_status, _AUTHED),
    "APPEND": (Session.cmd_append, _AUTHED),
    "IDLE": (Session.cmd_idle, _AUTHED),
    "CHECK": (Session.cmd_check, (SELECTED,)),
    "CLOSE": (Session.cmd_close, (SELECTED,)),
    "UNSELECT": (Session.cmd_unselect, (SELECTED,)),
    "EXPUNGE": (Session.cmd_expunge, (SELECTED,)),
    "SEARCH": (Session.cmd_search, (SELECTED,)),
    "FETCH": (Session.cmd_fetch, (SELECTED,)),
    "STORE": (Session.cmd_store, (SELECTED,)),
    "COPY": (Session.cmd_copy, (SELECTED,)),
    "MOVE": (Session.cmd_move, (SELECTED,)),
}
