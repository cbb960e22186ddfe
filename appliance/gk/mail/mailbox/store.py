"""``MailboxStore`` / ``UserMailbox``: every read and write of a user's mail goes through here.

Authorization: a ``UserMailbox`` is bound to one address and only ever touches
``mail/<address>/``; folder names are checked (``check_folder_name``) so no name reaches
outside that tree. Protocols (IMAP, webmail) get a ``UserMailbox`` only for the authenticated
user.

Concurrency: everything runs in one gevent process. Each user has one ``UserMailbox`` (shared by
all that user's sessions) with a gevent ``RLock`` around every operation that reads the Maildir
or writes the index, so two sessions never assign the same UID. Parsing messages always runs
in the native threadpool, in batches (the lock is held, the hub keeps serving others).

Durability: a message is fsynced and its directory fsynced before ``append`` returns; index
commits use ``synchronous=FULL`` — except flag changes (STORE, the webmail's read/star). Those
commit with ``synchronous=NORMAL`` (the WAL is written, not fsynced) and are mirrored into the
file names (``:2,FRS``) without a directory fsync, before the caller answers: an acknowledged
STORE survives a crash of the process (kill -9, an OOM kill: the kernel has the WAL and the
renames), and a power cut may lose the last seconds of flag changes — never a message, never
a UID: the next ``FULL`` commit (any delivery, APPEND, EXPUNGE, MOVE) or WAL checkpoint makes
them durable too. This is Dovecot's default (``mail_fsync = optimized`` fsyncs no flag
change); the cost it saves is two fsyncs per STORE (docs/performance.md). Neither the commit
nor the rename blocks on the disk then (a WAL append and a directory entry, both in the page
cache), so a change of at most ``HUB_RENAMES_MAX`` messages — a client's STORE — does both on
the hub rather than through the I/O pool, whose hand-off cost more than the work (see
``set_flags``); the WAL is only checkpointed (fsyncs) in the pool. Delivered and appended mail
keeps ``FULL`` commits and fsynced files and directories.
UIDVALIDITY and UIDs live in the Maildir too (``uidlist``: ``,U=<uid>`` in file names,
``gk-uidlist`` per folder), so a rebuilt index shows clients the same UIDs. MOVE renames the
files (UID in the new name) before one index transaction: after a crash each message is in
exactly one folder and the next sync indexes it there. A damaged index (``sqlite3`` reports
corruption anywhere, or ``quick_check`` after an unclean shutdown, told by the
``index.open`` marker a clean close removes) is quarantined and rebuilt (``_recover``).

Sync: ``sync(folder)`` reconciles the index with the directory: files in ``new/`` move to
``cur/`` with their UID in the name, unknown files join with the UID in their name (or the next
ones), vanished files are expunged, flags changed in a file name by another program are taken
over — except in the first scan of a folder after an unclean shutdown, where the index wins
(renames lost in a power cut are redone, so an acknowledged STORE stays). It skips the directory
scan when neither ``new/`` nor ``cur/`` changed their mtime since the last scan (memory: two
ints per folder).

Lazy indexing: a scan that finds more than ``LAZY_FROM`` new files (a folder seen for the first
time, a Maildir copied in) gives them UIDs (those in ``cur/`` keep their names: the UIDs go to
``gk-uidmap`` in one durable append, see ``uidlist``), flags (file names), sizes and internal
dates (``stat``, in the I/O pool) in one transaction and parses nothing — what Dovecot's first
SELECT does too; a FETCH ENVELOPE reads the header block of
the messages it needs (``envelope.read_envelopes``, and keeps the ENVELOPE's wire form), BODYSTRUCTURE / BODY[] / a SEARCH of text the whole message, and a
background indexer (``_backfill``) the rest once the user's mailbox has been left alone for
``BACKFILL_IDLE`` (its parse, Python in a pool thread, competes with the hub for the GIL).
Such a first build of a folder without index rows answers before its rows are written
(``_defer_build``): its UIDs are durable in the Maildir first (``gk-uidmap``, file names), what
SELECT shows is made from the listing, and every other call waits for the rows' commit — a
crash before it gives the same UIDs again, never one already shown to another message.

Changes are announced after commit as typed events of ``gk.events`` (``MessagesAdded``,
``FlagsChanged``, ``Expunged``, ``FoldersChanged``), each with the folder's HIGHESTMODSEQ after it.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import functools
import io
import itertools
import json
import logging
import os
import re
import shutil
import sqlite3
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import IO, Any, BinaryIO, TypeVar

import gevent
import gevent.lock

from gk import events, pools
from gk.mail.mailbox import bodywire, maildir, subscriptions, uidlist, writer
from gk.mail.mailbox.envelope import read_envelopes, sent_day
from gk.mail.mailbox.index import is_corruption, open_index, quarantine
from gk.mail.mailbox.message import RawMessage
from gk.mail.mailbox.mime import (
    MAX_DEPTH,
    MAX_PARTS,
    Part,
    header_end,
    iter_parts,
    parse_structure,
    parse_with_headers,
)
from gk.mail.mailbox.query import Criteria, compile_criteria
from gk.mail.mailbox.textindex import decode_words, header_message, message_text
from gk.store import Database
from gk.store.files import close_fd, write_durable

SYSTEM_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")
_CANON = {f.lower(): f for f in SYSTEM_FLAGS}
_LETTER = {"\\Draft": "D", "\\Flagged": "F", "$Forwarded": "P", "\\Answered": "R", "\\Seen": "S", "\\Deleted": "T"}
_FROM_LETTER = {v: k for k, v in _LETTER.items()}
SPECIAL_USE = {"Sent": "\\Sent", "Drafts": "\\Drafts", "Trash": "\\Trash", "Junk": "\\Junk", "Archive": "\\Archive"}
MAX_TOMBSTONES = 20_000  # expunged UIDs remembered per folder for QRESYNC (~40 bytes each)
log = logging.getLogger("gk.mailbox")
OPEN_MARKER = "index.open"  # exists while a process has the user's index open (removed by close)
INDEX_GROUP = 500  # messages a transaction when indexing; one group parses while the last commits
PARSE_BATCH_FILES = 64  # messages parsed per threadpool hand-off when indexing ...
PARSE_BATCH_BYTES = 4 * 1024 * 1024  # ... or this many bytes of them
STAMP_SETTLED_NS = 100_000_000  # a directory mtime younger than this (0.1 s) may hide a same-tick change
LAZY_FROM = 32  # a scan that finds more new files than this indexes them lazily (see _index_files)
BACKFILL_BATCH = 16  # messages the background indexer parses and stores at a time
BACKFILL_IDLE = 0.25  # ... once the user's mailbox has had no call for this long (seconds): at 1 s the
# bench's first SEARCH found all 5,000 messages unparsed (the ENVELOPE pass ends during the 100 logins,
# the full parse then waited a second, and the next commands came sooner) and parsed them itself
# wire forms ``keeping_wires`` holds at most before storing them (~200 bytes each)
HELD_WIRES_MAX = 1000
HUB_RENAMES_MAX = 4  # a flag change of at most this many messages commits on the hub (set_flags) ...
WIDE_STORE = 500  # a flag change of more UIDs reads the rows it touches in their UID span at once
HUB_COMMITS_MAX = 32  # ... and every this many-th starts a WAL checkpoint in the I/O pool, not waited for
WAL_AUTOCHECKPOINT = 1000  # pages: SQLite's default, restored after a commit on the hub
PREFILL_DELAY = 0.05  # the background indexer's ENVELOPE pass starts this long after it is kicked
# ... and takes this many rows a time (one parse, ~15-25 ms here): at 64 a batch, the pass was
# paced by the hand-offs, not the parsing (py-spy: 0.3 s of CPU in 2 s), and 700-1,350 of 5,000
# envelopes were still missing when bench imap's FETCH came ~0.9 s after the first open
PREFILL_BATCH = 4 * PARSE_BATCH_FILES
PREFILL_BODIES = 200  # per folder, the newest messages whose BODYSTRUCTURE the background pass makes first
IDLE_BODIES = 64  # ... then those of the older ones, this many a batch while the mailbox is idle ...
IDLE_BODY_SIZE = 256 * 1024  # ... up to this size (a bigger one: the full parse or its FETCH)
STRUCTURE_OFF_HUB = 64 * 1024  # stored MIME tree JSON (~500 parts) past which it is loaded in the threadpool


class MailboxError(Exception):
    """A refused mailbox operation; ``code`` is an IMAP response code (``NONEXISTENT``…)."""

    def __init__(self, message: str, code: str = ""):
        super().__init__(message)
        self.code = code


class FolderNotFound(MailboxError):
    def __init__(self, name: str):
        super().__init__(f"no folder {name!r}", "NONEXISTENT")


@dataclass(frozen=True, slots=True)
class FolderInfo:
    name: str  # Unicode, "/" separates levels, "INBOX" for the inbox
    special_use: str | None  # "\\Sent", "\\Drafts", "\\Trash", "\\Junk", "\\Archive" or None
    subscribed: bool
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    exists: int
    unseen: int
    size: int  # bytes of all messages


@dataclass(frozen=True, slots=True)
class ListedFolder:
    """A name for LIST/LSUB: a folder (``exists``) or a subscribed name without a folder."""

    name: str
    special_use: str | None
    subscribed: bool
    exists: bool = True  # False: only a subscription (its folder was deleted or never made)


@dataclass(frozen=True, slots=True)
class MessageInfo:
    uid: int
    flags: tuple[str, ...]
    size: int
    internaldate: int  # unix seconds
    modseq: int
    envelope_json: str | None  # RFC 3501 ENVELOPE fields as stored (JSON); None: not asked for
    tzoffset: int = 0  # the internal date's zone, minutes east of UTC (as APPEND gave it)
    envelope_wire: bytes | None = None  # the ENVELOPE in IMAP's wire form (``infos`` with envelopes)
    file: str = ""  # its file name in cur/ when read (``infos`` without envelopes): ``open_message``'s hint
    bodystructure_wire: bytes | None = None  # BODYSTRUCTURE in IMAP's wire form (``infos`` with bodystructures)

    @property
    def envelope(self) -> list[Any]:
        """The ENVELOPE fields, raw (see mime.envelope); all NIL when the caller did not ask
        ``infos`` for envelopes and the message was not parsed yet. Decoded on each access."""
        if self.envelope_json is None:
            return [None] * 10
        value: list[Any] = json.loads(self.envelope_json)
        return value

    @property
    def subject(self) -> str:
        return decode_words(self.envelope[1])

    @property
    def sender(self) -> str:
        """Decoded display form of the first From address."""
        frm = self.envelope[2]
        if not frm:
            return ""
        name, _, local, host = frm[0]
        addr = f"{local}@{host}" if host else (local or "")
        return f"{decode_words(name)} <{addr}>" if name else addr

    @property
    def seen(self) -> bool:
        return "\\Seen" in self.flags


def canon_flag(flag: str) -> str:
    return _CANON.get(flag.lower(), flag)


def flags_text(flags: Iterable[str]) -> str:
    seen: dict[str, str] = {}
    for f in flags:
        f = canon_flag(f)
        seen.setdefault(f.lower(), f)
    return " " + " ".join(seen.values()) + " " if seen else " "


def flags_tuple(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def info_letters(flags: Iterable[str]) -> str:
    return "".join(sorted({_LETTER[f] for f in flags if f in _LETTER}))


def split_name(name: str) -> tuple[str, str]:
    """Maildir file name → (base, info letters)."""
    base, sep, info = name.partition(":")
    return base, info[2:] if sep and info.startswith("2,") else ""


def check_folder_name(name: str) -> str:
    """Normalize and validate a folder name; raise MailboxError if it could escape or clash."""
    if name.upper() == "INBOX":
        return "INBOX"
    if name.upper().startswith("INBOX/"):
        name = "INBOX" + name[5:]
    bad = (
        not name
        or len(name) > 250
        or name.startswith("/")
        or name.endswith("/")
        or "//" in name
        or any(ch in name for ch in ".\\*%\x7f")
        or any(ord(ch) < 32 for ch in name)
        or any(part in ("", ".", "..") for part in name.split("/"))
    )
    if bad:
        raise MailboxError(f"{name!r} is not a usable folder name (no '.', '\\', '*', '%' or empty levels)", "CANNOT")
    return name


_sentdate = sent_day


# (ENVELOPE JSON, structure JSON, FTS columns, Date, BODYSTRUCTURE wire form); all None for a
# lazily indexed message, the ENVELOPE None for a file parsed without it
Parsed = tuple[str | None, str | None, dict[str, str] | None, str | None, bytes | None]


WHOLE_READ = 1 << 20  # a message file up to this size is parsed from memory (``_for_parse``)
# the first read of a message file for a parse: most mail is smaller. Not WHOLE_READ at once:
# os.read allocates what it is asked for and then shrinks it, and a 1 MiB buffer (above
# malloc's mmap threshold: an mmap, page faults, a munmap, a copy) cost 30-75 us a message —
# 100 cold BODYSTRUCTUREs 2.7-7.7 ms of reads against 0.65 with this (issue 11, /tmp/s29/readv.py
# in session 29's note)
FIRST_PARSE_READ = 64 * 1024


def _for_parse(path: str) -> BinaryIO:
    """A message file for a parse in a pool thread: read whole, in one system call for most
    mail, when under ``WHOLE_READ``, else opened. A pool thread gives the GIL away at each system
    call and, behind a busy hub, gets it back only at the hub's next switch interval (5 ms):
    read line by line (~14 calls a message: open, fstat, ioctl, seeks, reads), 100 parses took
    0.45-2 s behind a spinning thread here; read whole (open, read, close), 0.03-0.4 s. No
    slower when idle. A file over ``FIRST_PARSE_READ`` takes two calls more (its size, the rest)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.read(fd, FIRST_PARSE_READ)
        if len(data) < FIRST_PARSE_READ:
            return io.BytesIO(data)
        size = os.fstat(fd).st_size
        if size >= WHOLE_READ:
            return open(path, "rb")  # a big one: its attachments are skipped in 256 KB reads
        rest = os.read(fd, size - len(data) + 1)  # (+1: a file grown meanwhile shows)
    finally:
        close_fd(fd)
    if len(data) + len(rest) >= WHOLE_READ:
        return open(path, "rb")
    return io.BytesIO(data + rest)


def _parse_file(path: str, envelope: bool = True) -> Parsed | None:
    """What the index keeps of a message file: (ENVELOPE JSON, structure JSON, FTS columns, Date,
    BODYSTRUCTURE wire form); None if the file is gone. ``envelope=False``: the index holds the
    ENVELOPE already (a lazily indexed message's was read from its header block), not made again:
    its addresses were a third of a parse.

    Runs in the native threadpool, JSON included: its cost grows with the message's parts and
    lines (bounded by ``mime.MAX_PARTS`` / ``MAX_TREE_HEADERS``, not by the file size)."""
    try:
        with _for_parse(path) as f:
            top, headers = parse_with_headers(f, envelope=envelope)
            text = message_text(f, top, headers)
            date = headers.get("Date")
    except FileNotFoundError:
        return None
    except Exception as exc:  # a message no parser here foresaw: it must not stop its folder's index
        return _opaque(path, envelope, exc)
    env = json.dumps(top.envelope) if envelope else None
    top.envelope = None  # kept in its own column (``structure`` sets it from there)
    return env, json.dumps(top.to_json()), text, date, bodywire.wire(top)


def _opaque_tree(path: str, exc: Exception) -> Part:
    log.warning("%s: not parsed (%s: %s); indexed as one opaque part", path, type(exc).__name__, exc)
    with open(path, "rb") as f:
        return Part(0, header_end(f), os.fstat(f.fileno()).st_size, "application", "octet-stream")


def _opaque(path: str, envelope: bool, exc: Exception) -> Parsed | None:
    """What the index keeps of a message the parse failed on (a bug, or an input the email
    package refuses; a malformed encoded word in From once made a whole INBOX fail to open):
    its body as one ``application/octet-stream`` part after its header block, every byte still
    served (``BODY[]``, ``BODY[TEXT]``), its ENVELOPE from the header block if that reads, no
    text index. None if the file is gone."""
    try:
        top = _opaque_tree(path, exc)
        env: str | None = None
        if envelope:
            try:
                found = read_envelopes([(path, None)])[0]
            except Exception:  # the header block too: an ENVELOPE of NILs
                found = None
            env = found[0] if found is not None else json.dumps([None] * 10)
    except FileNotFoundError:
        return None
    return env, json.dumps(top.to_json()), None, None, bodywire.wire(top)


def _parse_files(paths: list[str], known: Collection[str] = ()) -> list[Parsed | None]:
    """``_parse_file`` of each path; ``known``: the paths whose ENVELOPE the index holds."""
    held = set(known)
    return [_parse_file(p, p not in held) for p in paths]


# (ENVELOPE JSON, Date as sentdate, ENVELOPE wire form) of each (path, stored ENVELOPE JSON or
# None); None if the file is gone. A stored ENVELOPE is only rendered; otherwise only the top
# header block of the file is read: what a FETCH ENVELOPE of a lazily indexed message needs.
_parse_envelopes = read_envelopes


def _insert_fts(c: sqlite3.Connection, rowid: int | None, text: dict[str, str]) -> None:
    c.execute(
        "INSERT INTO fts(rowid, hfrom, hto, hcc, hbcc, subject, headers, body) VALUES (?,?,?,?,?,?,?,?)",
        (rowid, *(text[k] for k in ("hfrom", "hto", "hcc", "hbcc", "subject", "headers", "body"))),
    )


def _quick(data: bytes, path: str) -> bytes | None:
    """``quick_wire(data)``; a bug in it (an exception but its own give-up, which it turns into
    None) logs and gives the parse its turn, never an opaque part for a message the parse reads."""
    from gk.mail.mailbox.quickwire import quick_wire  # on first use: an idle box does not carry it

    try:
        return quick_wire(data)
    except Exception:
        log.exception("%s: quickwire failed; the parse makes its BODYSTRUCTURE", path)
        return None


def _body_wires(items: list[tuple[str, str | None]]) -> list[bytes | None]:
    """The BODYSTRUCTURE wire form of each (path, stored MIME tree JSON or None): from the
    stored tree (one stored before the part cap re-parsed, as ``structure`` does), else from a
    parse of the file's structure; None if the file is gone. In the CPU pool."""
    out: list[bytes | None] = []
    for path, raw in items:
        try:
            if raw is not None:
                top = _load_structure(raw, path)[0]
            else:
                with _for_parse(path) as f:
                    # the usual shapes straight from the bytes (quickwire: ~5x faster, same bytes)
                    wire = _quick(f.getvalue(), path) if isinstance(f, io.BytesIO) else None
                    if wire is not None:
                        out.append(wire)
                        continue
                    top = parse_structure(f, envelope=False)
        except FileNotFoundError:
            out.append(None)
            continue
        except Exception as exc:  # as _parse_file: one opaque part
            try:
                top = _opaque_tree(path, exc)
            except FileNotFoundError:
                out.append(None)
                continue
        out.append(bodywire.wire(top))
    return out


def _parse_off_hub(files: list[tuple[str, int]], known: Collection[str] = ()) -> list[Parsed | None]:
    """Parse (path, size) files in the native threadpool, never on the hub, whatever their size
    (a 700 KB message of 100,000 empty parts held every connection of the process for seconds).
    Batched (``PARSE_BATCH_FILES`` / ``PARSE_BATCH_BYTES`` a hand-off): on a busy machine each
    hand-off waits for the OS to schedule the thread (one hand-off per message made a first open
    of 3,000 small messages 10-30 % slower here, at load average 11; batched: no difference)."""
    out: list[Parsed | None] = []
    batch: list[str] = []
    size = 0
    for i, (path, n) in enumerate(files):
        batch.append(path)
        size += n
        if len(batch) >= PARSE_BATCH_FILES or size >= PARSE_BATCH_BYTES or i == len(files) - 1:
            out += pools.run_cpu(_parse_files, batch, [p for p in batch if p in known])
            batch, size = [], 0
    return out


def _load_structure(raw: str, path: str) -> tuple[Part, str | None]:
    """A large stored MIME tree (in the threadpool); one stored before the part cap
    (``mime.MAX_PARTS``: 100,000 parts took 13 MB of JSON) is re-parsed from the file, capped.
    Returns (tree, the new JSON to store, or None)."""
    top = Part.from_json(json.loads(raw))
    if sum(1 for _ in iter_parts(top)) <= MAX_PARTS + MAX_DEPTH + 1:
        return top, None
    try:
        with open(path, "rb") as f:
            top = parse_structure(f)
    except FileNotFoundError:
        return top, None
    return top, json.dumps(top.to_json())


ZoneSource = Callable[[], dt.tzinfo]
T = TypeVar("T")
StrPath = str | Path


class UserMailbox:
    """One user's folders and messages. Get it from ``MailboxStore.user(address)``.

    ``zone`` gives the server's time zone: the zone of the internal date of messages that come
    without one (SMTP delivery, webmail, files found in the Maildir); None: UTC."""

    def __init__(self, mail_root: Path, address: str, zone: ZoneSource | None = None):
        self.address = address
        self.zone = zone
        self.root = maildir.user_root(mail_root, address)
        self.root.mkdir(parents=True, exist_ok=True)
        self.index_path = mail_root / address / "index.sqlite3"
        self._marker = mail_root / address / OPEN_MARKER
        # The marker is still there: the last process with this index open died (kill -9, power
        # cut). Its index may be torn (checked before use), and flag renames it made in cur/
        # may be lost: the first scan of each folder trusts the index over file names.
        self.unclean = self._marker.exists()
        self.db: Database = open_index(self.index_path, check=self.unclean)
        write_durable(self._marker, f"{os.getpid()}\n".encode(), 0o600)
        self.db.conn.create_function("gk_header", 4, self._sql_header, deterministic=True)
        self.lock = gevent.lock.RLock()
        self._scanned: dict[str, tuple[int, int]] = {}
        # folders whose kept stamp has a young ``cur/`` mtime (``_stamp_holds``): trusted until it
        # settles, then verified by one more scan
        self._cur_unsettled: set[str] = set()
        self._reconciled: set[str] = set()  # folders scanned since the index was opened
        self._adopting: set[str] = set()  # folders (re)entered into the index from their gk-uidlist
        self._floors: dict[str, int] = {}  # each folder's gk-uidlist floor as last read or written
        # per folder id: what a SELECT reads of the whole folder (UIDs, counts, keywords, first
        # unseen), valid while (UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ) stay the same — every new
        # message, flag change and expunge bumps HIGHESTMODSEQ (see ``_folder_view``)
        self._views: dict[int, tuple[tuple[int, int, int], dict[str, Any]]] = {}
        self.users = 0  # sessions holding this object (MailboxStore keeps it open while > 0)
        self._closed = False
        self._touched = 0.0  # time.monotonic() of the last public call (the background indexer waits)
        self._backfiller: gevent.Greenlet | None = None  # the background indexer (_backfill)
        self._wiring: set[gevent.Greenlet] = set()  # stores of wire forms a FETCH made (_fill_bodywires)
        # wire forms made by a greenlet inside ``keeping_wires``, stored when its block ends
        self._held_wires: dict[gevent.Greenlet, list[tuple[bytes, int, str]]] = {}
        self._unwritten: list[tuple[Path, int]] | None = None  # see _init_folders
        self._dirs: dict[str, Path] = {}  # folder name -> its Maildir (``_dir``)
        self._rows: dict[str, tuple[tuple[int, int], Any]] = {}  # folder name -> (stamp, row): _folder_row
        self._hub_commits = 0  # flag commits made on the hub since the last WAL checkpoint (set_flags)
        self._checkpointer: gevent.Greenlet | None = None  # the WAL checkpoint running (_checkpoint_soon)
        self._build: _Build | None = None  # a folder's first index build being committed (_defer_build)
        with self.lock:
            try:
                self._init_folders()
            except sqlite3.DatabaseError as exc:
                if not is_corruption(exc):
                    raise
                self._recover(exc)
        if self.db.one("SELECT 1 FROM messages WHERE structure IS NULL LIMIT 1"):
            self._kick_backfill()  # a lazy index left unfinished (restart, kill -9): resume

    def _init_folders(self) -> None:
        maildir.ensure_maildir(self.root)
        # The folders a new user gets (and any found on disk): one index transaction, and their
        # gk-uidlist files (with gk-uidvalidity once) written side by side in the I/O pool — one
        # after the other, their fsyncs took ~20 ms of a first login.
        self._unwritten = []
        try:
            with self.db.transaction():
                self._ensure_folder("INBOX", None)
                for name, use in SPECIAL_USE.items():
                    self._ensure_folder(name, use)
                self._discover_folders()
                self._write_uidlists()
        finally:
            self._unwritten = None
        # Indexes from before UIDs lived in the Maildir: write each folder's gk-uidlist once and
        # put the UIDs into the file names.
        for r in self.db.query("SELECT id, name, uidvalidity, uidnext FROM folders"):
            d = self._dir(r["name"])
            if not (d / uidlist.UIDLIST).exists() and d.is_dir():
                self._carry_over(r["id"], d)
                uidlist.write(d, r["uidvalidity"], r["uidnext"])
        top = self.db.one("SELECT max(uidvalidity) FROM folders")
        if top and top[0] and uidlist.read_highwater(self.root) < top[0]:
            uidlist.write_highwater(self.root, top[0])
        self._subs = self._load_subscriptions()

    def _carry_over(self, folder_id: int, d: Path) -> None:
        """A folder indexed before UIDs lived in the Maildir: its files get their ``,U=``."""
        cur = f"{d}/cur/"
        plan = []
        for r in self.db.query("SELECT id, uid, base, name FROM messages WHERE folder_id = ?", (folder_id,)):
            if ",U=" not in r["base"]:
                base, letters = split_name(r["name"])
                plan.append((r["id"], cur + r["name"], cur + f"{uidlist.with_uid(base, r['uid'])}:2,{letters}"))
        if not plan:
            return
        done = pools.run_io(_rename_batch, [(src, dst) for _, src, dst in plan], [d / "cur"])
        with self.db.transaction() as c:
            for rowid, _, dst in plan:
                if dst in done:
                    fname = os.path.basename(dst)
                    c.execute(
                        "UPDATE messages SET base = ?, name = ? WHERE id = ?", (split_name(fname)[0], fname, rowid)
                    )

    def _recover(self, exc: BaseException) -> None:
        """The index is damaged: move it aside, open a fresh one and refill it from the Maildir
        (same UIDVALIDITYs and UIDs, flags from file names). Sessions keep their state: the UIDs
        they know stay valid."""
        self._join_build()
        with self.lock:
            with contextlib.suppress(Exception):
                self.db.close()
            if self.index_path.exists():
                quarantine(self.index_path, str(exc))
            self.db = open_index(self.index_path)
            self.db.conn.create_function("gk_header", 4, self._sql_header, deterministic=True)
            self._rows.clear()  # a new connection counts its changes from 0
            self._scanned.clear()
            self._reconciled.clear()
            self._adopting.clear()
            self._floors.clear()
            self._views.clear()
            self.unclean = False  # the file names are all there is now
            self._init_folders()

    # -- folders ----------------------------------------------------------------------------
    def _dir(self, name: str) -> Path:
        d = self._dirs.get(name)
        if d is None:  # pathlib joins cost ~25 us each, several per STORE
            if len(self._dirs) > 1000:
                self._dirs.clear()
            d = self._dirs[name] = maildir.folder_path(self.root.parent.parent, self.address, name)
        return d

    def _new_uidvalidity(self) -> int:
        """Greater than any UIDVALIDITY the user's folders ever had (even deleted ones, even
        within the same second: RFC 3501 2.3.1.1); recorded in the Maildir before it is used."""
        row = self.db.one("SELECT max(uidvalidity) FROM folders")
        last = max(row[0] if row and row[0] else 0, uidlist.read_highwater(self.root))
        value = max(int(time.time()) & 0x7FFFFFFF, last + 1)
        if self._unwritten is None:
            uidlist.write_highwater(self.root, value)
        return value

    def _write_uidlists(self) -> None:
        """Write the gk-uidlist files ``_ensure_folder`` left in ``_unwritten`` and, before any of
        their UIDVALIDITYs is used, gk-uidvalidity; side by side in the I/O pool."""
        todo = self._unwritten or []
        if not todo:
            return
        top = max(v for _, v in todo)
        jobs = [gevent.spawn(pools.run_io, uidlist.write, d, v, 1) for d, v in todo]
        jobs.append(gevent.spawn(pools.run_io, uidlist.write_highwater, self.root, top))
        gevent.joinall(jobs, raise_error=True)
        todo.clear()

    def _ensure_folder(self, name: str, special: str | None, fresh: bool = False) -> None:
        """Give folder ``name`` an index row (and a Maildir). A folder whose Maildir has a
        ``gk-uidlist`` keeps its UIDVALIDITY and, at its first scan, its messages' UIDs, unless
        ``fresh`` (CREATE: a new mailbox, whatever was there before)."""
        d = self._dir(name)
        maildir.ensure_maildir(d)
        if self.db.one("SELECT 1 FROM folders WHERE name = ?", (name,)):
            return
        saved = None if fresh else uidlist.read(d)
        if saved is None:
            uidvalidity = self._new_uidvalidity()
            if self._unwritten is None:
                uidlist.write(d, uidvalidity, 1)
            else:
                self._unwritten.append((d, uidvalidity))
            self._floors[name] = 1
            self.db.execute(
                "INSERT INTO folders(name, uidvalidity, special) VALUES (?,?,?)", (name, uidvalidity, special)
            )
            return
        # Rebuilt from the Maildir: MODSEQs restart from a number above any the lost index can
        # have given (microseconds now), so a CONDSTORE client re-reads flags, not messages;
        # VANISHED below it is answered conservatively (QRESYNC, RFC 7162 3.6).
        modseq = time.time_ns() // 1000
        self._floors[name] = saved.floor
        self._adopting.add(name)
        self.db.execute(
            "INSERT INTO folders(name, uidvalidity, uidnext, highestmodseq, expungedfloor, special)"
            " VALUES (?,?,?,?,?,?)",
            (name, saved.uidvalidity, saved.floor, modseq, modseq, special),
        )

    def _discover_folders(self) -> None:
        """Folders created behind our back (``.Name`` dirs) join the index; vanished ones leave it."""
        on_disk = {"INBOX"}
        for entry in os.scandir(self.root):
            if entry.name.startswith(".") and entry.is_dir() and os.path.isdir(os.path.join(entry.path, "cur")):
                try:
                    on_disk.add(check_folder_name(entry.name[1:].replace(".", "/")))
                except MailboxError:
                    continue
        known = {r["name"] for r in self.db.query("SELECT name FROM folders")}
        for name in sorted(on_disk - known):
            self._ensure_folder(name, None)
        for name in known - on_disk:
            self.db.execute("DELETE FROM folders WHERE name = ?", (name,))

    def _folder_row(self, name: str) -> Any:
        """The folder's index row. Kept while no row changed since: neither through this
        connection (``total_changes``: every INSERT, UPDATE and DELETE of any table, committed
        or rolled back, moves it) nor through another (``PRAGMA data_version``: a commit by any
        other connection moves it). A STORE read the row four times (~15 us each)."""
        name = check_folder_name(name)
        b = self._build
        if b is not None and b.name == name:  # answered from memory while its rows are written
            return b.row
        version = self.db.one("PRAGMA data_version")
        assert version is not None
        stamp = (self.db.conn.total_changes, int(version[0]))
        kept = self._rows.get(name)
        if kept is not None and kept[0] == stamp:
            return kept[1]
        row = self.db.one("SELECT * FROM folders WHERE name = ?", (name,))
        if row is None:
            raise FolderNotFound(name)
        if len(self._rows) > 1000:
            self._rows.clear()
        self._rows[name] = (stamp, row)
        return row

    def folder_names(self) -> list[str]:
        with self.lock:
            self._discover_folders()
            return [r["name"] for r in self.db.query("SELECT name FROM folders ORDER BY name = 'INBOX' DESC, name")]

    def list_folders(self, include_subscribed: bool = True) -> list[ListedFolder]:
        """Every folder (after picking up folders made behind our back) and, with
        ``include_subscribed``, every subscribed name without a folder (LSUB and
        LIST (SUBSCRIBED) show those too); INBOX first, then by name. No counts: cheap."""
        with self.lock:
            self._discover_folders()
            subs = set(self._subs)
            rows = self.db.query("SELECT name, special FROM folders")
        out = [ListedFolder(r[0], r[1], r[0] in subs) for r in rows]
        if include_subscribed:
            names = {r[0] for r in rows}
            out += [ListedFolder(n, None, True, exists=False) for n in subs if n not in names]
        out.sort(key=lambda f: (f.name != "INBOX", f.name))
        return out

    def folders(self) -> list[FolderInfo]:
        """Every folder with counts (INBOX first), after picking up folders made behind our back."""
        return [self.folder(n) for n in self.folder_names()]

    def _folder_view(self, f: Any, what: str, compute: Callable[[], T]) -> T:
        """``compute()``, kept for folder row ``f`` until its UIDVALIDITY, UIDNEXT or HIGHESTMODSEQ
        change (a SELECT of a 5,000-message folder read every UID, flag and size each time:
        ~5-10 ms of the hub; Dovecot keeps the same in its index). ``f`` must be read before
        ``compute`` runs, so what is kept is never older than its key."""
        key = (int(f["uidvalidity"]), int(f["uidnext"]), int(f["highestmodseq"]))
        entry = self._views.get(f["id"])
        if entry is None or entry[0] != key:
            entry = self._views[f["id"]] = (key, {})
        values = entry[1]
        if what not in values:
            values[what] = compute()
        value: T = values[what]
        return value

    def folder(self, name: str) -> FolderInfo:
        """One folder's status (syncs it with its Maildir first)."""
        with self.lock:
            self.sync(name)
            f = self._folder_row(name)
            row = self._folder_view(
                f,
                "counts",
                lambda: self.db.one(
                    "SELECT count(*), coalesce(sum(size),0), sum(instr(flags, ' \\Seen ') = 0) FROM messages"
                    " WHERE folder_id = ?",
                    (f["id"],),
                ),
            )
            assert row is not None
            return FolderInfo(
                f["name"],
                f["special"],
                f["name"] in self._subs,
                f["uidvalidity"],
                f["uidnext"],
                f["highestmodseq"],
                row[0],
                row[2] or 0,
                row[1],
            )

    def deleted_size(self, name: str) -> int:
        """Bytes of the folder's messages flagged \\Deleted: what EXPUNGE would free (IMAP STATUS
        DELETED-STORAGE, RFC 9208)."""
        self._join_build()
        with self.lock:
            f = self._folder_row(name)
            row = self.db.one(
                "SELECT coalesce(sum(size),0) FROM messages WHERE folder_id = ? AND instr(flags, ' \\Deleted ') > 0",
                (f["id"],),
            )
            return int(row[0]) if row is not None else 0

    def size_of(self, name: str, uids: Iterable[int]) -> int:
        """Bytes of the messages ``uids`` of folder ``name`` (what a COPY adds to the quota's usage)."""
        want = set(uids)
        self._join_build()
        with self.lock:
            f = self._folder_row(name)
            rows = self.db.query("SELECT uid, size FROM messages WHERE folder_id = ?", (f["id"],))
            return sum(int(r["size"]) for r in rows if r["uid"] in want)

    def create_folder(self, name: str) -> None:
        with self.lock:
            name = check_folder_name(name)
            if self.db.one("SELECT 1 FROM folders WHERE name = ?", (name,)):
                raise MailboxError(f"folder {name} already exists", "ALREADYEXISTS")
            parts = name.split("/")
            for i in range(1, len(parts)):
                self._ensure_folder("/".join(parts[:i]), None)
            self._ensure_folder(name, None, fresh=True)
        events.publish(events.FoldersChanged(self.address, name))

    def delete_folder(self, name: str) -> None:
        """Delete a folder and its messages (not INBOX, not a special-use folder)."""
        with self.lock:
            f = self._folder_row(name)
            if f["name"] == "INBOX" or f["special"]:
                raise MailboxError(f"{f['name']} cannot be deleted", "CANNOT")
            if self.db.one("SELECT 1 FROM folders WHERE name LIKE ? ESCAPE '\\'", (_like_prefix(f["name"]),)):
                raise MailboxError(f"{f['name']} has subfolders; delete them first", "INUSE")
            d = self._dir(f["name"])
            (d / uidlist.UIDLIST).unlink(missing_ok=True)  # a leftover must never be adopted
            shutil.rmtree(d, ignore_errors=True)
            maildir.fsync_dir(self.root)
            self.db.execute("DELETE FROM folders WHERE id = ?", (f["id"],))
            self._forget(f["name"])
        events.publish(events.FoldersChanged(self.address, f["name"]))

    def rename_folder(self, old: str, new: str) -> None:
        """Rename a folder and its subfolders; renaming INBOX moves its messages into ``new``."""
        with self.lock:
            f = self._folder_row(old)
            new = check_folder_name(new)
            if self.db.one("SELECT 1 FROM folders WHERE name = ?", (new,)):
                raise MailboxError(f"folder {new} already exists", "ALREADYEXISTS")
            if f["name"] == "INBOX":
                self.create_folder(new)
                uids = self.uids("INBOX")
                if uids:
                    self.move("INBOX", list(uids), new)
                return
            if f["special"]:
                raise MailboxError(f"{f['name']} is a special-use folder and keeps its name", "CANNOT")
            kids = self.db.query(
                "SELECT id, name FROM folders WHERE name = ? OR name LIKE ? ESCAPE '\\' ORDER BY length(name)",
                (f["name"], _like_prefix(f["name"])),
            )
            moved_subs = False
            for k in kids:
                target = new + k["name"][len(f["name"]) :]
                os.rename(self._dir(k["name"]), self._dir(target))
                self.db.execute("UPDATE folders SET name = ? WHERE id = ?", (target, k["id"]))
                if k["name"] in self._adopting:
                    self._adopting.add(target)
                self._forget(k["name"])
                if k["name"] in self._subs:  # the subscription follows its folder (as Dovecot)
                    self._subs.discard(k["name"])
                    self._subs.add(target)
                    moved_subs = True
            if moved_subs:
                subscriptions.save_or_warn(self.root, self._subs)
            parent = new.rpartition("/")[0]
            if parent and not self.db.one("SELECT 1 FROM folders WHERE name = ?", (parent,)):
                self._ensure_folder(parent, None)
            maildir.fsync_dir(self.root)
        events.publish(events.FoldersChanged(self.address, f["name"]))

    def _forget(self, name: str) -> None:
        """Drop what is remembered in memory about folder ``name`` (deleted or renamed)."""
        self._scanned.pop(name, None)
        self._reconciled.discard(name)
        self._adopting.discard(name)
        self._floors.pop(name, None)

    # -- subscriptions (a list of names of its own: see subscriptions.py) -------------------
    def _load_subscriptions(self) -> set[str]:
        """The subscription list; the first time, made from the index's old per-folder flags
        (so the default folders, and whatever the user had, stay subscribed)."""
        names = subscriptions.load(self.root)
        if names is None:
            names = {r["name"] for r in self.db.query("SELECT name FROM folders WHERE subscribed")}
            pools.run_io(subscriptions.save_or_warn, self.root, names)  # two fsyncs: not on the hub
        return names

    def subscriptions(self) -> set[str]:
        """Every subscribed name, whether or not a folder of that name exists now."""
        with self.lock:
            return set(self._subs)

    def subscribe(self, name: str, on: bool = True) -> None:
        """SUBSCRIBE needs an existing folder (as Dovecot); UNSUBSCRIBE needs the name to be
        subscribed, folder or not (a subscription outlives its folder, RFC 3501 6.3.6)."""
        with self.lock:
            if on:
                name = self._folder_row(name)["name"]
                if name in self._subs:
                    return
                self._subs.add(name)
            else:
                name = check_folder_name(name)
                if name not in self._subs:
                    raise MailboxError(f"{name} is not subscribed", "NONEXISTENT")
                self._subs.discard(name)
            try:
                subscriptions.save(self.root, self._subs)
            except OSError as exc:
                if on:  # undone: the list in memory stays the one on disk
                    self._subs.discard(name)
                else:
                    self._subs.add(name)
                raise MailboxError(*subscriptions.write_error(exc)) from exc

    # -- flags in file names -----------------------------------------------------------------
    def _keywords_map(self, d: Path) -> list[str]:
        """Keyword ↔ letter map of a Maildir (Dovecot's ``dovecot-keywords``: ``N name`` lines, a–z)."""
        out: list[str] = []
        try:
            for line in (d / "dovecot-keywords").read_text("utf-8", "replace").splitlines():
                num, _, name = line.partition(" ")
                if num.isdigit() and int(num) < 26 and name:
                    while len(out) <= int(num):
                        out.append("")
                    out[int(num)] = name
        except FileNotFoundError:
            pass
        return out

    def _letters(self, d: Path, flags: Iterable[str]) -> str:
        """The ``:2,`` info for ``flags``: system flags as DFPRST, keywords as a–z (first 26 of a folder)."""
        flags = list(flags)
        letters = set(info_letters(flags))
        if all(f in _LETTER or f.startswith("\\") for f in flags):
            return "".join(sorted(letters))  # no keyword: the folder's keyword map is not read
        kwmap = self._keywords_map(d)
        lower = [k.lower() for k in kwmap]
        added = False
        for f in flags:
            if f in _LETTER or f.startswith("\\"):
                continue
            if f.lower() not in lower:
                if len(kwmap) >= 26:
                    continue  # kept in the index only
                kwmap.append(f)
                lower.append(f.lower())
                added = True
            letters.add(chr(ord("a") + lower.index(f.lower())))
        if added:
            tmp = d / "dovecot-keywords.tmp"
            tmp.write_text("".join(f"{i} {k}\n" for i, k in enumerate(kwmap) if k), "utf-8")
            os.replace(tmp, d / "dovecot-keywords")
        return "".join(sorted(letters))

    def _flags_of(self, d: Path, letters: str) -> list[str]:
        kwmap = self._keywords_map(d) if any("a" <= ch <= "z" for ch in letters) else []
        out = [_FROM_LETTER[ch] for ch in letters if ch in _FROM_LETTER]
        for ch in letters:
            i = ord(ch) - ord("a")
            if 0 <= i < len(kwmap) and kwmap[i]:
                out.append(kwmap[i])
        return out

    # -- sync -------------------------------------------------------------------------------
    def sync(self, name: str, force: bool = False) -> None:
        """Reconcile folder ``name`` with its Maildir (cheap when nothing changed on disk)."""
        with self.lock:
            f = self._folder_row(name)
            d = self._dir(f["name"])
            try:  # plain strings: two pathlib joins per command cost more than the stats
                stamp = (os.stat(f"{d}/new").st_mtime_ns, os.stat(f"{d}/cur").st_mtime_ns)
            except FileNotFoundError:
                maildir.ensure_maildir(d)
                stamp = (0, 0)
            if not force and self._stamp_holds(f["name"], stamp):
                return
            if self._build is not None:  # something changed on disk: scan the committed index
                self._join_build()
                f = self._folder_row(name)
            self._scan(f, d)
            # The stamp from BEFORE the scan: a file delivered into new/ while the scan ran (it
            # yields to the hub) changes the mtime, so the next sync looks again (issue 11: with
            # the stamp taken after, such a message stayed unseen until the next change). A stamp
            # that young may share its clock tick with a delivery after it: not trusted.
            # Deliveries land in new/: a young new/ is never trusted. A young cur/ alone (a STORE's
            # renames, the scan's own moves from new/) is kept provisionally (``_stamp_holds``):
            # forgotten, every command of a STORE burst rescanned the whole folder (each STORE's
            # rename keeps cur/ young: ~7 us per message, 35 ms a STORE in 5,000 messages).
            now = time.time_ns()
            if now - stamp[0] <= STAMP_SETTLED_NS:
                self._scanned.pop(f["name"], None)
                self._cur_unsettled.discard(f["name"])
            else:
                self._scanned[f["name"]] = stamp
                if now - stamp[1] <= STAMP_SETTLED_NS:
                    self._cur_unsettled.add(f["name"])
                else:
                    self._cur_unsettled.discard(f["name"])

    def _stamp_holds(self, name: str, stamp: tuple[int, int]) -> bool:
        """Whether the folder's directories are as last scanned (``stamp``: the mtimes of new/ and
        cur/ now). A kept stamp whose cur/ was young holds until it settles; then one scan checks
        for a change made in cur/ in the same clock tick as the last one (a delivery goes into
        new/, whose young stamp is never kept: see ``sync``)."""
        if self._scanned.get(name) != stamp:
            return False
        return name not in self._cur_unsettled or time.time_ns() - stamp[1] <= STAMP_SETTLED_NS

    def _remember_scan(self, name: str, before: tuple[int, int] | None) -> None:
        """After our own change in ``cur/``: keep the scan stamp if nobody else changed the dir."""
        d = self._dir(name)
        if before is not None and self._scanned.get(name) == before:  # new/ is not ours: a delivery
            self._scanned[name] = (before[0], os.stat(f"{d}/cur").st_mtime_ns)  # meanwhile is seen next

    def _scan(self, f: Any, d: Path) -> None:
        """Reconcile one folder's index rows with its ``cur/`` and ``new/`` (see the module doc)."""
        name = f["name"]
        index_wins = self.unclean and name not in self._reconciled
        adopting = name in self._adopting
        listed, incoming = pools.run_io(_list_folder, f"{d}/cur", f"{d}/new")  # may wait on the disk
        rows = self.db.query("SELECT id, uid, base, name, flags FROM messages WHERE folder_id = ?", (f["id"],))
        if not rows and not incoming and self._first_build(f, d, listed, adopting):
            self._adopting.discard(name)
            self._reconciled.add(name)
            return
        files: dict[str, str] = {}  # base without ,U= -> file name in cur/
        for ename in listed:
            b = ename.partition(":")[0]
            files[uidlist.without_uid(b) if ",U=" in b else b] = ename
        # A folder first seen full (a Maildir copied in): its files are stat'ed and the server's
        # zone looked up (the settings database) in the I/O pool while the UIDs are given out
        # here (~13 ms of 5,000 stats and ~5 ms of zone off the first SELECT's path)
        prestat: gevent.Greenlet | None = None
        if not rows and len(files) > LAZY_FROM and not all(",S=" in n for n in files.values()):
            prestat = gevent.spawn(pools.run_io, self._prestat, f"{d}/cur/", list(files.values()))
        known = {uidlist.without_uid(r["base"]) if ",U=" in r["base"] else r["base"]: r for r in rows}
        used = {r["uid"] for r in rows}
        uidnext = int(f["uidnext"])
        cur = f"{d}/cur/"  # plain strings: 5,000 pathlib joins cost ~0.3 s of a first open
        renames: list[tuple[StrPath, StrPath]] = []
        fixes: list[tuple[str, Any]] = []  # (file name after the renames, its row)
        for key, fname in files.items():
            r = known.get(key)
            if r is None:
                continue
            base, letters = split_name(fname)
            if index_wins:  # a rename lost in a power cut: the index holds what the client was told
                letters = split_name(r["name"])[1]
            if ",U=" not in base and ",U=" not in r["base"]:  # its UID is in gk-uidmap: name kept
                target = f"{base}:2,{letters}"
            else:
                target = f"{uidlist.with_uid(base, r['uid'])}:2,{letters}"
            if target != fname:
                renames.append((cur + fname, cur + target))
            if target != r["name"]:
                fixes.append((target, r))
        # Files the index does not know: the UID in the name (or in gk-uidmap) if it is free (and,
        # outside a rebuild, not below UIDNEXT: such a UID may have been given out before), else
        # the next ones.
        adopted: list[tuple[str, int]] = []
        numbered: list[tuple[str, str]] = []  # (dir, name) without a usable UID, in arrival order
        mapped: dict[str, int] | None = None  # gk-uidmap, read when a file without ,U= needs it
        for key in sorted(k for k in files if k not in known):
            fname = files[key]
            uid = (
                uidlist.uid_of(split_name(fname)[0]) if ",U=" in fname else None
            )  # a regex each: 5,000 at a first open
            if uid is None:
                if mapped is None:
                    mapped = uidlist.read_map(d)
                uid = mapped.get(key)
            if uid is not None and uid not in used and (adopting or uid >= uidnext):
                used.add(uid)
                adopted.append((fname, uid))
            else:
                numbered.append(("cur", fname))
        numbered += [("new", n) for n in incoming]
        nxt = max([uidnext, *(u + 1 for u in used)])
        if not rows:
            # A first build, maybe after one cut short by a crash before its rows were committed
            # (``_defer_build``): a UID in gk-uidmap may have been shown to a client for a file
            # removed since, so numbering goes on above every UID the map holds.
            if mapped is None:
                mapped = uidlist.read_map(d)
            if mapped:
                nxt = max(nxt, max(mapped.values()) + 1)
        added: list[tuple[str, int]] = list(adopted)
        # Many files already in cur/ without a UID (a Maildir copied in): named as they are, their
        # UIDs written to gk-uidmap in one append instead of a rename each (see ``uidlist``).
        in_map = len(adopted) + len(numbered) > LAZY_FROM
        map_lines: list[tuple[str, int]] = []
        fresh: set[int] = set()  # the UIDs of files from new/: mail delivered, not a copied-in history
        for sub, fname in numbered:
            base, letters = split_name(fname)
            if in_map and sub == "cur" and ",U=" not in base and uidlist.mappable(base):
                map_lines.append((base, nxt))
                added.append((fname, nxt))
                nxt += 1
                continue
            target = f"{uidlist.with_uid(base, nxt)}:2,{letters}"
            if sub == "new":
                fresh.add(nxt)
            renames.append((f"{d}/{sub}/{fname}", cur + target))
            added.append((target, nxt))
            nxt += 1
        done = self._rename_files(renames, d, sync_new=bool(incoming))
        lost = {os.path.basename(dst) for src, dst in renames if dst not in done}
        fixes = [(t, r) for t, r in fixes if t not in lost]
        added = [(t, u) for t, u in added if t not in lost]
        gone = [r for key, r in known.items() if key not in files]
        kinds: set[str] = set()
        flagged: list[tuple[int, tuple[str, ...], int]] = []
        indexed: list[int] = []
        if gone:
            self._persist_floor(f, d, max(r["uid"] for r in gone) + 1)
        if gone or fixes:
            with self.db.transaction() as c:
                modseq = self._bump(c, f["id"])
                c.executemany("DELETE FROM messages WHERE id = ?", [(r["id"],) for r in gone])
                self._tombstones(c, f["id"], [r["uid"] for r in gone], modseq)
                named = {x.lower() for x in self._keywords_map(d)}
                for fname, r in fixes:
                    base, letters = split_name(fname)
                    old = flags_tuple(r["flags"])
                    keep = [x for x in old if x not in _LETTER and x.lower() not in named]  # beyond a–z
                    new = keep + self._flags_of(d, letters)
                    if not index_wins and set(new) != set(old):
                        c.execute(
                            "UPDATE messages SET base = ?, name = ?, flags = ?, modseq = ? WHERE id = ?",
                            (base, fname, flags_text(new), modseq, r["id"]),
                        )
                        kinds.add("flags")
                        flagged.append((r["uid"], flags_tuple(flags_text(new)), modseq))
                    else:
                        c.execute("UPDATE messages SET base = ?, name = ? WHERE id = ?", (base, fname, r["id"]))
            if gone:
                kinds.add("expunge")
        if added:
            lazy = len(added) > LAZY_FROM or bool(map_lines)
            if lazy and not rows and not gone and not fixes:
                self._defer_build(f, d, added, map_lines, prestat, adopting, nxt, frozenset(fresh))
                self._adopting.discard(name)
                self._reconciled.add(name)
                return
            if lazy:
                indexed = self._index_lazy(f, d, added, map_lines, *(prestat.get() if prestat is not None else ()))
            else:
                indexed = self._index_files(f, d, [t for t, _ in added], uids=[u for _, u in added])
            kinds.add("new")
            if lazy:
                self._kick_backfill()
        if not rows and nxt > int(self._folder_row(name)["uidnext"]):  # past gk-uidmap's UIDs (see above)
            with self.db.transaction() as c:
                c.execute("UPDATE folders SET uidnext = max(uidnext, ?) WHERE id = ?", (nxt, f["id"]))
        if adopting:
            self.db.execute("UPDATE folders SET recentuid = max(recentuid, uidnext - 1) WHERE id = ?", (f["id"],))
            self._adopting.discard(name)
        self._reconciled.add(name)
        if kinds:
            top = self.highestmodseq(name)
            if gone:
                events.publish(events.Expunged(self.address, name, tuple(sorted(r["uid"] for r in gone)), top))
            if flagged:
                events.publish(events.FlagsChanged(self.address, name, tuple(flagged), top))
            if indexed:
                events.publish(events.MessagesAdded(self.address, name, tuple(indexed), top))

    def _first_build(self, f: Any, d: Path, names: list[str], adopting: bool) -> bool:
        """``_scan`` of a folder without index rows, its many files all in ``cur/`` without a UID
        (a Maildir copied in, another server's): the usual first SELECT of a big folder, made
        with operations on whole lists (a first SELECT of 5,000 messages spent ~20 ms of the hub
        on per-file steps). UIDs in name order from UIDNEXT, written to ``gk-uidmap``; the rest
        as ``_defer_build``. False (nothing done) for anything less plain: ``_scan`` does it."""
        if len(names) <= LAZY_FROM:
            return False
        joined = "\n".join(names)
        if ",U=" in joined or "\r" in joined or joined.count("\n") != len(names) - 1:
            return False  # UIDs in names, or names gk-uidmap cannot hold
        names = sorted(names)
        parts = [n.partition(":") for n in names]
        bases = [p[0] for p in parts]
        if len(set(bases)) != len(bases) or "" in bases or uidlist.read_map(d):
            return False  # one message twice (two infos), or UIDs given out before: compared one by one
        start = int(f["uidnext"])
        added = list(zip(names, range(start, start + len(names)), strict=True))
        # durable before any client sees a UID; written while the views are made
        lines = list(zip(bases, range(start, start + len(names)), strict=True))
        mapping = gevent.spawn(pools.run_io, uidlist.append_map, d, lines)
        sizes = _SIZE_FIELD_M.findall(joined)
        known: dict[str, tuple[int, float] | None] = {}
        offset: Callable[[float], int] | None = None
        if len(sizes) == len(names):
            size = sum(map(int, sizes))
        else:  # names without their size: stat'ed now
            known, offset = pools.run_io(self._prestat, f"{d}/cur/", names)
            size = sum(st[0] for st in known.values() if st is not None)
        infos = [p[2] for p in parts]
        texts = {i: flags_text(self._flags_of(d, i[2:] if i.startswith("2,") else "")) for i in set(infos)}
        unseen = {i for i, t in texts.items() if " \\Seen " not in t}
        first = next((k for k, i in enumerate(infos) if i in unseen), None)
        views = {
            "counts": (len(names), size, sum(1 for i in infos if i in unseen)),
            "uids": array("I", range(start, start + len(names))),
            "keywords": sorted({k for t in texts.values() for k in t.split() if not k.startswith("\\")}),
            "first_unseen": None if first is None else start + first,
        }
        mapping.get()
        listing = (range(start, start + len(names)), [texts[i] for i in infos])
        self._start_build(f, added, views, adopting, d, known, offset, listing=listing)
        return True

    def _start_build(
        self,
        f: Any,
        added: list[tuple[str, int]],
        views: dict[str, Any],
        adopting: bool,
        d: Path,
        known: dict[str, tuple[int, float] | None],
        offset: Callable[[float], int] | None,
        uidnext: int = 0,
        listing: tuple[Sequence[int], Sequence[str]] = ((), ()),
        fresh: frozenset[int] = frozenset(),
    ) -> None:
        """Show folder ``f`` as built with ``added`` (``views``: ``_folder_view``'s values;
        ``listing``: the UIDs and flags texts its rows get, see ``flag_rows``; ``fresh``: the UIDs
        of files from new/, the others announced as ``imported``) and start writing its rows
        (``_commit_build``); see ``_defer_build``."""
        row = {k: f[k] for k in f.keys()}
        row["uidnext"] = max(int(f["uidnext"]), max(u for _, u in added) + 1, uidnext)
        row["highestmodseq"] = int(f["highestmodseq"]) + 1  # the commit's one _bump
        if adopting:
            row["recentuid"] = max(int(f["recentuid"]), row["uidnext"] - 1)
        self._views[f["id"]] = ((int(row["uidvalidity"]), row["uidnext"], row["highestmodseq"]), views)
        b = self._build = _Build(row["name"], row, listing=listing, fresh=fresh)
        b.job = gevent.spawn(self._commit_build, b, int(f["recentuid"]), d, added, known, offset, row["uidnext"])

    def _defer_build(
        self,
        f: Any,
        d: Path,
        added: list[tuple[str, int]],
        map_lines: list[tuple[str, int]],
        prestat: gevent.Greenlet | None,
        adopting: bool,
        uidnext: int,
        fresh: frozenset[int] = frozenset(),
    ) -> None:
        """A folder's first build (no index row yet, many files: a first SELECT): what SELECT
        shows of the folder (``_folder_row``, ``_folder_view``: UIDs, counts, keywords, first
        unseen, \\Recent) is made here from the listing, and the rows are written by a greenlet
        of their own (``_commit_build``) while the caller answers — writing 5,000 rows and their
        indexes took ~50 ms of a 70 ms first SELECT. Until they are committed, every other call
        on the mailbox waits for them (``_join_build``): none sees a half-built index.

        Crash-safe: every UID given out is in ``gk-uidmap`` (fdatasynced) or in its file's name
        (renamed and fsynced) before this returns. Killed before the commit, the next open finds
        the folder without rows and builds it again: the same files get the same UIDs under the
        same UIDVALIDITY, and numbering goes on above the map's highest UID (``_scan``), so a
        UID a client saw is never given to another message."""
        lines = [(uidlist.without_uid(split_name(n)[0]), u) for n, u in added if ",U=" in n]
        lines = map_lines + [x for x in lines if uidlist.mappable(x[0])]
        pools.run_io(uidlist.append_map, d, lines)
        known: dict[str, tuple[int, float] | None] = {}
        offset: Callable[[float], int] | None = None
        if prestat is not None:  # names without their size: stat'ed while the UIDs were given out
            known, offset = prestat.get()
        decoded: dict[str, str] = {}  # ":2," info letters -> flags_text
        uids: list[int] = []
        sizes = 0
        texts: list[str] = []
        for fname, uid in added:
            base, letters = split_name(fname)
            text = decoded.get(letters)
            if text is None:
                text = decoded[letters] = flags_text(self._flags_of(d, letters))
            uids.append(uid)
            texts.append(text)
            size = _size_in_name(fname)
            if size is None:
                st = known.get(fname)
                size = st[0] if st is not None else 0
            sizes += size
        views = _views_from(uids, sizes, texts)
        self._start_build(f, added, views, adopting, d, known, offset, uidnext, (uids, texts), fresh)

    def _commit_build(
        self,
        b: _Build,
        recent: int,
        d: Path,
        added: list[tuple[str, int]],
        known: dict[str, tuple[int, float] | None],
        offset: Callable[[float], int] | None,
        uidnext: int,
    ) -> None:
        """``_defer_build``'s writer: the rows in one transaction (I/O pool), then, on the hub
        without yielding, the mailbox back to reading its index and the news published. Failed,
        the folder is scanned again at the next call (the same UIDs, from the Maildir)."""
        fid, name = int(b.row["id"]), b.name
        indexed: list[int] = []
        try:
            indexed = pools.run_io(self._write_build, fid, d, added, offset, known, uidnext)
        except Exception:
            log.exception(
                "mailbox %s: indexing folder %s failed; it is scanned again at its next use", self.address, name
            )
        finally:  # even killed (GreenletExit at shutdown): the mailbox reads its index again
            self._build = None
            self._rows.pop(name, None)
            if not indexed:  # not written: the next sync scans the folder again (the same UIDs)
                b.failed = True
                self._scanned.pop(name, None)
                self._views.pop(fid, None)
        if not indexed:
            return
        if int(b.row["recentuid"]) > recent:  # claimed meanwhile (advisory: not fsynced, as claim_recent)
            with self.db.relaxed_commits():
                self.db.execute(
                    "UPDATE folders SET recentuid = max(recentuid, ?) WHERE id = ?", (int(b.row["recentuid"]), fid)
                )
        imported = tuple(u for u in indexed if u not in b.fresh)
        modseq = int(self._folder_row(name)["highestmodseq"])
        events.publish(events.MessagesAdded(self.address, name, tuple(indexed), modseq, imported))
        self._kick_backfill()

    def _write_build(
        self,
        folder_id: int,
        d: Path,
        added: list[tuple[str, int]],
        offset: Callable[[float], int] | None,
        known: dict[str, tuple[int, float] | None],
        uidnext: int,
    ) -> list[int]:
        """``_commit_build``'s rows, in the I/O pool, committed without fsync (``synchronous=NORMAL``:
        a crash of the process keeps them; a power cut may lose them, and the next open builds
        them again from the Maildir with the same UIDs — nothing a client was told is lost). The
        next ``FULL`` commit (a delivery, an APPEND) or WAL checkpoint makes them durable."""
        with self.db.relaxed_commits():
            return self._index_lazy_in_pool(folder_id, d, added, [], offset, known, keep_gone=True, uidnext=uidnext)

    def _join_build(self) -> None:
        """Wait until a folder's first build (``_defer_build``) is committed. One whose rows
        failed to commit is made again once (the same UIDs), so the caller finds the messages a
        client was shown."""
        for attempt in range(2):
            b = self._build
            if b is None or b.job is None or b.job is gevent.getcurrent():
                return
            b.job.join()
            if not b.failed or attempt:
                return
            self.sync(b.name)

    def _answers_from_build(self, call: str, args: tuple[Any, ...]) -> bool:
        """Whether public call ``call`` is about the folder being built and answered from memory."""
        b = self._build
        if b is None or call not in _FROM_BUILD or not args or not isinstance(args[0], str):
            return False
        try:
            return check_folder_name(args[0]) == b.name
        except MailboxError:
            return False

    def _rename_files(
        self, renames: Sequence[tuple[StrPath, StrPath]], d: Path, sync_new: bool = False, fsync: bool = True
    ) -> set[StrPath]:
        """Do ``renames`` in the threadpool (the hub keeps serving), then fsync ``cur/`` (and
        ``new/``) once unless not ``fsync``; returns the targets that exist now (a source may
        have vanished)."""
        if not renames and not sync_new:
            return set()
        dirs = ([d / "cur", d / "new"] if sync_new else [d / "cur"]) if fsync else []
        return pools.run_io(_rename_batch, renames, dirs)

    def _persist_floor(self, f: Any, d: Path, needed: int) -> None:
        """Before messages up to UID ``needed - 1`` leave a folder: make its ``gk-uidlist`` floor
        cover them, so a rebuilt index never gives their UIDs again. Mostly a no-op."""
        floor = self._floors.get(f["name"])
        if floor is None:
            saved = uidlist.read(d)
            floor = saved.floor if saved else 0
            self._floors[f["name"]] = floor
        if floor >= needed:
            return
        row = self.db.one("SELECT uidvalidity, uidnext FROM folders WHERE id = ?", (f["id"],))
        assert row is not None
        value = max(needed, int(row["uidnext"]))
        pools.run_io(uidlist.write, d, int(row["uidvalidity"]), value)  # a durable write: fsyncs
        self._floors[f["name"]] = value

    def _tombstones(self, c: Any, folder_id: int, uids: list[int], modseq: int) -> None:
        """Remember expunged ``uids`` with the MODSEQ of their expunge (for QRESYNC's VANISHED);
        past ``MAX_TOMBSTONES`` in a folder the oldest half goes and the folder's floor rises."""
        if not uids:
            return
        c.executemany(
            "INSERT OR REPLACE INTO expunged(folder_id, uid, modseq) VALUES (?,?,?)",
            [(folder_id, u, modseq) for u in uids],
        )
        count = int(c.execute("SELECT count(*) FROM expunged WHERE folder_id = ?", (folder_id,)).fetchone()[0])
        if count <= MAX_TOMBSTONES:
            return
        cut = c.execute(
            "SELECT modseq FROM expunged WHERE folder_id = ? ORDER BY modseq DESC LIMIT 1 OFFSET ?",
            (folder_id, MAX_TOMBSTONES // 2),
        ).fetchone()[0]
        c.execute("DELETE FROM expunged WHERE folder_id = ? AND modseq <= ?", (folder_id, cut))
        c.execute("UPDATE folders SET expungedfloor = max(expungedfloor, ?) WHERE id = ?", (cut, folder_id))

    def _bump(self, c: Any, folder_id: int) -> int:
        rows = c.execute(  # fetchall: the statement runs to its end, none is left pending
            "UPDATE folders SET highestmodseq = highestmodseq + 1 WHERE id = ? RETURNING highestmodseq", (folder_id,)
        ).fetchall()
        return int(rows[0][0])

    def _offsets(self) -> Callable[[float], int]:
        """``_local_offset`` for many files at once: the zone is looked up once, offsets kept by hour."""
        try:
            zone = self.zone() if self.zone is not None else None
        except sqlite3.Error:
            zone = None
        memo: dict[int, int] = {}

        def offset(ts: float) -> int:
            hour = int(ts) // 900  # zones change offset on quarter hours (UTC)
            if hour not in memo:
                if zone is None:
                    memo[hour] = 0
                else:
                    try:
                        off = dt.datetime.fromtimestamp(ts, zone).utcoffset()
                    except (OverflowError, OSError, ValueError):
                        off = None
                    memo[hour] = int(off.total_seconds() / 60) if off else 0
            return memo[hour]

        return offset

    def _local_offset(self, ts: float) -> int:
        """The server zone's offset (minutes east of UTC) at ``ts``; 0 without a zone."""
        if self.zone is None:
            return 0
        try:
            off = dt.datetime.fromtimestamp(ts, self.zone()).utcoffset()
        except (OverflowError, OSError, ValueError, sqlite3.Error):
            return 0  # a date out of range, the settings unreadable: UTC, as before zones
        return int(off.total_seconds() / 60) if off else 0

    def _index_files(
        self,
        f: Any,
        d: Path,
        names: list[str],
        flags: Iterable[str] = (),
        dates: Sequence[tuple[int, int]] | None = None,
        *,
        uids: Sequence[int],
        lazy: bool = False,
    ) -> list[int]:
        """Parse and index ``names`` (files in cur/ that carry their UID, given in ``uids``); UIDNEXT
        moves past them. Returns the UIDs indexed (a file that vanished meanwhile is left out).

        ``dates``: per name its (internal date, zone offset in minutes); without it the file's
        mtime in the server's zone.

        ``lazy``: index without parsing — UID, size and internal date from ``stat``, flags from the
        file name, ENVELOPE / MIME structure / text index left NULL (what a first SELECT of a big
        folder needs: Dovecot does no more). They are filled later: ENVELOPE alone by ``infos``
        when a FETCH asks for it, the whole parse by ``structure``, by SEARCH for what it must
        look into, and by the background indexer (``_backfill``) for the rest."""
        found = []
        cur = f"{d}/cur/"
        for i, fname in enumerate(names):
            try:
                found.append((i, fname, os.stat(cur + fname)))
            except FileNotFoundError:
                continue
        offset = self._offsets()
        # Parse a group (CPU pool) while the group before it is inserted and committed (I/O
        # pool): FTS5 tokenizes every body (~0.5 ms a message) in C with the GIL released, so
        # the two overlap; a first open of 5,000 messages had held the hub ~2.5 s with the
        # inserts on it. One group in flight at a time, in order: UIDNEXT only grows.
        done: list[int] = []
        writing: gevent.Greenlet | None = None
        try:
            step = max(len(found), 1) if lazy else INDEX_GROUP  # lazy: nothing to overlap, one commit
            for start in range(0, len(found), step):
                group = found[start : start + step]
                parsed: list[Parsed | None] = (
                    [(None, None, None, None, None)] * len(group)
                    if lazy
                    else _parse_off_hub([(cur + fname, st.st_size) for _, fname, st in group])
                )
                entries = []
                for (i, fname, st), result in zip(group, parsed, strict=True):
                    if result is None:
                        continue  # removed behind our back since the stat
                    env, structure, text, date, bswire = result
                    letters = split_name(fname)[1]
                    fl = list(flags) + self._flags_of(d, letters)
                    when, zone = dates[i] if dates is not None else (int(st.st_mtime), offset(st.st_mtime))
                    entries.append((uids[i], fname, st, env, structure, bswire, text, date, fl, when, zone))
                if writing is not None:
                    done += writing.get()
                writing = gevent.spawn(pools.run_io, self._insert_indexed, f["id"], entries)
            if writing is not None:
                done += writing.get()
        finally:
            if writing is not None and not writing.ready():
                writing.join()  # a parse failed: let the group being written finish, never abandon it
        return done

    def _index_lazy(
        self,
        f: Any,
        d: Path,
        added: list[tuple[str, int]],
        map_lines: list[tuple[str, int]],
        stats: dict[str, tuple[int, float] | None] | None = None,
        offset: Callable[[float], int] | None = None,
    ) -> list[int]:
        """``_index_files(..., lazy=True)`` of (file name in cur/, UID) pairs, for thousands at a
        time (a first SELECT), in one I/O pool hand-off: ``map_lines`` appended to gk-uidmap
        (durable before the index gives out their UIDs), the stats, the flags decoded once per
        distinct ``:2,`` info, the rows inserted in one ``executemany`` transaction. Returns the
        UIDs indexed (a file that vanished meanwhile is left out)."""
        offset = offset or self._offsets()  # the zone is looked up here, on the hub, unless _prestat did
        return pools.run_io(self._index_lazy_in_pool, f["id"], d, added, map_lines, offset, stats or {})

    def _prestat(
        self, cur: str, names: list[str]
    ) -> tuple[dict[str, tuple[int, float] | None], Callable[[float], int]]:
        """(stat of each file ``cur + name``, ``_offsets()``) for ``_index_lazy`` (in the I/O pool)."""
        return dict(zip(names, _stat_files(cur, names), strict=True)), self._offsets()

    def _index_lazy_in_pool(
        self,
        folder_id: int,
        d: Path,
        added: list[tuple[str, int]],
        map_lines: list[tuple[str, int]],
        offset: Callable[[float], int] | None,
        known: dict[str, tuple[int, float] | None],
        keep_gone: bool = False,
        uidnext: int = 0,
    ) -> list[int]:
        """(``keep_gone``: a file removed since the listing gets its row all the same — a client
        was shown its UID; the next sync expunges it.)"""
        offset = offset or self._offsets()
        uidlist.append_map(d, map_lines)
        # the files stat'ed meanwhile (``known``: those in cur/ at the listing) and the others now
        todo = [fname for fname, _ in added if fname not in known]
        more = dict(zip(todo, _stat_files(f"{d}/cur/", todo), strict=True))
        stats = [known[fname] if fname in known else more[fname] for fname, _ in added]
        decoded: dict[str, str] = {}  # ":2," info letters -> flags_text
        rows: list[tuple[Any, ...]] = []
        for (fname, uid), st in zip(added, stats, strict=True):
            if st is None:
                if not keep_gone:
                    continue  # removed behind our back since the listing
                st = (_size_in_name(fname) or 0, time.time())
            base, letters = split_name(fname)
            text = decoded.get(letters)
            if text is None:
                text = decoded[letters] = flags_text(self._flags_of(d, letters))
            size, mtime = st
            rows.append((folder_id, uid, base, fname, size, int(mtime), offset(mtime), text))
        if not rows:
            return []
        return self._insert_lazy(folder_id, rows, uidnext)

    def _insert_lazy(self, folder_id: int, rows: list[tuple[Any, ...]], uidnext: int = 0) -> list[int]:
        """Insert unparsed rows (``_index_lazy``) in one transaction (in a pool thread). Into an
        empty folder (a first open), the rows are the whole folder: what SELECT reads of it next
        (``_folder_view``: UIDs, counts, keywords, first unseen) is made from them here rather than
        by four queries over the rows just written (~5 ms of the hub for 5,000 messages)."""
        with self.db.transaction() as c:
            empty = c.execute("SELECT 1 FROM messages WHERE folder_id = ? LIMIT 1", (folder_id,)).fetchone() is None
            modseq = self._bump(c, folder_id)
            c.executemany(
                "INSERT INTO messages(folder_id, uid, base, name, size, internaldate, tzoffset, flags, modseq)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                [(*r, modseq) for r in rows],
            )
            top = max(max(r[1] for r in rows) + 1, uidnext)
            c.execute("UPDATE folders SET uidnext = max(uidnext, ?) WHERE id = ?", (top, folder_id))
            key = c.execute(
                "SELECT uidvalidity, uidnext, highestmodseq FROM folders WHERE id = ?", (folder_id,)
            ).fetchone()
        if empty:
            self._views[folder_id] = ((int(key[0]), int(key[1]), int(key[2])), _views_of(rows))
        return [r[1] for r in rows]

    def _insert_indexed(self, folder_id: int, entries: list[tuple[Any, ...]]) -> list[int]:
        """Insert parsed messages (``_index_files``), 500 a transaction; runs in a pool thread
        while the caller's greenlet holds ``self.lock`` (the connection's own lock serialises
        any other user of it)."""
        f = {"id": folder_id}
        done = []
        step = max(len(entries), 500) if all(e[3] is None for e in entries) else 500  # lazy rows are small
        for start in range(0, len(entries), step):
            with self.db.transaction() as c:
                modseq = self._bump(c, f["id"])
                uidnext = int(c.execute("SELECT uidnext FROM folders WHERE id = ?", (f["id"],)).fetchone()[0])
                for uid, fname, st, env, structure, bswire, text, date, fl, when, zone in entries[start : start + step]:
                    cur = c.execute(
                        "INSERT INTO messages(folder_id, uid, base, name, size, internaldate, tzoffset, sentdate,"
                        " flags, modseq, envelope, structure, bswire) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (
                            f["id"],
                            uid,
                            split_name(fname)[0],
                            fname,
                            st.st_size,
                            when,
                            zone,
                            _sentdate(date),
                            flags_text(fl),
                            modseq,
                            env,
                            structure,
                            bswire,
                        ),
                    )
                    if text is not None:
                        _insert_fts(c, cur.lastrowid, text)
                    done.append(uid)
                    uidnext = max(uidnext, uid + 1)
                c.execute("UPDATE folders SET uidnext = ? WHERE id = ?", (uidnext, f["id"]))
        return done

    # -- reading ----------------------------------------------------------------------------
    def uids(self, name: str) -> array[int]:
        """All UIDs of a folder, ascending (4 bytes each): IMAP's sequence-number map."""
        with self.lock:
            f = self._folder_row(name)

            def read() -> array[int]:
                (text,) = self.db.conn.execute(
                    "SELECT json_group_array(uid) FROM (SELECT uid FROM messages WHERE folder_id = ? ORDER BY uid)",
                    (f["id"],),
                ).fetchone()
                return array("I", json.loads(text))

            return array("I", self._folder_view(f, "uids", read))  # a copy: the caller's to change

    def sync_modseq(self, name: str) -> int:
        """``sync`` then ``highestmodseq``, with one read of the folder's row when nothing changed
        on disk (IMAP asks both before every command on the selected folder)."""
        with self.lock:
            f = self._folder_row(name)
            try:
                d = self._dir(f["name"])
                stamp = (os.stat(f"{d}/new").st_mtime_ns, os.stat(f"{d}/cur").st_mtime_ns)
                if self._stamp_holds(f["name"], stamp):
                    return int(f["highestmodseq"])
            except FileNotFoundError:
                pass
            self.sync(name)
            return int(self._folder_row(name)["highestmodseq"])

    def highestmodseq(self, name: str) -> int:
        """The folder's current HIGHESTMODSEQ (bumped by every new message, flag change, expunge)."""
        return int(self._folder_row(name)["highestmodseq"])

    def uidnext(self, name: str) -> int:
        """The UID the folder's next message will get."""
        return int(self._folder_row(name)["uidnext"])

    def recent_uid(self, name: str) -> int:
        """The highest UID a read-write IMAP session has claimed as \\Recent (those above are unclaimed)."""
        return int(self._folder_row(name)["recentuid"])

    def claim_recent(self, name: str, top: int) -> int:
        """Claim every UID up to ``top`` as \\Recent for the calling session; returns the previous
        mark, so the caller's recent messages are those in (previous, top]. Atomic: of two sessions
        only one gets a message (RFC 3501 2.3.2). Writes one integer, and only when it grows."""
        with self.lock:
            f = self._folder_row(name)
            if top <= int(f["recentuid"]):  # nothing to claim: no transaction (read under the lock)
                return int(f["recentuid"])
            b = self._build
            if b is not None and b.row is f:  # the folder's first build: its commit writes the mark
                prev = int(f["recentuid"])
                f["recentuid"] = top
                return prev
            # Not fsynced (a WAL append, as a flag change): lost in a power cut, the messages are
            # \Recent once more for the next session — \Recent is advisory (RFC 9051 dropped it).
            with self.db.relaxed_commits(), self.db.transaction() as c:
                prev = int(c.execute("SELECT recentuid FROM folders WHERE id = ?", (f["id"],)).fetchone()[0])
                if top > prev:
                    c.execute("UPDATE folders SET recentuid = ? WHERE id = ?", (top, f["id"]))
            return prev

    def vanished(self, name: str, modseq: int, ranges: list[tuple[int, int]] | None = None) -> list[int] | None:
        """UIDs expunged after ``modseq`` (within the UID ``ranges`` if given), ascending; None when
        tombstones that old were pruned (the caller then answers conservatively, RFC 7162 3.6)."""
        with self.lock:
            f = self._folder_row(name)
            if modseq < f["expungedfloor"]:
                return None
            rows = self.db.query(
                "SELECT uid FROM expunged WHERE folder_id = ? AND modseq > ? ORDER BY uid", (f["id"], modseq)
            )
            uids = [r[0] for r in rows]
        if ranges is None:
            return uids
        spans = sorted(ranges)
        starts = [lo for lo, _ in spans]
        reach = list(itertools.accumulate((hi for _, hi in spans), max))  # highest end so far
        return [u for u in uids if (i := bisect.bisect_right(starts, u) - 1) >= 0 and reach[i] >= u]

    def count_above(self, name: str, uid: int) -> int:
        """How many messages of a folder have a UID above ``uid``."""
        f = self._folder_row(name)
        row = self.db.one("SELECT count(*) FROM messages WHERE folder_id = ? AND uid > ?", (f["id"], uid))
        return int(row[0]) if row else 0

    def keywords(self, name: str) -> list[str]:
        """Keywords (non-system flags) in use in a folder, for SELECT's FLAGS response."""
        f = self._folder_row(name)

        def read() -> list[str]:
            rows = self.db.query("SELECT DISTINCT flags FROM messages WHERE folder_id = ?", (f["id"],))
            return sorted({k for r in rows for k in r[0].split() if not k.startswith("\\")})

        return list(self._folder_view(f, "keywords", read))

    def first_unseen(self, name: str) -> int | None:
        """The lowest UID without \\Seen, or None."""
        f = self._folder_row(name)

        def read() -> int | None:
            row = self.db.one(
                "SELECT min(uid) FROM messages WHERE folder_id = ? AND instr(flags, ' \\Seen ') = 0", (f["id"],)
            )
            return row[0] if row else None

        return self._folder_view(f, "first_unseen", read)

    def changes_since(self, name: str, modseq: int) -> list[tuple[int, tuple[str, ...], int]]:
        """(uid, flags, modseq) of messages whose flags changed or that arrived after ``modseq``."""
        f = self._folder_row(name)
        rows = self.db.query(
            "SELECT uid, flags, modseq FROM messages WHERE folder_id = ? AND modseq > ? ORDER BY uid",
            (f["id"], modseq),
        )
        return [(r[0], flags_tuple(r[1]), r[2]) for r in rows]

    def flag_rows(self, name: str, uids: Sequence[int]) -> list[tuple[int, str, int]]:
        """(uid, flags text, modseq) of ``uids`` (ascending, without repeats; missing ones are left
        out): all a FETCH of UID / FLAGS / MODSEQ reads, for thousands at a time. While the folder's
        first build is committed (``_defer_build``) it is answered from the build's listing: the
        rows it writes hold those flags and that MODSEQ, and nothing can change them before they
        are committed (every call that would waits for the commit, ``_join_build``)."""
        b = self._build
        if b is not None and b.name == check_folder_name(name):
            if b.flags is None:
                b.flags = dict(zip(*b.listing, strict=True))
            flags, modseq = b.flags, int(b.row["highestmodseq"])
            return [(u, flags[u], modseq) for u in uids if u in flags]
        if not uids:
            return []
        fid = self._folder_row(name)["id"]
        sql = "SELECT uid, flags, modseq FROM messages WHERE folder_id = ? AND "
        lo, hi = uids[0], uids[-1]
        if len(uids) * 2 >= hi - lo + 1:  # dense (1:*): one range scan, the UIDs not asked for dropped
            rows = self.db.tuples(sql + "uid BETWEEN ? AND ? ORDER BY uid", (fid, lo, hi))
            if len(uids) == hi - lo + 1:
                return rows
            want = set(uids)
            return [r for r in rows if r[0] in want]
        out: list[tuple[int, str, int]] = []
        for i in range(0, len(uids), 500):
            chunk = uids[i : i + 500]
            out += self.db.tuples(sql + f"uid IN ({','.join('?' * len(chunk))}) ORDER BY uid", (fid, *chunk))
        return out

    def _infos(
        self,
        f: Any,
        where: str,
        params: tuple[Any, ...],
        order: str = "uid",
        envelopes: bool = True,
        bodystructures: bool = False,
    ) -> list[MessageInfo]:
        # with a missing wire form, the stored tree it is made from (an index from before bswire)
        bs = ", bswire, CASE WHEN bswire IS NULL THEN structure END" if bodystructures else ", NULL, NULL"
        if not envelopes:
            rows = self.db.query(
                f"SELECT uid, flags, size, internaldate, modseq, NULL, tzoffset, NULL, id, name{bs}"
                f" FROM messages WHERE folder_id = ? AND {where} ORDER BY {order}",
                (f["id"], *params),
            )
        else:
            rows = self.db.query(
                f"SELECT uid, flags, size, internaldate, modseq, envelope, tzoffset, envwire, id, name{bs}"
                f" FROM messages WHERE folder_id = ? AND {where} ORDER BY {order}",
                (f["id"], *params),
            )
        made: dict[int, tuple[str, bytes]] = {}
        if envelopes and (missing := [r for r in rows if r[7] is None]):
            made = self._fill_envelopes(f, [(r[8], r[9], r[5]) for r in missing])
        wires: dict[int, bytes] = {}
        if bodystructures and (unwired := [(r[8], r[9], r[11]) for r in rows if r[10] is None]):
            wires = self._fill_bodywires(f, unwired)
        out = []
        for r in rows:
            env, wired = (r[5], r[7]) if r[7] is not None or not envelopes else made.get(r[8], (r[5], None))
            out.append(
                MessageInfo(
                    r[0],
                    flags_tuple(r[1]),
                    r[2],
                    r[3],
                    r[4],
                    env,
                    r[6],
                    wired,
                    "" if envelopes else r[9],
                    r[10] if r[10] is not None else wires.get(r[8]),
                )
            )
        return out

    # -- lazy indexing (see _index_files) ---------------------------------------------------
    def _unparsed(self, f: Any, column: str, uids: Sequence[int] | None) -> list[Any]:
        """(id, uid, name, size, has an ENVELOPE) of ``f``'s messages whose ``column`` is still NULL:
        of ``uids``, or all."""
        sql = f"SELECT id, uid, name, size, envelope IS NOT NULL AS known FROM messages WHERE folder_id = ? AND {column} IS NULL"
        if uids is None:
            return self.db.query(sql + " ORDER BY uid", (f["id"],))
        rows: list[Any] = []
        want = sorted(set(uids))
        for i in range(0, len(want), 500):
            chunk = want[i : i + 500]
            rows += self.db.query(sql + f" AND uid IN ({','.join('?' * len(chunk))})", (f["id"], *chunk))
        return rows

    def _fill_envelopes(self, f: Any, rows: list[tuple[int, str, str | None]]) -> dict[int, tuple[str, bytes]]:
        """The ENVELOPE wire form (``envwire``) of messages (row id, file name, stored ENVELOPE
        JSON or None) that have none: rendered from the stored ENVELOPE, or — indexed lazily —
        read from the top header block of the file with the Date for SENTBEFORE… (CPU pool);
        stored in one transaction (I/O pool). Returns {row id: (ENVELOPE JSON, wire form)};
        a message whose file is gone is left out."""
        with self.lock:
            cur = f"{self._dir(f['name'])}/cur/"
            updates: list[tuple[str, int | None, bytes, int]] = []
            for start in range(0, len(rows), 4 * PARSE_BATCH_FILES):
                batch = rows[start : start + 4 * PARSE_BATCH_FILES]
                found = pools.run_cpu(_parse_envelopes, [(cur + name, stored) for _, name, stored in batch])
                updates += [(*res, r[0]) for r, res in zip(batch, found, strict=True) if res is not None]
            if updates:
                pools.run_io(self._store_envelopes, updates)
        return {rowid: (env, wired) for env, _, wired, rowid in updates}

    def _store_envelopes(self, updates: list[tuple[str, int | None, bytes, int]]) -> None:
        # A cache of the file's bytes: no fsync (a power cut loses nothing but the work). A row
        # parsed meanwhile keeps its ENVELOPE and Date (the same values) and gets the wire form.
        with self.db.relaxed_commits(), self.db.transaction() as c:
            c.executemany(
                "UPDATE messages SET envelope = coalesce(envelope, ?), sentdate = coalesce(sentdate, ?),"
                " envwire = ? WHERE id = ? AND envwire IS NULL",
                updates,
            )

    def _fill_bodywires(self, f: Any, rows: list[tuple[int, str, str | None]]) -> dict[int, bytes]:
        """The BODYSTRUCTURE wire form (``bswire``) of messages (row id, file name, stored MIME
        tree JSON or None) that have none: rendered from the stored tree, or, for a message
        indexed lazily, from a parse of its structure alone (CPU pool): a phone's first sync of a
        folder copied in waits for neither the text index nor an ENVELOPE it does not ask for,
        and the message stays lazily indexed for the rest. Returns {row id: wire form}; a message
        whose file is gone is left out.

        Stored after the answer (``_store_wires_later``), not before it: the commit (~0.5 ms for
        100) is no part of the FETCH a client waits for (issue 11, the cold BODYSTRUCTURE row)."""
        with self.lock:
            cur = f"{self._dir(f['name'])}/cur/"
            updates: list[tuple[bytes, int, str]] = []
            for start in range(0, len(rows), 4 * PARSE_BATCH_FILES):
                batch = rows[start : start + 4 * PARSE_BATCH_FILES]
                found = pools.run_cpu(_body_wires, [(cur + name, tree) for _, name, tree in batch])
                updates += [(w, r[0], r[1]) for r, w in zip(batch, found, strict=True) if w is not None]
        if updates:
            held = self._held_wires.get(gevent.getcurrent())
            if held is None:
                self._store_wires_soon(updates)
            elif len(held) + len(updates) > HELD_WIRES_MAX:  # a FETCH 1:* of a big folder: memory
                self._store_wires_soon(held + updates)
                held.clear()
            else:
                held += updates
        return {rowid: w for w, rowid, _ in updates}

    def _store_wires_soon(self, updates: list[tuple[bytes, int, str]]) -> None:
        job = gevent.spawn(self._store_wires_later, updates)
        self._wiring.add(job)
        job.link(self._wiring.discard)

    @contextlib.contextmanager
    def keeping_wires(self) -> Iterator[None]:
        """The BODYSTRUCTURE wire forms the calling greenlet makes inside the block are stored
        once, when it ends, not after each call. A FETCH of 100 cold messages reads them in
        chunks (the client parses the first lines meanwhile); a store after each chunk took the
        mailbox lock while it committed, and the next chunk's read waited for it (issue 11, the
        cold BODYSTRUCTURE row). Inside another such block of the same greenlet: that one stores."""
        me = gevent.getcurrent()
        if me in self._held_wires:
            yield
            return
        held: list[tuple[bytes, int, str]] = []
        self._held_wires[me] = held
        try:
            yield
        finally:
            del self._held_wires[me]
            if held:
                self._store_wires_soon(held)

    def _store_wires_later(self, updates: list[tuple[bytes, int, str]]) -> None:
        with self.lock:
            if self._closed:
                return  # a cache: made again on the next FETCH
            pools.run_io(self._store_bodywires, updates)

    def _store_bodywires(self, updates: list[tuple[bytes, int, str]]) -> None:
        # A cache of the file's bytes: no fsync (a power cut loses nothing but the work). Written
        # after the answer: the row must still be the same file (an expunged message's row id
        # can be given to a new one); a renamed one (a flag change) is made again when asked
        with self.db.relaxed_commits(), self.db.transaction() as c:
            c.executemany("UPDATE messages SET bswire = ? WHERE id = ? AND name = ? AND bswire IS NULL", updates)

    def _join_wiring(self) -> None:
        """Wait for the wire forms made by FETCHes to be stored (tests; ``close``)."""
        gevent.joinall(list(self._wiring), timeout=10)

    def _fill_parsed(self, f: Any, uids: Sequence[int] | None) -> None:
        """The whole parse (MIME structure, ENVELOPE, text index) of ``f``'s lazily indexed
        messages: those of ``uids``, or all of them (SEARCH of text or headers)."""
        with self.lock:
            rows = self._unparsed(f, "structure", uids)
            cur = self._dir(f["name"]) / "cur"
            # As in _index_files: a group parses (CPU pool) while the one before it is stored (I/O
            # pool; FTS5 tokenizes in C with the GIL released), one group in flight at a time. In
            # turn, the first TEXT search of 5,000 lazily indexed messages took the sum of both.
            writing: gevent.Greenlet | None = None
            try:
                for start in range(0, len(rows), INDEX_GROUP):
                    group = rows[start : start + INDEX_GROUP]
                    known = {str(cur / r["name"]) for r in group if r["known"]}
                    parsed = _parse_off_hub([(str(cur / r["name"]), r["size"]) for r in group], known)
                    items = [(r["id"], p) for r, p in zip(group, parsed, strict=True) if p is not None]
                    if writing is not None:
                        writing.get()
                        writing = None
                    if items:
                        writing = gevent.spawn(pools.run_io, self._store_parsed, items)
                if writing is not None:
                    writing.get()
            finally:
                if writing is not None and not writing.ready():
                    writing.join()  # a parse failed: let the group being stored finish, never abandon it

    def _store_parsed(self, items: list[tuple[int, Parsed]]) -> None:
        """Store full parses of lazily indexed rows (in a pool thread; a row expunged or parsed
        meanwhile is left alone). No MODSEQ bump: nothing a client sees has changed. No fsync
        either: lost in a power cut, the rows are merely unparsed again."""
        with self.db.relaxed_commits(), self.db.transaction() as c:
            for rowid, (env, structure, text, date, bswire) in items:
                cur = c.execute(
                    "UPDATE messages SET envelope = coalesce(?, envelope), structure = ?, sentdate = ?,"
                    " bswire = coalesce(bswire, ?)"
                    " WHERE id = ? AND structure IS NULL",
                    (env, structure, _sentdate(date), bswire, rowid),
                )
                if cur.rowcount and text is not None:
                    _insert_fts(c, rowid, text)

    def _kick_backfill(self) -> None:
        """Start the background indexer unless it runs (it stops when nothing is left)."""
        if not self._closed and (self._backfiller is None or self._backfiller.dead):
            self._backfiller = gevent.spawn(self._backfill)

    def _backfill(self) -> None:
        """Parse every lazily indexed message of the user, ``BACKFILL_BATCH`` at a time, oldest row
        first, each batch only once no call has come for ``BACKFILL_IDLE``: while the parse runs
        in a pool thread, every SQLite call or socket write of the hub waits for the GIL. The
        files are parsed without the lock (CPU pool), each batch stored in one transaction under
        it, so sessions wait at most one batch's insert. Crash-safe by
        construction: a row is either unparsed (NULL) or fully parsed (one transaction with its
        text index); the next open resumes with whatever is left."""
        last, passes = 0, 0
        skipped = False
        try:
            self._prefill_envelopes()
            self._prefill_bodywires()
            self._prefill_bodywires(idle=True)
            while not self._closed:
                # The sessions first: a batch starts only once the mailbox has been left alone for
                # BACKFILL_IDLE (its parse competes for the GIL, its insert for the lock).
                while (wait := self._touched + BACKFILL_IDLE - time.monotonic()) > 0:
                    gevent.sleep(wait)
                with self.lock:
                    if self._closed:
                        return
                    rows = self.db.query(
                        "SELECT m.id, m.name, f.name, m.envelope IS NOT NULL FROM messages m"
                        " JOIN folders f ON f.id = m.folder_id WHERE m.structure IS NULL AND m.id > ?"
                        " ORDER BY m.id LIMIT ?",
                        (last, BACKFILL_BATCH),
                    )
                if not rows:
                    passes += 1
                    if not skipped or passes >= 3:  # a file that stays missing: the next sync expunges it
                        return
                    last, skipped = 0, False
                    continue
                last = rows[-1][0]
                paths = [str(self._dir(r[2]) / "cur" / r[1]) for r in rows]
                known = [p for r, p in zip(rows, paths, strict=True) if r[3]]
                parsed = pools.run_cpu(_parse_files, paths, known)  # renamed meanwhile (a flag change): None
                items = [(r[0], p) for r, p in zip(rows, parsed, strict=True) if p is not None]
                skipped = skipped or len(items) < len(rows)
                with self.lock:
                    if self._closed:
                        return
                    if items:
                        pools.run_io(self._store_parsed, items)
        except Exception:
            log.exception("mailbox %s: background indexing stopped (the next open resumes it)", self.address)

    def _prefill_envelopes(self) -> None:
        """The ENVELOPE wire forms (``envwire``) of every message that has none, right away, in
        batches of ``PREFILL_BATCH`` (the top header block only, in the CPU pool; the lock is held
        for each batch's read of rows and its write, not its parse). Not gated on the mailbox being
        idle as the full parse is: a first open's client keeps the mailbox busy right after it
        (and the DAV iTIP watcher read every message a first open announced until it learnt to
        leave ``MessagesAdded.imported`` alone), and gated, this pass came too
        late for the FETCH it is for. A client's next step after SELECT is
        a FETCH of every ENVELOPE (or the webmail's list): made in that FETCH, the 5,000 messages
        of a lazily indexed folder cost ~0.4 s of parsing there (Dovecot: ~0.2 s); this pass
        costs the same once, in the background, and the full parse (``_backfill``) comes after,
        when the mailbox is idle. A FETCH that comes first fills the rows it needs itself."""
        last = 0
        gevent.sleep(PREFILL_DELAY)  # the command that indexed the folder (a SELECT) answers first
        while not self._closed:
            gevent.sleep(0)  # between batches, the sessions waiting for the lock go first
            with self.lock:
                if self._closed:
                    return
                rows = self.db.query(
                    "SELECT m.id, m.name, m.envelope, f.name FROM messages m JOIN folders f ON f.id = m.folder_id"
                    " WHERE m.envwire IS NULL AND m.id > ? ORDER BY m.id LIMIT ?",
                    (last, PREFILL_BATCH),
                )
            if not rows:
                return
            last = rows[-1][0]
            by_folder: dict[str, list[tuple[int, str, str | None]]] = {}
            for r in rows:
                by_folder.setdefault(r[3], []).append((r[0], r[1], r[2]))
            # parsed without the lock (the files only), stored under it: a SELECT waits for one
            # batch's UPDATE, not its parse (held for the parse, 20 login+SELECTs during this pass
            # took 1.4-1.7x Dovecot's time in bench imap). A row a FETCH filled meanwhile keeps its
            # own (``_store_envelopes``); a file renamed meanwhile is parsed by the FETCH that needs it.
            updates: list[tuple[str, int | None, bytes, int, str]] = []
            for folder, items in by_folder.items():
                cur = f"{self._dir(folder)}/cur/"
                found = pools.run_cpu(_parse_envelopes, [(cur + name, stored) for _, name, stored in items])
                updates += [(*res, r[0], r[1]) for r, res in zip(items, found, strict=True) if res is not None]
            if updates:
                with self.lock:
                    if self._closed:
                        return
                    pools.run_io(self._store_prefilled, updates)

    def _prefill_bodywires(self, idle: bool = False) -> None:
        """The BODYSTRUCTURE wire forms of each folder's messages that have none, INBOX first,
        each folder's newest first (CPU pool; the lock held only to read the rows and to store
        them). A phone's first sync of a folder copied in (K-9, FairEmail, iOS Mail) asks for
        the BODYSTRUCTURE of the newest messages, then of older ones as its user scrolls back;
        made in those FETCHes, 100 of them cost ~10-25 ms of parsing there (Dovecot answers in
        ~5), made here, a read of each file and a structure-only parse, once.

        The first call (``idle=False``) makes each folder's newest ``PREFILL_BODIES`` right after
        the ENVELOPEs and, like them, without waiting for the mailbox to be idle: the phone's
        next FETCH is for them. The second (``idle=True``) makes the rest, ``IDLE_BODIES`` a batch
        once no call has come for ``BACKFILL_IDLE``, before the full parse: not gated, this
        pass slowed the commands that came while it ran (bench imap: 100 stored BODYSTRUCTUREs
        0.003 s -> 0.011 s, and a FETCH whose parse queued behind a batch in the pool 20x
        Dovecot). Messages over ``IDLE_BODY_SIZE`` are left to the full parse or their FETCH:
        most of a mailbox's bytes are in few big messages, read twice they would double the
        pass's reading of an SD card."""
        with self.lock:
            if self._closed:
                return
            folders = self.db.tuples("SELECT id, name FROM folders ORDER BY name != 'INBOX', name")
        size, batch = (IDLE_BODY_SIZE, IDLE_BODIES) if idle else (1 << 62, PREFILL_BODIES)
        for fid, fname in folders:
            below = 1 << 62  # the folder's UIDs still to look at are below this one
            while True:
                if idle:  # the sessions first, as in _backfill
                    while (wait := self._touched + BACKFILL_IDLE - time.monotonic()) > 0:
                        gevent.sleep(wait)
                else:
                    gevent.sleep(0)  # the sessions waiting for the lock go first
                with self.lock:
                    if self._closed:
                        return
                    # the newest first batch counts the made ones; the idle pass skips them
                    query = (
                        "SELECT id, name, structure, uid FROM (SELECT id, name, structure, uid, bswire FROM messages"
                        " WHERE folder_id = ? ORDER BY uid DESC LIMIT ?) WHERE bswire IS NULL"
                        if not idle
                        else "SELECT id, name, structure, uid FROM messages WHERE folder_id = ? AND uid < ?"
                        " AND bswire IS NULL AND size <= ? ORDER BY uid DESC LIMIT ?"
                    )
                    rows = self.db.tuples(query, (fid, batch) if not idle else (fid, below, size, batch))
                if not rows:
                    break
                below = rows[-1][3]
                cur = f"{self._dir(fname)}/cur/"
                found = pools.run_cpu(_body_wires, [(cur + name, tree) for _, name, tree, _ in rows])
                updates = [(w, r[0], r[1]) for r, w in zip(rows, found, strict=True) if w is not None]
                if updates:
                    with self.lock:
                        if self._closed:
                            return
                        pools.run_io(self._store_prefilled_bodywires, updates)
                if not idle:
                    break

    def _store_prefilled_bodywires(self, updates: list[tuple[bytes, int, str]]) -> None:
        # read before the parse without the lock: the row must still be the same file (an
        # expunged message's row id can be given to a new one); a renamed one is left to its FETCH
        with self.db.relaxed_commits(), self.db.transaction() as c:
            c.executemany("UPDATE messages SET bswire = ? WHERE id = ? AND name = ? AND bswire IS NULL", updates)

    def _store_prefilled(self, updates: list[tuple[str, int | None, bytes, int, str]]) -> None:
        # as _store_envelopes, for rows read before the parse without the lock: the row must
        # still be the same file (an expunged message's row id can be given to a new one)
        with self.db.relaxed_commits(), self.db.transaction() as c:
            c.executemany(
                "UPDATE messages SET envelope = coalesce(envelope, ?), sentdate = coalesce(sentdate, ?),"
                " envwire = ? WHERE id = ? AND name = ? AND envwire IS NULL",
                updates,
            )

    def messages(self, name: str, offset: int = 0, limit: int = 50, newest_first: bool = True) -> list[MessageInfo]:
        """A page of a folder's messages (for the webmail list), newest first by default."""
        with self.lock:
            self.sync(name)
            f = self._folder_row(name)
            order = "uid DESC" if newest_first else "uid"
            return self._infos(f, "1", (), f"{order} LIMIT {int(limit)} OFFSET {int(offset)}")

    def infos(
        self, name: str, uids: Iterable[int], envelopes: bool = True, bodystructures: bool = False
    ) -> dict[int, MessageInfo]:
        """MessageInfo for the given UIDs (missing ones are left out). ``envelopes=False``: the
        caller does not read ``.envelope`` (FETCH FLAGS, a FETCH of sizes and header fields): it
        is not read (``envelope_json`` None), and lazily indexed messages stay unparsed.
        ``bodystructures``: with ``bodystructure_wire`` (made now for messages that have none)."""
        f = self._folder_row(name)
        want = sorted(set(uids))
        out: dict[int, MessageInfo] = {}
        for i in range(0, len(want), 500):
            chunk = want[i : i + 500]
            params: tuple[int, ...]
            if chunk[-1] - chunk[0] + 1 == len(chunk):  # a run of UIDs (a FETCH 1:* in chunks): one range scan
                where, params = "uid BETWEEN ? AND ?", (chunk[0], chunk[-1])
            else:
                where, params = f"uid IN ({','.join('?' * len(chunk))})", tuple(chunk)
            for m in self._infos(f, where, params, envelopes=envelopes, bodystructures=bodystructures):
                out[m.uid] = m
        return out

    def info(self, name: str, uid: int) -> MessageInfo:
        m = self.infos(name, [uid]).get(uid)
        if m is None:
            raise MailboxError(f"no message with UID {uid} in {name}", "NONEXISTENT")
        return m

    def _row(self, name: str, uid: int) -> Any:
        f = self._folder_row(name)
        row = self.db.one("SELECT * FROM messages WHERE folder_id = ? AND uid = ?", (f["id"], uid))
        if row is None:
            raise MailboxError(f"no message with UID {uid} in {name}", "NONEXISTENT")
        return f, row

    def fill_structures(self, name: str, uids: Sequence[int]) -> None:
        """Parse now, in one pass, the MIME trees of those of ``uids`` indexed lazily: a FETCH of
        BODYSTRUCTURE (or of a part) over many such messages — a phone's first sync of the newest
        ones — gets one parse hand-off and one transaction a group, where ``structure`` alone
        makes one of each a message. Nothing to do (all parsed): one indexed query."""
        self._fill_parsed(self._folder_row(name), uids)

    def structure(self, name: str, uid: int) -> Part:
        """The MIME tree with byte offsets (``mime.Part``); ``top.envelope`` holds the ENVELOPE.

        A large tree is loaded in the threadpool (the hub keeps serving); one indexed before the
        part cap is re-parsed, capped, and stored again (see ``_load_structure``)."""
        f, row = self._row(name, uid)
        raw = row["structure"]
        if raw is None:  # indexed lazily: parse it now
            for attempt in (0, 1):
                self._fill_parsed(f, [uid])
                f, row = self._row(name, uid)
                raw = row["structure"]
                if raw is not None:
                    break
                if attempt:
                    raise MailboxError(f"message {uid} vanished from {name}", "EXPUNGEISSUED")
                self.sync(name, force=True)  # its file was renamed behind our back
        if len(raw) <= STRUCTURE_OFF_HUB:
            top = Part.from_json(json.loads(raw))
        else:
            path = str(self._dir(f["name"]) / "cur" / row["name"])
            top, fresh = pools.run_cpu(_load_structure, raw, path)
            if fresh is not None:
                self.db.execute("UPDATE messages SET structure = ? WHERE id = ?", (fresh, row["id"]))
        top.envelope = json.loads(row["envelope"])
        return top

    def open_message(self, name: str, uid: int, file: str = "") -> BinaryIO:
        """The stored file, opened for binary reading (the caller closes it). ``file``: its name
        as ``infos`` just read it (``MessageInfo.file``), tried first: a body FETCH then costs no
        second look-up in the index (~40 us); renamed since (a flag change), it is looked up."""
        if file:
            try:
                return open(f"{self._dir(name)}/cur/{file}", "rb")
            except FileNotFoundError:
                pass
        for attempt in (0, 1):
            f, row = self._row(name, uid)
            try:
                return open(self._dir(f["name"]) / "cur" / row["name"], "rb")
            except FileNotFoundError:
                if attempt:
                    raise MailboxError(f"message {uid} vanished from {name}", "EXPUNGEISSUED") from None
                self.sync(name, force=True)
        raise AssertionError("unreachable")

    def message_bytes(self, name: str, uid: int) -> bytes:
        """The whole message (for small messages only: the webmail's raw download streams instead)."""
        with self.open_message(name, uid) as fh:
            return fh.read()

    def headers(self, name: str, uid: int) -> Message:
        """The top-level header block, parsed (values raw; see textindex.decode_words)."""
        top = self.structure(name, uid)
        with self.open_message(name, uid) as fh:
            return header_message(fh, top)

    # -- writing ----------------------------------------------------------------------------
    def set_flags(
        self,
        name: str,
        uids: Iterable[int],
        flags: Iterable[str],
        mode: str = "add",
        unchanged_since: int | None = None,
    ) -> tuple[list[tuple[int, tuple[str, ...], int]], list[int]]:
        """Change flags (``mode`` add / remove / replace) of ``uids``.

        Returns (changed: [(uid, new flags, modseq)], failed: uids skipped because their
        modseq > ``unchanged_since`` (CONDSTORE)). File names follow the system flags.
        """
        with self.lock:
            f = self._folder_row(name)
            d = self._dir(f["name"])
            want = [canon_flag(x) for x in flags]
            wl = {x.lower() for x in want}
            changed: list[tuple[int, tuple[str, ...], int]] = []
            failed: list[int] = []
            renames: list[tuple[str, str]] = []
            uid_list = sorted(set(uids))
            before = self._scanned.get(f["name"])
            cur = f"{d}/cur/"
            moves: list[tuple[StrPath, StrPath]] = []  # filled below, renamed right after the commit
            runner = self.db.commit_runner

            def commit_then_rename(commit: Callable[[], object]) -> object:
                # The commit, then the renames, in that order. A few messages' worth (a client's
                # STORE of one message): on the hub — a WAL append without fsync and a rename or
                # two are page-cache work of ~50 us, less than a hand-off to the I/O pool (0.1-1
                # ms on a loaded machine, the most of such a STORE's time: strace -T and py-spy,
                # docs/performance.md). The WAL is never checkpointed there (a checkpoint
                # fsyncs): every HUB_COMMITS_MAX-th such commit goes to the pool with the
                # automatic checkpoint on, so the WAL stays bounded. More: one hand-off for both.
                if runner is None:  # an index opened without a pool (not in ``gk serve``)
                    _commit_and_rename(commit, moves)
                elif len(moves) <= HUB_RENAMES_MAX:
                    self._hub_commits += 1
                    conn = self.db.conn
                    conn.execute("PRAGMA wal_autocheckpoint=0")
                    try:
                        _commit_and_rename(commit, moves)
                    finally:
                        conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")
                    if self._hub_commits >= HUB_COMMITS_MAX:
                        # The WAL is checkpointed behind the STORE, not in its path: the commit
                        # that waited for a checkpoint (a copy of the WAL and two fsyncs, 5-20
                        # ms here; after a first SEARCH's text index, much more) cost the 32
                        # STOREs more than all their own commits (bench/imap: flags 2.4x Dovecot)
                        self._hub_commits = 0
                        self._checkpoint_soon()
                else:
                    self._hub_commits = 0
                    pools.run_io(_commit_and_rename, commit, moves)
                return None

            with self.db.relaxed_commits():  # see "Durability" above
                self.db.commit_runner = commit_then_rename
                try:
                    with self.db.transaction() as c:
                        modseq = None
                        # Only the rows the change touches, when SQL can tell (adding: those that
                        # lack a flag; removing: those that have one; flags are ASCII atoms, stored
                        # space-delimited): ``-FLAGS (\Flagged)`` on 1:* of 5,000 messages read and
                        # compared every row in Python (~25 ms) to change the few flagged ones.
                        # Not with UNCHANGEDSINCE (every row named is checked) or a replace.
                        touch = ""
                        touch_args: tuple[str, ...] = ()
                        if unchanged_since is None and mode != "replace" and want and all(x.isascii() for x in wl):
                            test = "instr(lower(flags), ?) = 0" if mode == "add" else "instr(lower(flags), ?) > 0"
                            touch = " AND (" + " OR ".join([test] * len(wl)) + ")"
                            touch_args = tuple(f" {x} " for x in sorted(wl))
                        if touch and len(uid_list) > WIDE_STORE:  # a wide range: one query, then the UIDs named
                            named = set(uid_list)
                            found = c.execute(
                                "SELECT id, uid, name, flags, modseq FROM messages WHERE folder_id = ?"
                                f" AND uid BETWEEN ? AND ?{touch} ORDER BY uid",
                                (f["id"], uid_list[0], uid_list[-1], *touch_args),
                            ).fetchall()
                            spans = [[r for r in found if r["uid"] in named]]
                        else:
                            spans = [
                                c.execute(
                                    f"SELECT id, uid, name, flags, modseq FROM messages WHERE folder_id = ? AND uid IN"
                                    f" ({','.join('?' * len(chunk))}){touch} ORDER BY uid",
                                    (f["id"], *chunk, *touch_args),
                                ).fetchall()
                                for chunk in (uid_list[i : i + 500] for i in range(0, len(uid_list), 500))
                            ]
                        for rows in spans:
                            for r in rows:
                                if unchanged_since is not None and r["modseq"] > unchanged_since:
                                    failed.append(r["uid"])
                                    continue
                                old = flags_tuple(r["flags"])
                                if mode == "replace":
                                    new = want
                                elif mode == "add":
                                    new = list(old) + [x for x in want if x.lower() not in {o.lower() for o in old}]
                                else:
                                    new = [o for o in old if o.lower() not in wl]
                                if {x.lower() for x in new} == {o.lower() for o in old}:
                                    continue
                                if modseq is None:
                                    modseq = self._bump(c, f["id"])
                                base, letters = split_name(r["name"])
                                fname = f"{base}:2,{self._letters(d, new)}"
                                c.execute(
                                    "UPDATE messages SET flags = ?, modseq = ?, name = ? WHERE id = ?",
                                    (flags_text(new), modseq, fname, r["id"]),
                                )
                                if fname != r["name"]:
                                    renames.append((r["name"], fname))
                                changed.append((r["uid"], flags_tuple(flags_text(new)), modseq))
                        moves.extend((cur + src, cur + dst) for src, dst in renames)
                finally:
                    self.db.commit_runner = runner
            # Renamed before the caller answers OK, not fsynced (see "Durability" above): after a
            # power cut the first scan of the folder trusts the index over the file names.
            self._remember_scan(f["name"], before)
        if changed:
            events.publish(events.FlagsChanged(self.address, f["name"], tuple(changed), changed[-1][2]))
        return changed, failed

    def _checkpoint_soon(self) -> None:
        """A passive WAL checkpoint in the I/O pool through a connection of its own, not waited
        for: it neither holds this index's lock nor blocks a writer (SQLite's WAL lets a
        checkpoint run beside readers and writers), so the sessions go on meanwhile. One at a
        time; a failure is logged and the next one (or SQLite's automatic checkpoint) retries."""
        if self._closed or (self._checkpointer is not None and not self._checkpointer.dead):
            return
        self._checkpointer = gevent.spawn(self._checkpoint)

    def _checkpoint(self) -> None:
        try:
            pools.run_io(_checkpoint_wal, self.index_path)
        except Exception:
            log.exception("mailbox %s: WAL checkpoint failed", self.address)

    def append(
        self,
        name: str,
        source: RawMessage | bytes | Path | IO[bytes],
        flags: Iterable[str] = (),
        internaldate: float | None = None,
        tzoffset: int | None = None,
    ) -> tuple[int, int]:
        """Store a message durably (fsync file and dir) in folder ``name``; returns (uidvalidity, uid).
        One of the writer paths of ``writer.py``: indexed at once, announced once.

        ``source`` is a ``RawMessage`` (or bytes, a path — copied, not moved — or a readable
        binary file, streamed and left open).
        ``internaldate`` (unix seconds, default now) is shown in zone ``tzoffset`` (minutes east
        of UTC, default the server's zone at that time).
        """
        self._join_build()
        f = self._folder_row(name)
        d = self._dir(f["name"])
        tmp = maildir.write_tmp(d, RawMessage.of(source).chunks())
        try:
            if internaldate is not None:
                os.utime(tmp, (internaldate, internaldate))
            st = tmp.stat()
            size = st.st_size
            when = int(st.st_mtime)
            dates = [(when, self._local_offset(when) if tzoffset is None else tzoffset)]
            fl = [canon_flag(x) for x in flags]
            letters = self._letters(d, fl)
            with self.lock:
                self.sync(f["name"])  # UIDs found in file names are taken before we pick the next
                f = self._folder_row(f["name"])
                uid = int(f["uidnext"])
                target = d / "cur" / f"{uidlist.with_uid(f'{tmp.name},S={size}', uid)}:2,{letters}"
                before = self._scanned.get(f["name"])
                os.rename(tmp, target)
                maildir.fsync_dir(d / "cur")
                try:
                    self._index_files(f, d, [target.name], [x for x in fl if x not in _LETTER], dates, uids=[uid])
                except sqlite3.DatabaseError as exc:
                    if not is_corruption(exc):
                        raise
                    # The message is stored, its UID in its name: the rebuilt index has it.
                    self._recover(exc)
                    self.sync(f["name"])
                    f = self._folder_row(f["name"])
                    if not self.infos(f["name"], [uid]):
                        raise
                self._remember_scan(f["name"], before)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        writer.announce_new(self.address, f["name"], (uid,), self.highestmodseq(f["name"]))
        return f["uidvalidity"], uid

    def copy(self, name: str, uids: Iterable[int], dest: str) -> tuple[int, list[tuple[int, int]]]:
        """Copy messages (with flags, internal dates and their zones) to ``dest``: (dest uidvalidity,
        [(src, new uid)])."""
        with self.lock:
            f = self._folder_row(name)
            self.sync(dest)  # UIDs found in file names are taken before we pick the next
            g = self._folder_row(dest)
            src_dir, dst_dir = self._dir(f["name"]), self._dir(g["name"])
            rows = self.db.query(
                "SELECT uid, name, flags, internaldate, tzoffset FROM messages WHERE folder_id = ? ORDER BY uid",
                (f["id"],),
            )
            want = set(uids)
            pairs: list[tuple[int, int]] = []
            before = self._scanned.get(g["name"])
            names: list[tuple[int, str, list[str], tuple[int, int], int]] = []
            nxt = int(g["uidnext"])
            for r in rows:
                if r["uid"] not in want:
                    continue
                base, letters = split_name(r["name"])
                new_base = maildir.unique_name() + "," + ",".join(base.split(",")[1:]) if "," in base else None
                keywords = [x for x in flags_tuple(r["flags"]) if x not in _LETTER]
                sysflags = [x for x in flags_tuple(r["flags"]) if x in _LETTER]
                new_base = uidlist.with_uid(new_base or maildir.unique_name(), nxt)
                new_name = new_base + ":2," + self._letters(dst_dir, sysflags + keywords)
                src = src_dir / "cur" / r["name"]
                dst = dst_dir / "cur" / new_name
                try:
                    os.link(src, dst)  # same file system: a hard link is an atomic, free copy
                except FileNotFoundError:
                    continue
                except OSError:
                    shutil.copyfile(src, dst)
                names.append((r["uid"], new_name, keywords, (r["internaldate"], r["tzoffset"]), nxt))
                nxt += 1
            if names:
                maildir.fsync_dir(dst_dir / "cur")
            for src_uid, new_name, keywords, date, new_uid in names:
                if self._index_files(g, dst_dir, [new_name], keywords, [date], uids=[new_uid]):
                    pairs.append((src_uid, new_uid))
            self._remember_scan(g["name"], before)
        if pairs:
            top = self.highestmodseq(g["name"])
            events.publish(events.MessagesAdded(self.address, g["name"], tuple(u for _, u in pairs), top))
        return g["uidvalidity"], pairs

    def move(self, name: str, uids: Iterable[int], dest: str) -> tuple[int, list[tuple[int, int]]]:
        """Move messages to ``dest``: (dest uidvalidity, [(old uid, new uid)]).

        Atomic for an observer after a crash: each file is renamed into ``dest`` with its new UID
        in its name (one rename: it is in one folder or the other, never both, never neither),
        both directories are fsynced, then one index transaction moves the rows (their parsed
        structure and text index with them). A crash before that commit leaves index rows whose
        files are gone (expunged by the next sync of the source) and files the index does not
        know yet (indexed by the next sync of ``dest`` under the UIDs in their names)."""
        with self.lock:
            f = self._folder_row(name)
            self.sync(dest)
            g = self._folder_row(dest)
            src_dir, dst_dir = self._dir(f["name"]), self._dir(g["name"])
            want = sorted(set(uids))
            rows = []
            for i in range(0, len(want), 500):
                chunk = want[i : i + 500]
                rows += self.db.query(
                    f"SELECT id, uid, name, flags FROM messages WHERE folder_id = ? AND uid IN"
                    f" ({','.join('?' * len(chunk))}) ORDER BY uid",
                    (f["id"], *chunk),
                )
            if not rows:
                return g["uidvalidity"], []
            self._persist_floor(f, src_dir, rows[-1]["uid"] + 1)
            src_before, dst_before = self._scanned.get(f["name"]), self._scanned.get(g["name"])
            nxt = int(g["uidnext"])
            plan: list[tuple[Any, int, str]] = []  # (row, new uid, new file name)
            for r in rows:
                base = split_name(r["name"])[0]
                new_name = f"{uidlist.with_uid(base, nxt)}:2,{self._letters(dst_dir, flags_tuple(r['flags']))}"
                plan.append((r, nxt, new_name))
                nxt += 1
            renames = [(src_dir / "cur" / r["name"], dst_dir / "cur" / n) for r, _, n in plan]
            done = pools.run_io(_rename_batch, renames, [dst_dir / "cur", src_dir / "cur"])
            moved = [(r, u, n) for r, u, n in plan if dst_dir / "cur" / n in done]
            with self.db.transaction() as c:
                src_modseq = self._bump(c, f["id"])
                dst_modseq = self._bump(c, g["id"])
                c.executemany(
                    "UPDATE messages SET folder_id = ?, uid = ?, base = ?, name = ?, modseq = ? WHERE id = ?",
                    [(g["id"], u, split_name(n)[0], n, dst_modseq, r["id"]) for r, u, n in moved],
                )
                self._tombstones(c, f["id"], [r["uid"] for r, _, _ in moved], src_modseq)
                c.execute("UPDATE folders SET uidnext = max(uidnext, ?) WHERE id = ?", (nxt, g["id"]))
            self._remember_scan(f["name"], src_before)
            self._remember_scan(g["name"], dst_before)
        if moved:
            events.publish(events.Expunged(self.address, f["name"], tuple(r["uid"] for r, _, _ in moved), src_modseq))
            events.publish(events.MessagesAdded(self.address, g["name"], tuple(u for _, u, _ in moved), dst_modseq))
        return g["uidvalidity"], [(r["uid"], u) for r, u, _ in moved]

    def expunge(self, name: str, uids: Iterable[int] | None = None) -> list[int]:
        """Remove messages flagged ``\\Deleted`` (only those in ``uids`` if given); returns their UIDs."""
        with self.lock:
            f = self._folder_row(name)
            rows = self.db.query(
                "SELECT uid FROM messages WHERE folder_id = ? AND instr(flags, ' \\Deleted ') > 0", (f["id"],)
            )
            victims = [r[0] for r in rows]
            if uids is not None:
                allowed = set(uids)
                victims = [u for u in victims if u in allowed]
            return self._expunge(name, victims)

    def _expunge(self, name: str, uids: list[int]) -> list[int]:
        f = self._folder_row(name)
        d = self._dir(f["name"])
        if not uids:
            return []
        before = self._scanned.get(f["name"])
        rows = []
        for i in range(0, len(uids), 500):
            chunk = uids[i : i + 500]
            rows += self.db.query(
                f"SELECT id, uid, name FROM messages WHERE folder_id = ? AND uid IN ({','.join('?' * len(chunk))})",
                (f["id"], *chunk),
            )
        if not rows:
            return []
        # Files first (off the hub), rows after: a crash in between leaves rows without files,
        # which the next sync expunges; never files without rows (they would come back).
        self._persist_floor(f, d, max(r["uid"] for r in rows) + 1)
        pools.run_io(_unlink_batch, [d / "cur" / r["name"] for r in rows], d / "cur")
        done = [r["uid"] for r in rows]
        with self.db.transaction() as c:
            modseq = self._bump(c, f["id"])
            c.executemany("DELETE FROM messages WHERE id = ?", [(r["id"],) for r in rows])
            self._tombstones(c, f["id"], done, modseq)
        self._remember_scan(f["name"], before)
        if done:
            events.publish(events.Expunged(self.address, f["name"], tuple(sorted(done)), modseq))
        return sorted(done)

    def delete_messages(self, name: str, uids: Iterable[int]) -> None:
        """The webmail's delete: move to Trash, or remove for good when already in Trash."""
        uids = list(uids)
        if self._folder_row(name)["special"] == "\\Trash":
            with self.lock:
                self._expunge(name, uids)
        else:
            self.move(name, uids, "Trash")

    # -- search -----------------------------------------------------------------------------
    def search(self, name: str, criteria: Criteria) -> list[int]:
        """UIDs matching ``criteria`` (see ``gk.mail.mailbox.query``), ascending.

        The query runs in the native threadpool on a read-only connection of its own (a BODY or
        HEADER search of a big folder takes seconds): the lock is held, the hub keeps serving
        others, and nothing that reads this index on the shared connection meanwhile waits for
        the query (SQLite serializes one connection across threads; WAL lets readers run side
        by side)."""
        with self.lock:
            f = self._folder_row(name)
            params: list[Any] = [f["id"]]
            where = compile_criteria(criteria, params)
            if "fts" in where or "sentdate" in where:  # needs what lazily indexed messages lack yet
                self._fill_parsed(f, None)
            sql = f"SELECT m.uid FROM messages m WHERE m.folder_id = ? AND {where} ORDER BY m.uid"
            cur = self._dir(f["name"]) / "cur"
            rows = pools.run_io(_search_rows, self.db.path, sql, params, cur)
            return [r[0] for r in rows]

    def search_text(self, name: str, text: str) -> list[int]:
        """The webmail's search box: UIDs whose headers or body contain ``text``."""
        return self.search(name, ("text", text))

    def _sql_header(self, folder_id: int, fname: str, field: str, text: str) -> bool:
        row = self.db.conn.execute("SELECT name FROM folders WHERE id = ?", (folder_id,)).fetchone()
        if row is None:
            return False
        return _header_matches(self._dir(row[0]) / "cur" / fname, field, text)

    def close(self) -> None:
        """Close the index cleanly: the marker goes, so the next open skips ``quick_check``."""
        self._closed = True  # the background indexer stops at its next step
        self._join_build()  # rows a client was shown are written before the index closes
        self._join_wiring()
        if self._checkpointer is not None:
            self._checkpointer.join(10)  # its own connection: done before the index closes
        with self.lock:
            self.db.close()
            self._marker.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                maildir.fsync_dir(self._marker.parent)


# Public operations that recover from a damaged index: the index is quarantined and rebuilt
# from the Maildir (same UIDs), then the operation runs again. Those that change the Maildir
# are only retried where running them twice is harmless; APPEND handles its own case.
_RETRIED = (
    "folder_names list_folders folders folder create_folder delete_folder rename_folder subscribe sync uids"
    " highestmodseq sync_modseq uidnext recent_uid claim_recent vanished count_above keywords first_unseen"
    " changes_since messages infos flag_rows info fill_structures structure open_message message_bytes headers set_flags"
    " expunge search search_text"
).split()
_NOT_RETRIED = ("copy", "move", "delete_messages")
# Public operations answered from memory, for the folder being built, while its first build is
# committed (``_defer_build``): what SELECT / EXAMINE and the checks before each command ask.
_FROM_BUILD = frozenset(
    "folder uids keywords first_unseen claim_recent recent_uid highestmodseq uidnext sync sync_modseq flag_rows".split()
)


def _recovering(fn: Callable[..., Any], retry: bool) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(self: UserMailbox, *args: Any, **kwargs: Any) -> Any:
        self._touched = time.monotonic()
        try:
            if self._build is not None and not self._answers_from_build(fn.__name__, args):
                self._join_build()
            return fn(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if not is_corruption(exc):
                raise
            self._recover(exc)
            if args and isinstance(args[0], str):  # the folder the call is about: refill it first
                with contextlib.suppress(MailboxError):
                    self.sync(args[0])
            if retry:
                return fn(self, *args, **kwargs)
            raise MailboxError(
                "the mail index was damaged and has been rebuilt from the Maildir; check the result and retry",
                "UNAVAILABLE",
            ) from None

    return wrapper


for _name in _RETRIED:
    setattr(UserMailbox, _name, _recovering(getattr(UserMailbox, _name), retry=True))
for _name in _NOT_RETRIED:
    setattr(UserMailbox, _name, _recovering(getattr(UserMailbox, _name), retry=False))


def _rename_batch(renames: Sequence[tuple[StrPath, StrPath]], dirs: list[Path]) -> set[StrPath]:
    """Rename files (runs in the threadpool), then fsync ``dirs``: the renames are durable."""
    done: set[StrPath] = set()
    for src, dst in renames:
        try:
            os.rename(src, dst)
        except FileNotFoundError:
            continue
        done.add(dst)
    for d in dirs:
        maildir.fsync_dir(d)
    return done


@dataclass(slots=True)
class _Build:
    """A folder's first index build, shown from memory while its rows are written (``_defer_build``)."""

    name: str
    row: dict[str, Any]  # the folder's index row as it is once the rows are committed
    job: gevent.Greenlet | None = None  # the writer (``_commit_build``)
    failed: bool = False  # its rows were not written
    # the UIDs and their flags texts the rows get (in UID order), for ``flag_rows``
    listing: tuple[Sequence[int], Sequence[str]] = ((), ())
    flags: dict[int, str] | None = None  # ``listing`` as a dict, made at its first use
    fresh: frozenset[int] = frozenset()  # the UIDs of files from new/ (the others: ``imported``)


_SIZE_FIELD = re.compile(r",S=(\d{1,15})(?=[,:]|$)")
_SIZE_FIELD_M = re.compile(r",S=(\d{1,15})(?=[,:\n]|$)", re.MULTILINE)  # in names joined by newlines


def _list_folder(cur: str, new: str) -> tuple[list[str], list[str]]:
    """The file names in a Maildir's ``cur/`` and, sorted, ``new/`` (dot files left out); in the
    I/O pool: on a cold SD card a directory of thousands of files is read from the card."""
    listed = [n for n in os.listdir(cur) if not n.startswith(".")]
    return listed, sorted(n for n in os.listdir(new) if not n.startswith("."))


def _size_in_name(fname: str) -> int | None:
    """The ``,S=<size>`` of a Maildir file name, None without one."""
    m = _SIZE_FIELD.search(fname)
    return int(m.group(1)) if m else None


def _views_from(uids: list[int], size: int, texts: list[str]) -> dict[str, Any]:
    """``_views_of`` for a folder built from a listing: its UIDs, their flags texts (one object
    per distinct text) and the total size."""
    unseen_text = {t: " \\Seen " not in t for t in set(texts)}
    unseen = [u for u, t in zip(uids, texts, strict=True) if unseen_text[t]]
    return {
        "counts": (len(uids), size, len(unseen)),
        "uids": array("I", sorted(uids)),
        "keywords": sorted({k for t in unseen_text for k in t.split() if not k.startswith("\\")}),
        "first_unseen": min(unseen) if unseen else None,
    }


def _views_of(rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    """``_folder_view``'s values of a folder made of ``rows`` (``_index_lazy_in_pool``'s: uid at 1,
    size at 4, flags text at 7), the same the queries of ``folder``, ``uids``, ``keywords`` and
    ``first_unseen`` give."""
    unseen = [r[1] for r in rows if " \\Seen " not in r[7]]
    return {
        "counts": (len(rows), sum(r[4] for r in rows), len(unseen)),
        "uids": array("I", sorted(r[1] for r in rows)),
        "keywords": sorted({k for r in rows for k in r[7].split() if not k.startswith("\\")}),
        "first_unseen": min(unseen) if unseen else None,
    }


def _stat_files(cur: str, names: list[str]) -> list[tuple[int, float] | None]:
    """(size, mtime) of each file ``cur + name`` (in the I/O pool); None for one gone."""
    out: list[tuple[int, float] | None] = []
    try:
        fd = os.open(cur, os.O_RDONLY | os.O_DIRECTORY)  # names resolved in the directory, not the whole path
    except FileNotFoundError:
        return [None] * len(names)
    try:
        for name in names:
            try:
                st = os.stat(name, dir_fd=fd)
            except FileNotFoundError:
                out.append(None)
                continue
            out.append((st.st_size, st.st_mtime))
    finally:
        close_fd(fd)
    return out


def _checkpoint_wal(index: Path) -> None:
    """``PRAGMA wal_checkpoint(PASSIVE)`` of ``index`` on a short-lived connection (a pool thread)."""
    conn = sqlite3.connect(index, timeout=1.0, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    finally:
        conn.close()


def _commit_and_rename(commit: Callable[[], object], renames: Sequence[tuple[StrPath, StrPath]]) -> None:
    """A flag change's COMMIT, then its file renames (no fsync), in one pool hand-off."""
    commit()
    _rename_batch(renames, [])


def _unlink_batch(paths: list[Path], d: Path) -> None:
    """Remove files (runs in the threadpool), then fsync their directory."""
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)
    maildir.fsync_dir(d)


def _header_matches(path: Path, field: str, text: str) -> bool:
    """SEARCH HEADER: whether a ``field`` of the message file at ``path`` contains ``text``."""
    try:
        with open(path, "rb") as fh:
            from gk.mail.mailbox.mime import MAX_HEADER

            head = fh.read(MAX_HEADER)
    except FileNotFoundError:
        return False
    end = head.find(b"\r\n\r\n")
    head = head[: end if end >= 0 else len(head)]
    from email.parser import BytesHeaderParser

    msg = BytesHeaderParser().parsebytes(head)  # compat32, its default
    values = msg.get_all(field) or []
    needle = text.lower()
    return any(needle in decode_words(v).lower() or needle in str(v).lower() for v in values)


def _search_rows(index: Path, sql: str, params: list[Any], cur: Path) -> list[Any]:
    """Run in a native thread: one search on its own read-only connection to the index, with
    ``gk_header`` reading the searched folder's files (``cur``)."""
    conn = sqlite3.connect(index.resolve().as_uri() + "?mode=ro", uri=True, timeout=10.0, check_same_thread=False)
    try:
        conn.execute("PRAGMA cache_size=-256")
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.create_function(
            "gk_header",
            4,
            lambda _folder, fname, field, text: _header_matches(cur / fname, field, text),
            deterministic=True,
        )
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _like_prefix(name: str) -> str:
    return name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"


class MailboxStore:
    """All users' mailboxes; ``ctx.services.require(MailboxStore)`` in ``gk serve``.

    ``user(address)`` returns the ``UserMailbox`` of an address the caller has authenticated
    (cached; at most ``max_open`` idle users keep their index open). Callers that hold one for
    a long time (an IMAP session) use ``acquire`` / ``release`` so it is not closed under them.
    """

    name = "mailbox"

    def __init__(self, mail_root: Path, max_open: int = 32, zone: ZoneSource | None = None):
        self.mail_root = mail_root
        self.max_open = max_open
        self.zone = zone  # the server's time zone for mail that comes without one (None: UTC)
        self._open: OrderedDict[str, UserMailbox] = OrderedDict()
        self._opening = gevent.lock.RLock()  # opening may wait on the threadpool (quick_check)
        self.listeners: list[tuple[str, str, int]] = []

    def user(self, address: str) -> UserMailbox:
        address = address.strip().lower()
        if not address or "/" in address or address.startswith(".") or "\x00" in address:
            raise MailboxError(f"bad address {address!r}")
        with self._opening:
            mb = self._open.get(address)
            if mb is None:
                mb = UserMailbox(self.mail_root, address, self.zone)
                self._open[address] = mb
            self._open.move_to_end(address)
            self._trim()
            return mb

    def acquire(self, address: str) -> UserMailbox:
        mb = self.user(address)
        mb.users += 1
        return mb

    def release(self, mb: UserMailbox) -> None:
        mb.users = max(0, mb.users - 1)
        self._trim()

    def _trim(self) -> None:
        idle = [a for a, m in self._open.items() if m.users == 0]
        while len(self._open) > self.max_open and idle:
            addr = idle.pop(0)
            self._open.pop(addr).close()

    def clean_tmp(self, older_than: float = 0.0) -> int:
        """Remove the files a crash left in the ``tmp/`` of every user's folders (never
        acknowledged, so never promised); at start, before any writer runs. Returns how many."""
        return sum(maildir.clean_tmp(md, older_than) for md in maildir.all_maildirs(self.mail_root))

    def stop(self, grace: float) -> None:
        for mb in self._open.values():
            with contextlib.suppress(Exception):
                mb.close()
        self._open.clear()
