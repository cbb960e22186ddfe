"""The outbound queue's durable state: ``DATA_DIR/queue.sqlite3`` plus spool files.

A message body is stored once, as ``DATA_DIR/spool/queue/<uuid>.eml`` (written in chunks,
fsynced, renamed, directory fsynced), and shared by its recipients; SQLite
(``synchronous=FULL``) holds one ``messages`` row and one ``recipients`` row per remote
recipient with its state, attempt count, next attempt time and last reply. ``add`` returns
only after both are on disk, so a caller may answer ``250``. A message whose recipients are
all finished (sent or bounced) is removed with its spool file; a spool file without a row
(a crash between the file and the commit) is removed at start, and so is a message whose
recipients all finished just before a crash (``finish_done_messages``).

State of a recipient: ``queued`` (waiting or being tried) → ``sent`` | ``bounced``.
Finished recipients are deleted with their message, so the tables hold only pending mail;
``attempts`` keeps the last 20 attempts per recipient for ``gk queue show``.
Cost: a few hundred bytes of SQLite per recipient; bodies stay on disk.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gk import pools
from gk.store import Database, open_database
from gk.store.files import fsync_dir

MIGRATIONS = [
    """
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,  -- ids are never reused: logs and `gk queue` stay unambiguous
        mail_from TEXT NOT NULL,
        user TEXT NOT NULL,
        spool TEXT NOT NULL,
        size INTEGER NOT NULL,
        created REAL NOT NULL,
        header_from TEXT NOT NULL DEFAULT '',
        subject TEXT NOT NULL DEFAULT '',
        message_id TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE recipients (
        id INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        rcpt TEXT NOT NULL,
        domain TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'queued',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt REAL NOT NULL,
        last_attempt REAL,
        last_error TEXT NOT NULL DEFAULT '',
        last_host TEXT NOT NULL DEFAULT '',
        delay_warned INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX recipients_due ON recipients(state, next_attempt);
    CREATE INDEX recipients_message ON recipients(message_id);
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        recipient_id INTEGER NOT NULL REFERENCES recipients(id) ON DELETE CASCADE,
        ts REAL NOT NULL,
        host TEXT NOT NULL,
        outcome TEXT NOT NULL,
        reply TEXT NOT NULL
    );
    CREATE INDEX attempts_recipient ON attempts(recipient_id);
    """,
]


@dataclass
class Attempt:
    recipient_id: int
    host: str
    outcome: str  # sent | bounced | deferred
    reply: str
    next_attempt: float | None = None
    delay_warned: bool | None = None


class QueueStore:
    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.spool_dir = data_dir / "spool" / "queue"
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self.db: Database = open_database(data_dir / "queue.sqlite3", MIGRATIONS, synchronous="FULL")
        self.db.commit_runner = pools.run_io  # the commit's fsync waits in the disk-I/O pool

    # -- spool files ---------------------------------------------------------------------
    def spool_path(self, name: str) -> Path:
        return self.spool_dir / name

    def write_spool(self, prefix: bytes, source: Path) -> tuple[str, int]:
        """Copy ``prefix`` + the file ``source`` into a new durable spool file; returns (name, size)."""
        import uuid  # at the first spooled message, not at start

        name = f"{uuid.uuid4().hex}.eml"
        tmp = self.spool_dir / f"{name}.tmp"
        size = 0
        with open(tmp, "xb") as out, open(source, "rb") as src:
            out.write(prefix)
            size += len(prefix)
            while chunk := src.read(256 * 1024):
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.rename(tmp, self.spool_dir / name)
        fsync_dir(self.spool_dir)
        return name, size

    def clean_orphans(self) -> int:
        """Remove spool files no message refers to (left by a crash before the commit)."""
        known = {r["spool"] for r in self.db.query("SELECT spool FROM messages")}
        removed = 0
        for entry in os.scandir(self.spool_dir):
            if entry.name not in known:
                os.unlink(entry.path)
                removed += 1
        return removed

    def finish_done_messages(self) -> int:
        """Remove every message whose recipients are all finished, with its spool file.

        ``record_attempts`` (which ends a recipient) and ``finish_message_if_done`` are two
        commits: a kill -9 between them leaves a row whose recipients are all ``sent`` or
        ``bounced`` and that nothing would ever pick up again. Called at start."""
        rows = self.db.query(
            "SELECT id FROM messages m WHERE NOT EXISTS"
            " (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.state = 'queued')"
        )
        return sum(1 for r in rows if self.finish_message_if_done(int(r["id"])))

    # -- messages ------------------------------------------------------------------------
    def add(
        self,
        mail_from: str,
        recipients: list[str],
        spool: str,
        size: int,
        *,
        user: str,
        header_from: str = "",
        subject: str = "",
        message_id: str = "",
    ) -> int:
        now = time.time()
        with self.db.transaction() as c:
            cur = c.execute(
                "INSERT INTO messages(mail_from, user, spool, size, created, header_from, subject, message_id)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (mail_from, user, spool, size, now, header_from[:300], subject[:300], message_id[:300]),
            )
            msg_id = int(cur.lastrowid or 0)
            for rcpt in dict.fromkeys(recipients):
                domain = rcpt.rpartition("@")[2].lower()
                c.execute(
                    "INSERT INTO recipients(message_id, rcpt, domain, next_attempt) VALUES (?,?,?,?)",
                    (msg_id, rcpt, domain, now),
                )
        return msg_id

    def message(self, msg_id: int) -> dict[str, Any] | None:
        row = self.db.one("SELECT * FROM messages WHERE id = ?", (msg_id,))
        return dict(row) if row else None

    def recipients_of(self, msg_id: int) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.query("SELECT * FROM recipients WHERE message_id = ? ORDER BY id", (msg_id,))]

    def attempts_of(self, recipient_id: int) -> list[dict[str, Any]]:
        rows = self.db.query("SELECT * FROM attempts WHERE recipient_id = ? ORDER BY id", (recipient_id,))
        return [dict(r) for r in rows]

    def due(self, now: float, limit: int = 1000) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT id, message_id, domain FROM recipients WHERE state = 'queued' AND next_attempt <= ?"
            " ORDER BY next_attempt, id LIMIT ?",
            (now, limit),
        )
        return [dict(r) for r in rows]

    def next_due_time(self) -> float | None:
        row = self.db.one("SELECT MIN(next_attempt) FROM recipients WHERE state = 'queued'")
        return float(row[0]) if row and row[0] is not None else None

    def due_for(
        self, domains: set[str] | None, now: float, exclude: set[int], limit: int = 200
    ) -> list[dict[str, Any]]:
        """Due recipients (optionally of some domains), oldest first, not in ``exclude``."""
        rows = self.db.query(
            "SELECT r.*, m.mail_from, m.user, m.spool, m.size, m.created FROM recipients r"
            " JOIN messages m ON m.id = r.message_id"
            " WHERE r.state = 'queued' AND r.next_attempt <= ? ORDER BY r.message_id, r.id LIMIT ?",
            (now, limit + len(exclude)),
        )
        out = []
        for r in rows:
            if r["id"] in exclude or (domains is not None and r["domain"] not in domains):
                continue
            out.append(dict(r))
        return out

    def record_attempt(
        self,
        recipient_id: int,
        *,
        host: str,
        outcome: str,
        reply: str,
        next_attempt: float | None = None,
        delay_warned: bool | None = None,
    ) -> None:
        """Store the result of one attempt: ``sent``/``bounced`` finish it, ``deferred`` reschedules it."""
        self.record_attempts([Attempt(recipient_id, host, outcome, reply, next_attempt, delay_warned)])

    def record_attempts(self, attempts: list[Attempt]) -> None:
        """Store several attempt results in one transaction (one fsync for a whole message)."""
        now = time.time()
        with self.db.transaction() as c:
            for a in attempts:
                state = {"sent": "sent", "bounced": "bounced"}.get(a.outcome, "queued")
                c.execute(
                    "UPDATE recipients SET state = ?, attempts = attempts + 1, last_attempt = ?, last_error = ?,"
                    " last_host = ?, next_attempt = COALESCE(?, next_attempt),"
                    " delay_warned = COALESCE(?, delay_warned) WHERE id = ?",
                    (
                        state,
                        now,
                        "" if a.outcome == "sent" else a.reply[:500],
                        a.host[:200],
                        a.next_attempt,
                        None if a.delay_warned is None else int(a.delay_warned),
                        a.recipient_id,
                    ),
                )
                c.execute(
                    "INSERT INTO attempts(recipient_id, ts, host, outcome, reply) VALUES (?,?,?,?,?)",
                    (a.recipient_id, now, a.host[:200], a.outcome, a.reply[:500]),
                )
                c.execute(
                    "DELETE FROM attempts WHERE recipient_id = ? AND id <= (SELECT MAX(id) FROM attempts"
                    " WHERE recipient_id = ?) - 20",
                    (a.recipient_id, a.recipient_id),
                )

    def finish_message_if_done(self, msg_id: int) -> bool:
        """Remove a message whose recipients are all sent or bounced, and its spool file."""
        with self.db.transaction() as c:
            if c.execute("SELECT 1 FROM recipients WHERE message_id = ? AND state = 'queued'", (msg_id,)).fetchone():
                return False
            row = c.execute("SELECT spool FROM messages WHERE id = ?", (msg_id,)).fetchone()
            if not row:
                return False
            c.execute("DELETE FROM messages WHERE id = ?", (msg_id,))
        (self.spool_dir / row["spool"]).unlink(missing_ok=True)
        return True

    # -- operations (CLI, dashboard) -----------------------------------------------------
    def retry(self, msg_id: int | None = None) -> int:
        now = time.time()
        if msg_id is None:
            cur = self.db.execute("UPDATE recipients SET next_attempt = ? WHERE state = 'queued'", (now,))
        else:
            cur = self.db.execute(
                "UPDATE recipients SET next_attempt = ? WHERE state = 'queued' AND message_id = ?", (now, msg_id)
            )
        return cur.rowcount

    def delete(self, msg_id: int) -> bool:
        with self.db.transaction() as c:
            row = c.execute("SELECT spool FROM messages WHERE id = ?", (msg_id,)).fetchone()
            if not row:
                return False
            c.execute("DELETE FROM messages WHERE id = ?", (msg_id,))
        (self.spool_dir / row["spool"]).unlink(missing_ok=True)
        return True

    def snapshot(self, limit: int = 500) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT m.id, m.mail_from, m.user, m.size, m.created, m.subject, r.rcpt, r.state, r.attempts,"
            " r.next_attempt, r.last_attempt, r.last_error, r.last_host FROM messages m"
            " JOIN recipients r ON r.message_id = m.id ORDER BY m.id, r.id LIMIT ?",
            (limit,),
        )
        return [dict(r) for r in rows]

    def close(self) -> None:
        self.db.close()
