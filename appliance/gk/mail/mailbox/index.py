"""The per-user SQLite index of a user's Maildirs (``mail/<address>/index.sqlite3``).

The Maildir is the source of truth; this file caches what IMAP needs fast: per folder the
UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and the highest UID claimed as \\Recent; per message its
UID (strictly ascending, never reused inside one UIDVALIDITY), Maildir base name and current
file name, size, internal date (UTC seconds) and its zone (minutes east of UTC), Date header, flags (system flags and a folder's first 26
keywords mirrored into the ``:2,`` info of the file name, keywords as a–z through Dovecot's
``dovecot-keywords`` map), MODSEQ and the cached ENVELOPE and MIME structure (JSON); and an
FTS5 trigram table over decoded headers and body text; and per folder the UIDs expunged
recently with the MODSEQ of their expunge (QRESYNC's VANISHED). Lost or corrupt, it is rebuilt from the
Maildir (flags from file names, internal dates from file mtimes, their zone the server's
zone at that time) with fresh UIDVALIDITYs.

Cost: about 1–2 KB per message plus the FTS content and trigram index (~3–4× the indexed text,
which is capped at 1 MB per message); SQLite page cache 512 KB per open user.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from gk.store import Database, open_database

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
]


def open_index(path: Path) -> Database:
    """Open a user's index, rebuilding it (empty, then filled by sync) if it is unreadable."""
    try:
        db = open_database(path, MIGRATIONS, cache_kib=512)
        db.one("SELECT count(*) FROM folders")
        return db
    except sqlite3.DatabaseError as exc:
        log.warning("mail index %s unreadable (%s): rebuilding from the Maildir", path, exc)
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        return open_database(path, MIGRATIONS, cache_kib=512)
