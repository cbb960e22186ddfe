"""The per-user SQLite index of a user's Maildirs (``mail/<address>/index.sqlite3``).

The Maildir is the source of truth; this file caches what IMAP needs fast: per folder the
UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and the highest UID claimed as \\Recent; per message its
UID (strictly ascending, never reused inside one UIDVALIDITY), Maildir base name and current
file name, size, internal date (UTC seconds) and its zone (minutes east of UTC), Date header, flags (system flags and a folder's first 26
keywords mirrored into the ``:2,`` info of the file name, keywords as a–z through Dovecot's
``dovecot-keywords`` map), MODSEQ and the cached ENVELOPE and MIME structure (JSON), the
ENVELOPE also in IMAP's wire form once a FETCH asked for it; and an
FTS5 trigram table over decoded headers and body text (the last three filled lazily for a
folder first seen with many messages: see ``store._index_files``); and per folder the UIDs expunged
recently with the MODSEQ of their expunge (QRESYNC's VANISHED). Lost or corrupt, it is rebuilt from the
Maildir (flags from file names, internal dates from file mtimes, their zone the server's
zone at that time) with the same UIDVALIDITYs and UIDs (kept in the Maildir, see ``uidlist``).

Damage (SQLITE_CORRUPT / SQLITE_NOTADB, as a torn write on an SD card leaves) is found when
opening (``PRAGMA quick_check`` when the last run did not close the index cleanly) or by any
query later (``UserMailbox`` recovers): the damaged file is moved aside as
``index.sqlite3.corrupt-<UTC time>`` (the newest ``KEEP_QUARANTINED`` are kept for a post-mortem)
and a fresh index is built from the Maildir.

Cost: about 1–2 KB per message plus the FTS content and trigram index (~3–4× the indexed text,
which is capped at 1 MB per message); SQLite page cache 512 KB per open user.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

from gk import pools
from gk.store import Database, open_database
from gk.store.files import fsync_dir

log = logging.getLogger("gk.mailbox")

MIGRATIONS = [
    """
    CREATE TABLE folders (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        uidvalidity INTEGER NOT NULL,
        uidnext INTEGER NOT NULL DEFAULT 1,
        highestmodseq INTEGER NOT NULL DEFAULT 1,
        subscribed INTEGER NOT NULL DEFAULT 1,
        special TEXT
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
        uid INTEGER NOT NULL,
        base TEXT NOT NULL,
        name TEXT NOT NULL,
        size INTEGER NOT NULL,
        internaldate INTEGER NOT NULL,
        sentdate INTEGER,
        flags TEXT NOT NULL DEFAULT ' ',
        modseq INTEGER NOT NULL,
        envelope TEXT,
        structure TEXT,
        UNIQUE (folder_id, uid),
        UNIQUE (folder_id, base)
    );
    CREATE INDEX messages_modseq ON messages(folder_id, modseq);
    CREATE VIRTUAL TABLE fts USING fts5(hfrom, hto, hcc, hbcc, subject, headers, body, tokenize='trigram');
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        DELETE FROM fts WHERE rowid = old.id;
    END;
    """,
    # IMAP \Recent (RFC 3501 2.3.2): the highest UID some read-write session has claimed as
    # recent; messages above it are recent for the next session to report them. Messages that
    # existed before this migration count as already seen (no burst of \Recent on upgrade).
    """
    ALTER TABLE folders ADD COLUMN recentuid INTEGER NOT NULL DEFAULT 0;
    UPDATE folders SET recentuid = uidnext - 1;
    """,
    # QRESYNC (RFC 7162): expunged UIDs with the MODSEQ of their expunge, so a client that
    # resynchronizes from a MODSEQ learns exactly which UIDs vanished since. Bounded: the oldest
    # tombstones are pruned (store.MAX_TOMBSTONES), and ``expungedfloor`` says up to which
    # MODSEQ they may be missing; below it VANISHED is answered conservatively (every UID in the
    # asked range that no longer exists, RFC 7162 3.6). Expunges from before this migration are
    # unknown: the floor starts at the folder's current HIGHESTMODSEQ.
    """
    CREATE TABLE expunged (
        folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
        uid INTEGER NOT NULL,
        modseq INTEGER NOT NULL,
        PRIMARY KEY (folder_id, uid)
    ) WITHOUT ROWID;
    CREATE INDEX expunged_modseq ON expunged(folder_id, modseq);
    ALTER TABLE folders ADD COLUMN expungedfloor INTEGER NOT NULL DEFAULT 0;
    UPDATE folders SET expungedfloor = highestmodseq;
    """,
    # INTERNALDATE's zone (RFC 3501 2.3.3, 6.3.11): APPEND's date-time carries one and FETCH
    # gives it back as given; SEARCH BEFORE/ON/SINCE compare the calendar date in that zone.
    # Minutes east of UTC; messages indexed before this migration were shown in UTC: 0.
    """
    ALTER TABLE messages ADD COLUMN tzoffset INTEGER NOT NULL DEFAULT 0;
    """,
    # Lazy indexing (store._index_files): a big folder's first scan stores UIDs, flags, sizes and
    # dates only; ``structure IS NULL`` marks a message not parsed yet (no FTS row, maybe no
    # ENVELOPE), found through this small partial index by the background indexer and SEARCH.
    """
    CREATE INDEX IF NOT EXISTS messages_unparsed ON messages(folder_id, uid) WHERE structure IS NULL;
    """,
    # The ENVELOPE in IMAP's wire form (``envelope.wire``), made at the first FETCH ENVELOPE of
    # the message and kept: later ones are a read of these bytes. NULL: not made yet.
    """
    ALTER TABLE messages ADD COLUMN envwire BLOB;
    """,
    # The BODYSTRUCTURE in IMAP's wire form (``bodywire.wire``), made when the message is parsed
    # (or, indexed lazily, at the first FETCH BODYSTRUCTURE) and kept. NULL: not made yet.
    """
    ALTER TABLE messages ADD COLUMN bswire BLOB;
    """,
]


KEEP_QUARANTINED = 3
_CORRUPTION = (11, 26)  # SQLITE_CORRUPT (and its extended codes), SQLITE_NOTADB


def is_corruption(exc: BaseException) -> bool:
    """A damaged database file, as opposed to a full disk, a lock or a bug in a query."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _CORRUPTION
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


def quick_check(path: Path) -> str | None:
    """Run ``PRAGMA quick_check`` on its own connection; None if the file is sound, else why not.

    Reads every page (seconds on a large index on an SD card): call it off the hub."""
    try:
        conn = sqlite3.connect(path, timeout=10.0)
        try:
            rows = conn.execute("PRAGMA quick_check(5)").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        if is_corruption(exc):
            return str(exc)
        raise
    if rows == [("ok",)]:
        return None
    return "; ".join(str(r[0]) for r in rows)


def quarantine(path: Path, reason: str) -> Path:
    """Move a damaged index (and its WAL) aside, keep it, say so in the log; returns the new name."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while dest.exists():
        n += 1
        dest = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    for suffix in ("", "-wal"):
        src = Path(str(path) + suffix)
        if src.exists():
            os.rename(src, Path(str(dest) + suffix))
    Path(str(path) + "-shm").unlink(missing_ok=True)
    old = sorted(p for p in path.parent.glob(f"{path.name}.corrupt-*") if not p.name.endswith("-wal"))
    for p in old[:-KEEP_QUARANTINED]:
        p.unlink(missing_ok=True)
        Path(str(p) + "-wal").unlink(missing_ok=True)
    fsync_dir(path.parent)
    log.error(
        "mail index %s is damaged (%s): moved aside to %s; rebuilding it from the Maildir", path, reason, dest.name
    )
    return dest


def open_index(path: Path, check: bool = False) -> Database:
    """Open a user's index; a damaged one is quarantined and a fresh one (filled by sync) made.

    ``check``: the last run did not close this index cleanly, so run ``PRAGMA quick_check``
    first (in the disk-I/O pool: it reads the whole file)."""
    if check and path.exists():
        problem = pools.run_io(quick_check, path)
        if problem:
            quarantine(path, f"quick_check after an unclean shutdown: {problem}")
    db = None
    try:
        # A new index is made without an fsync per migration (7 of them, ~5 ms of a first login):
        # its first FULL commit (the user's folders) fsyncs the WAL with all of them in it, and an
        # index cut short before that is merely made again.
        fresh = not path.exists()
        db = open_database(path, MIGRATIONS, cache_kib=512, synchronous="OFF" if fresh else "FULL")
        if fresh:
            db.execute("PRAGMA synchronous=FULL")
        db.one("SELECT count(*) FROM folders")
        db.commit_runner = pools.run_io  # a synchronous=FULL commit waits on the disk, not the hub
        return db
    except sqlite3.DatabaseError as exc:
        if not is_corruption(exc):
            raise
        if db is not None:
            db.close()
        quarantine(path, str(exc))
        db = open_database(path, MIGRATIONS, cache_kib=512)
        db.commit_runner = pools.run_io
        return db
