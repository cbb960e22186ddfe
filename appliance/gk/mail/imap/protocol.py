"""IMAP protocol types shared by the parser, the commands and the session: errors, literals,
sequence sets, capabilities and limits."""

from __future__ import annotations

import bisect
import builtins
import errno
import sqlite3
import ssl
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import IO

BASE_CAPS = (
    "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UIDPLUS MOVE SPECIAL-USE CHILDREN UNSELECT CONDSTORE"
    " QRESYNC ESEARCH SEARCHRES LIST-STATUS BINARY"
)

MAX_DEPTH = 16  # nesting of parenthesized lists (FETCH, APPEND flags, SELECT options)
MAX_LITERALS = 64  # literals in one command (APPEND of one message uses one or two)
MAX_SEQ_RANGES = 10_000  # ranges in one sequence set
MEMORY_LITERAL = 256 * 1024  # literal bytes one command may hold in memory; the rest is spooled to a file
# Before login a command may carry this many literal bytes in all (a user name and a password
# as literals, or SASL data): an unauthenticated client can neither hold memory nor fill the
# spool disk. Over it, a synchronizing literal is refused (BAD) before it is sent.
PREAUTH_LITERAL_BYTES = 8 * 1024
# SEARCH: nesting counts parentheses, NOT and OR alike: each is a level of recursion in the
# parser and the criteria, and a parenthesis in the SQL, whose parser stack overflows at about
# 28 of them (measured: 28 right-nested ORs, 17 of NOT OR); keys count every key (an AND of
# them is a chain in SQLite's expression tree, whose depth limit is 1,000).
MAX_SEARCH_DEPTH = MAX_DEPTH
MAX_SEARCH_KEYS = 500
MAX_NUMBER = 2**32 - 1  # RFC 3501 number: 32-bit unsigned
MAX_MODSEQ = 2**63 - 1  # RFC 7162 mod-sequence-value: 63 bits (SQLite's signed 64-bit integer)


class BadCommand(Exception):
    """Malformed input: tagged ``BAD`` with this reason; the session goes on."""


class NoCommand(Exception):
    """A refused command: tagged ``NO [code] reason``."""

    def __init__(self, message: str, code: str = ""):
        super().__init__(message)
        self.code = code


def storage_error_code(exc: BaseException) -> str | None:
    """The RFC 5530 response code for a failure of the disk or the index (not of the network):
    ``OVERQUOTA`` when the disk is full (as Dovecot answers ENOSPC), ``UNAVAILABLE`` when it
    cannot be read or written; None for anything else (a socket error ends the session)."""
    if isinstance(exc, sqlite3.Error):
        primary = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
        if primary == 13:  # SQLITE_FULL
            return "OVERQUOTA"
        if primary in (5, 6, 8, 10, 14):  # BUSY, LOCKED, READONLY, IOERR, CANTOPEN
            return "UNAVAILABLE"
        return None
    if not isinstance(exc, OSError) or isinstance(exc, (ssl.SSLError, ConnectionError, TimeoutError)):
        return None
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return "OVERQUOTA"
    if exc.errno in (errno.EIO, errno.EROFS, errno.EMFILE, errno.ENFILE):
        return "UNAVAILABLE"
    return None


_FILE_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)


def is_network_error(exc: BaseException) -> bool:
    """Whether an ``OSError`` came from the client's connection (it ends the session) rather than
    from files (a missing file, a failed rename: a bug or a race; the command fails, the session
    goes on). A socket's errors never name a file; file operations do."""
    if not isinstance(exc, OSError):
        return False
    if isinstance(exc, (ssl.SSLError, ConnectionError, TimeoutError)):
        return True
    return not (isinstance(exc, _FILE_ERRORS) or exc.filename)


STORAGE_ERROR_TEXT = {
    "OVERQUOTA": "not enough disk space; the session goes on",
    "UNAVAILABLE": "the mail storage is unavailable; try again later",
}


class Literal:
    """A literal's bytes, in memory when small, else in an anonymous temporary file.

    ``in_memory``: the reader's decision (it keeps a command's total in memory under
    ``MEMORY_LITERAL``); None: by this literal's size alone."""

    __slots__ = ("size", "_data", "_file", "_nul")

    def __init__(self, size: int, spool_dir: str | None = None, in_memory: bool | None = None):
        self.size = size
        self._data: bytes | None = None
        self._file: IO[bytes] | None = None
        self._nul = False  # a NUL byte was written (``has_nul``), seen chunk by chunk as it arrives
        if not (size <= MEMORY_LITERAL if in_memory is None else in_memory):
            self._file = tempfile.TemporaryFile(dir=spool_dir)

    def write(self, chunk: bytes) -> None:
        self._nul = self._nul or b"\0" in chunk
        if self._file is not None:
            self._file.write(chunk)
        else:
            self._data = (self._data or b"") + chunk

    def finish(self, chunks: list[bytes]) -> None:
        if self._file is None:
            self._data = b"".join(chunks)
        else:
            self._file.seek(0)

    @property
    def in_memory(self) -> bool:
        return self._file is None

    def bytes(self) -> builtins.bytes:
        """The data (only for small literals: names, search strings, passwords)."""
        if self._file is not None:
            raise BadCommand("literal too large here")
        return self._data or b""

    def stream(self) -> IO[builtins.bytes]:  # `bytes` here is the method above
        import io

        if self._file is not None:
            self._file.seek(0)
            return self._file
        return io.BytesIO(self._data or b"")

    def has_nul(self) -> bool:
        """Does the data hold a NUL byte (an APPEND's ``~{n}`` literal8, RFC 3516 4.4)?"""
        if self._file is None:
            return b"\0" in (self._data or b"")
        return self._nul  # spooled: seen as it was written, not read back from disk on the hub

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


@dataclass(frozen=True, slots=True)
class SeqSet:
    """A parsed sequence set; ``None`` as a bound stands for ``*``. ``saved``: the set was ``$``
    (SEARCHRES, RFC 5182), the session's saved search result; ``ranges`` is empty then."""

    ranges: tuple[tuple[int | None, int | None], ...]
    saved: bool = False

    def resolve(self, largest: int) -> list[tuple[int, int]]:
        """Concrete (lo, hi) ranges, ``*`` = ``largest``; lo <= hi."""
        out = []
        for a, b in self.ranges:
            x = largest if a is None else a
            y = largest if b is None else b
            out.append((min(x, y), max(x, y)))
        return out

    def contains_star(self) -> bool:
        return any(a is None or b is None for a, b in self.ranges)


def seq_text(numbers: list[int]) -> str:
    """Compact sequence-set text for sorted numbers (``1:3,7``)."""
    out: list[str] = []
    i = 0
    while i < len(numbers):
        j = i
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        out.append(str(numbers[i]) if i == j else f"{numbers[i]}:{numbers[j]}")
        i = j + 1
    return ",".join(out)


def runs(numbers: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted numbers as (lo, hi) runs of consecutive ones: ``[1, 2, 3, 7]`` → ``[(1, 3), (7, 7)]``."""
    out: list[tuple[int, int]] = []
    for n in numbers:
        if out and n == out[-1][1] + 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


def ranges_text(ranges: Sequence[tuple[int, int]]) -> str:
    """Sequence-set text of ascending, disjoint (lo, hi) ranges: ``[(1, 3), (7, 7)]`` → ``1:3,7``."""
    return ",".join(str(lo) if lo == hi else f"{lo}:{hi}" for lo, hi in ranges)


def missing(ranges: Sequence[tuple[int, int]], present: Sequence[int]) -> list[tuple[int, int]]:
    """The parts of ``ranges`` (ascending, disjoint) not in ``present`` (ascending), as ranges."""
    out: list[tuple[int, int]] = []
    for lo, hi in ranges:
        i = bisect.bisect_left(present, lo)
        cur = lo
        while i < len(present) and present[i] <= hi:
            if present[i] > cur:
                out.append((cur, present[i] - 1))
            cur = present[i] + 1
            i += 1
        if cur <= hi:
            out.append((cur, hi))
    return out


def merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """(lo, hi) ranges sorted and merged where they overlap or touch."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def in_ranges(ranges: Sequence[tuple[int, int]], n: int) -> bool:
    """Whether ``n`` is in ``ranges`` (ascending and disjoint, as ``merge`` makes them)."""
    i = bisect.bisect_right(ranges, (n, 1 << 64)) - 1
    return i >= 0 and ranges[i][1] >= n
