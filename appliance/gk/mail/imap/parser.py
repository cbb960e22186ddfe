"""IMAP command syntax: the command reader (lines + literals, with limits) and the tokenizer.

``CommandReader.read()`` returns one command as alternating parts — text line, ``Literal``,
text line, … — reading ``{n}`` literals (after a ``+`` continuation) and ``{n+}`` (LITERAL+)
into memory or a spool file. Limits, per command: ``max_line`` bytes of text over all its lines
(longer ones are drained and answered with BAD, as Dovecot counts its line length),
``max_literal`` bytes per literal and ``max_literal_total`` over all its literals (the session
lowers both to ``PREAUTH_LITERAL_BYTES`` before login), ``MAX_LITERALS`` literals, and at most
``MEMORY_LITERAL`` literal bytes in memory (the rest goes to the spool). A literal the spool
disk cannot hold is read and discarded, then answered ``NO [OVERQUOTA]``: the session stays in
step with the client. ``Parser`` walks those parts with the RFC 3501 grammar: atoms, astrings,
quoted strings, literals, lists (nesting ≤ ``max_depth``), numbers (≤ ``MAX_NUMBER``, mod-sequences
≤ ``MAX_MODSEQ``), sequence sets, flags and dates. Every failure is a ``BadCommand`` with a
reason; nothing else escapes it (see the property tests).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import IO

from gk.mail.imap import utf7
from gk.mail.imap.protocol import (
    MAX_DEPTH,
    MAX_LITERALS,
    MAX_MODSEQ,
    MAX_NUMBER,
    MAX_SEQ_RANGES,
    MEMORY_LITERAL,
    STORAGE_ERROR_TEXT,
    BadCommand,
    Literal,
    NoCommand,
    SeqSet,
    storage_error_code,
)

Part = bytes | Literal

_ATOM_SPECIALS = set(b'(){ %*"\\]') | set(range(0, 32)) | {127}
_ASTRING_SPECIALS = _ATOM_SPECIALS - {ord("]")}
_LIST_SPECIALS = _ASTRING_SPECIALS - {ord("%"), ord("*")}
_LITERAL_AT_END = re.compile(rb"\{(\d{1,12})(\+?)\}$")
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DATE_TIME = re.compile(r"^([ \d]\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)$")


class ReaderError(Exception):
    """A command that could not be read whole; ``tag`` is what we could see of it, ``reply`` the
    tagged answer's start (``BAD``, or ``NO [OVERQUOTA]`` when the spool disk is full); ``fatal``:
    the client is sending data we cannot skip, so the session ends."""

    def __init__(self, tag: str, message: str, fatal: bool = False, reply: str = "BAD"):
        super().__init__(message)
        self.tag = tag
        self.fatal = fatal
        self.reply = reply


def _tag_of(line: bytes) -> str:
    tag = line.split(b" ", 1)[0][:64]
    ok = tag and all(c not in _ASTRING_SPECIALS and c != ord("+") and c < 128 for c in tag)
    return tag.decode("ascii") if ok else "*"


class CommandReader:
    """Reads whole commands from a buffered binary stream."""

    def __init__(
        self,
        rfile: IO[bytes],
        send_continuation: Callable[[], None],
        max_line: int = 65536,
        max_literal: int = 64 * 1024 * 1024,
        spool_dir: str | None = None,
        max_literal_total: int | None = None,
    ):
        self.rfile = rfile
        self.send_continuation = send_continuation
        self.max_line = max_line
        self.max_literal = max_literal
        # room for one literal of the largest size plus a few small ones (a mailbox name)
        self.max_literal_total = max_literal + MEMORY_LITERAL if max_literal_total is None else max_literal_total
        self.spool_dir = spool_dir
        self.limit_hint = ""  # appended to a refusal: what the client can do about it
        # called with (the parts so far, the size) for each literal announced: a ReaderError
        # refuses it as ``failed`` does (before ``+``, or after discarding a LITERAL+ one)
        self.check_literal: Callable[[list[Part], int], ReaderError | None] | None = None

    def read_line(self, limit: int | None = None) -> bytes | None:
        """One CRLF-terminated line of at most ``limit`` (default ``max_line``) bytes without its
        terminator; None at EOF."""
        limit = self.max_line if limit is None else limit
        line = self.rfile.readline(limit + 2)
        if not line:
            return None
        if not line.endswith(b"\n"):
            if len(line) < limit + 2:
                return None  # EOF in the middle of a line
            # drain the rest of this over-long line, then refuse it
            while True:
                more = self.rfile.readline(65536)
                if not more or more.endswith(b"\n"):
                    break
            what = "line" if limit == self.max_line else "command"
            raise ReaderError(_tag_of(line), f"{what} longer than {self.max_line} bytes")
        return line.rstrip(b"\r\n") if line.endswith(b"\r\n") else line[:-1]

    def read(self) -> list[Part] | None:
        parts: list[Part] = []
        tag = "*"
        text = 0  # bytes of command text so far
        total = 0  # literal bytes so far
        memory = 0  # literal bytes held in memory
        failed: ReaderError | None = None  # the spool failed: read the command to its end, then say so

        def close_all() -> None:
            for p in parts:
                if isinstance(p, Literal):
                    p.close()

        while True:
            try:
                line = self.read_line(max(self.max_line - text, 0))
            except ReaderError as exc:
                close_all()
                if parts:  # a continuation line: answer with the command's tag
                    raise ReaderError(tag, str(exc)) from None
                raise
            if line is None:
                close_all()
                return None
            text += len(line)
            if not parts:
                tag = _tag_of(line)
            m = _LITERAL_AT_END.search(line)
            if not m:
                parts.append(line)
                if failed is not None:
                    close_all()
                    raise failed
                return parts
            size, plus = int(m.group(1)), bool(m.group(2))
            parts.append(line[: m.start()])
            refusal = ""
            if size > self.max_literal:
                refusal = f"literal of {size} bytes is over the limit of {self.max_literal}"
            elif total + size > self.max_literal_total:
                refusal = (
                    f"literals of {total + size} bytes in one command are over the limit of {self.max_literal_total}"
                )
            elif len(parts) > 2 * MAX_LITERALS:
                refusal = f"more than {MAX_LITERALS} literals in one command"
            if refusal:
                close_all()
                # a synchronizing literal was never sent: the client waits for our answer.
                # A LITERAL+ one is on its way: we cannot resync cheaply, so end the session.
                raise ReaderError(tag, refusal + self.limit_hint, fatal=plus)
            total += size
            keep = size <= MEMORY_LITERAL - memory
            if keep:
                memory += size
            if failed is None and self.check_literal is not None:
                failed = self.check_literal(parts, size)  # the IMAP QUOTA check (imap/quota.py)
            if failed is not None and not plus:
                close_all()
                raise failed  # the client waits for our answer: it will not send this literal
            if not plus:
                self.send_continuation()
            lit: Literal | None = None
            if failed is None:
                try:
                    lit = Literal(size, self.spool_dir, in_memory=keep)
                except OSError as exc:
                    failed = self._spool_failed(tag, exc)
            left = size
            chunks: list[bytes] = []
            while left:
                chunk = self.rfile.read(min(left, 65536))
                if not chunk:
                    if lit is not None:
                        lit.close()
                    close_all()
                    return None
                left -= len(chunk)
                if lit is None:
                    continue  # discarded: the spool could not take it
                if lit.in_memory:
                    chunks.append(chunk)
                    continue
                try:
                    lit.write(chunk)
                except OSError as exc:
                    lit.close()
                    lit, failed = None, self._spool_failed(tag, exc)
            if lit is not None:
                try:
                    lit.finish(chunks)
                    parts.append(lit)
                except OSError as exc:
                    lit.close()
                    failed = self._spool_failed(tag, exc)
            if failed is not None:
                close_all()
                parts = [p for p in parts if not isinstance(p, Literal)]

    def _spool_failed(self, tag: str, exc: OSError) -> ReaderError:
        code = storage_error_code(exc)
        if code is None:
            raise exc
        return ReaderError(tag, f"cannot store the literal: {STORAGE_ERROR_TEXT[code]}", reply=f"NO [{code}]")


class Parser:
    """A cursor over one command's parts with the RFC 3501 grammar."""

    def __init__(self, parts: list[Part]):
        self.parts = parts
        self.i = 0
        self.pos = 0
        self.depth = 0
        self.max_depth = MAX_DEPTH  # SEARCH raises it (and counts NOT and OR as levels)

    # -- low level --------------------------------------------------------------------------
    @property
    def line(self) -> bytes:
        p = self.parts[self.i]
        return p if isinstance(p, bytes) else b""

    def peek(self) -> int | None:
        """Next byte of the current text part, or None at its end."""
        line = self.line
        return line[self.pos] if self.pos < len(line) else None

    def at_literal(self) -> bool:
        return self.peek() is None and self.i + 1 < len(self.parts) and isinstance(self.parts[self.i + 1], Literal)

    def at_end(self) -> bool:
        return self.peek() is None and self.i + 1 >= len(self.parts)

    def expect(self, s: bytes, what: str | None = None) -> None:
        line = self.line
        if line[self.pos : self.pos + len(s)].lower() != s.lower():
            raise BadCommand(f"expected {what or repr(s.decode())}")
        self.pos += len(s)

    def try_(self, s: bytes) -> bool:
        line = self.line
        if line[self.pos : self.pos + len(s)].lower() == s.lower():
            self.pos += len(s)
            return True
        return False

    def sp(self) -> None:
        self.expect(b" ", "a space")

    def end(self) -> None:
        if not self.at_end():
            raise BadCommand("unexpected characters at the end of the command")

    def _take(self, allowed: Callable[[int], bool]) -> bytes:
        line = self.line
        start = self.pos
        while self.pos < len(line) and allowed(line[self.pos]):
            self.pos += 1
        return line[start : self.pos]

    # -- tokens -----------------------------------------------------------------------------
    def atom(self, what: str = "an atom") -> str:
        tok = self._take(lambda c: c not in _ATOM_SPECIALS and c < 128)
        if not tok:
            raise BadCommand(f"expected {what}")
        return tok.decode("ascii")

    def tag(self) -> str:
        tok = self._take(lambda c: c not in _ASTRING_SPECIALS and c != ord("+") and c < 128)
        if not tok:
            raise BadCommand("missing or invalid tag")
        return tok.decode("ascii")

    def number(self, what: str = "a number", nz: bool = False, limit: int = MAX_NUMBER) -> int:
        """A decimal number, at most ``limit`` (RFC 3501: 32-bit unsigned) — a bigger one is BAD,
        never an overflow deeper down (SQLite takes 64-bit signed integers)."""
        tok = self._take(lambda c: 48 <= c <= 57)
        if not tok:
            raise BadCommand(f"expected {what}")
        n = int(tok[:30])
        if len(tok) > 30 or n > limit:
            raise BadCommand(f"{what} must be at most {limit}")
        if nz and n == 0:
            raise BadCommand(f"{what} must not be 0")
        return n

    def mod_sequence(self, what: str = "a mod-sequence", nz: bool = False) -> int:
        """An RFC 7162 mod-sequence: up to 2**63 - 1."""
        return self.number(what, nz, MAX_MODSEQ)

    def quoted(self) -> bytes:
        self.expect(b'"')
        line = self.line
        out = bytearray()
        while True:
            if self.pos >= len(line):
                raise BadCommand("unterminated quoted string")
            c = line[self.pos]
            self.pos += 1
            if c == ord('"'):
                return bytes(out)
            if c == ord("\\"):
                if self.pos >= len(line) or line[self.pos] not in b'"\\':
                    raise BadCommand("bad escape in quoted string")
                c = line[self.pos]
                self.pos += 1
            elif c in (13, 10, 0):
                raise BadCommand("CR, LF or NUL in quoted string")
            out.append(c)

    def literal(self) -> Literal:
        if not self.at_literal():
            raise BadCommand("expected a literal")
        self.i += 1
        lit = self.parts[self.i]
        assert isinstance(lit, Literal)
        self.i += 1
        self.pos = 0
        return lit

    def string(self) -> bytes:
        if self.peek() == ord('"'):
            return self.quoted()
        if self.at_literal():
            return self.literal().bytes()
        raise BadCommand("expected a string")

    def astring(self, what: str = "an astring") -> bytes:
        c = self.peek()
        if c == ord('"') or self.at_literal():
            return self.string()
        tok = self._take(lambda c: c not in _ASTRING_SPECIALS and c < 128)
        if not tok:
            raise BadCommand(f"expected {what}")
        return tok

    def nstring(self) -> bytes | None:
        if self.try_(b"NIL"):
            return None
        return self.string()

    def text_astring(self, what: str = "an astring") -> str:
        try:
            return self.astring(what).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadCommand(f"{what} is not UTF-8") from exc

    def mailbox(self) -> str:
        """A mailbox name (modified UTF-7 on the wire, or UTF-8) as Unicode.

        A well-formed string that is not a valid name is NO [CANNOT], not BAD: the command's
        syntax is right, the name is what the server refuses (as Dovecot answers, and imaptest
        expects for CREATE and SELECT)."""
        raw = self.astring("a mailbox name")
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise NoCommand("mailbox name is neither modified UTF-7 nor UTF-8", "CANNOT") from exc
        if text.upper() == "INBOX":
            return "INBOX"
        try:
            return utf7.decode(text)
        except utf7.UTF7Error as exc:
            raise NoCommand(str(exc), "CANNOT") from exc

    def list_mailbox(self) -> str:
        c = self.peek()
        if c == ord('"') or self.at_literal():
            raw = self.string()
        else:
            raw = self._take(lambda c: c not in _LIST_SPECIALS and c < 128)
            if not raw:
                raise BadCommand("expected a mailbox pattern")
        try:
            return utf7.decode(raw.decode("ascii"))
        except (UnicodeDecodeError, utf7.UTF7Error):
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BadCommand("mailbox pattern is not valid") from exc

    def open_list(self) -> None:
        self.expect(b"(")
        self.enter("lists")

    def enter(self, what: str) -> None:
        """One level deeper (a list, or SEARCH's NOT and OR); ``leave`` when done."""
        self.depth += 1
        if self.depth > self.max_depth:
            raise BadCommand(f"{what} nested deeper than {self.max_depth}")

    def leave(self) -> None:
        self.depth -= 1

    def close_list(self) -> bool:
        if self.try_(b")"):
            self.depth -= 1
            return True
        return False

    def flag(self) -> str:
        if self.try_(b"\\"):
            if self.peek() == ord("*"):
                self.pos += 1
                return "\\*"
            return "\\" + self.atom("a flag name")
        return self.atom("a flag")

    def flag_list(self) -> list[str]:
        self.open_list()
        out: list[str] = []
        if self.close_list():
            return out
        while True:
            out.append(self.flag())
            if self.close_list():
                return out
            self.sp()

    def seq_number(self) -> int | None:
        if self.try_(b"*"):
            return None
        n = self.number("a sequence number")
        if n == 0 or n > 0xFFFFFFFF:
            raise BadCommand("sequence numbers are 1..4294967295")
        return n

    def seq_set(self) -> SeqSet:
        ranges: list[tuple[int | None, int | None]] = []
        while True:
            a = self.seq_number()
            b = self.seq_number() if self.try_(b":") else a
            ranges.append((a, b))
            if len(ranges) > MAX_SEQ_RANGES:
                raise BadCommand("sequence set too long")
            if not self.try_(b","):
                return SeqSet(tuple(ranges))

    def seq_set_or_saved(self) -> SeqSet:
        """A sequence set, or ``$`` (SEARCHRES: the last saved search result)."""
        if self.try_(b"$"):
            return SeqSet((), saved=True)
        return self.seq_set()

    def date(self) -> dt.date:
        quoted = self.try_(b'"')
        tok = self._take(lambda c: c not in b' ")').decode("ascii", "replace")
        if quoted:
            self.expect(b'"')
        m = re.match(r"^(\d{1,2})-([A-Za-z]{3})-(\d{4})$", tok)
        if not m or m.group(2).lower() not in _MONTHS:
            raise BadCommand("expected a date like 1-Feb-2026")
        try:
            return dt.date(int(m.group(3)), _MONTHS.index(m.group(2).lower()) + 1, int(m.group(1)))
        except ValueError as exc:
            raise BadCommand("no such date") from exc

    def date_time(self) -> tuple[float, int]:
        """A quoted RFC 3501 date-time: (unix seconds, its zone in minutes east of UTC)."""
        raw = self.quoted().decode("ascii", "replace")
        m = _DATE_TIME.match(raw)
        if not m or m.group(2).lower() not in _MONTHS:
            raise BadCommand('expected a date-time like "01-Feb-2026 10:00:00 +0100"')
        d, mon, y, hh, mm, ss, sign, zh, zm = m.groups()
        try:
            tz = dt.timezone((-1 if sign == "-" else 1) * dt.timedelta(hours=int(zh), minutes=int(zm)))
            when = dt.datetime(int(y), _MONTHS.index(mon.lower()) + 1, int(d), int(hh), int(mm), int(ss), tzinfo=tz)
        except ValueError as exc:
            raise BadCommand("no such date-time") from exc
        offset = when.utcoffset()
        assert offset is not None
        return when.timestamp(), int(offset.total_seconds()) // 60
