"""Server-side web sessions in ``DATA_DIR/web.sqlite3``.

The browser holds only a random 256-bit id (cookie ``gk_session`` over HTTP, ``__Host-gk_session``
over HTTPS: HttpOnly, SameSite=Lax, Secure on HTTPS); a session is valid only on the scheme it was
issued on (``data["scheme"]``, checked by ``app.Web.session``); the table stores its SHA-256, so a copy of the database cannot be replayed
as cookies. Each session carries its CSRF token (synchronizer-token pattern), the logged-in
user (or none, for a visitor of the login page or the wizard), and a small JSON dict of
wizard/UI state. Logging in rotates the id (no session fixation); logging out deletes the row.

Cost: no session cache in memory; one indexed SELECT per request and one UPDATE per minute
of activity. Anonymous sessions live one day, logged-in ones ``http.session_days``. Each write
commits with ``synchronous=FULL`` in the disk-I/O pool (``commit_runner``), not on the hub: a
client without cookies (a script, a monitor) makes a new session at every page, and each
commit's fdatasync on the hub held every mail session (strace -y on the hub thread during
``bench hub_lag``: one ``web.sqlite3-wal`` fdatasync per page, up to 15 ms).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gk import pools
from gk.store import open_database

MIGRATIONS = [
    """
    CREATE TABLE sessions (
        id_hash TEXT PRIMARY KEY,
        address TEXT NOT NULL DEFAULT '',
        csrf TEXT NOT NULL,
        data TEXT NOT NULL DEFAULT '{}',
        created REAL NOT NULL,
        seen REAL NOT NULL,
        expires REAL NOT NULL
    );
    CREATE INDEX sessions_address ON sessions(address);
    CREATE INDEX sessions_expires ON sessions(expires);
    """,
]

ANONYMOUS_SECONDS = 86400.0


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


@dataclass
class Session:
    sid: str
    address: str
    csrf: str
    data: dict[str, Any] = field(default_factory=dict)
    new: bool = False  # the cookie must be (re)sent


class SessionStore:
    def __init__(self, path: Path, days: int):
        self.db = open_database(path, MIGRATIONS)
        self.db.commit_runner = pools.run_io  # the commit's fsync waits in the disk-I/O pool
        self.login_seconds = days * 86400.0

    def _write(self, sql: str, params: tuple[object, ...]) -> None:
        with self.db.transaction() as c:
            c.execute(sql, params)

    def create(self, address: str = "", data: dict[str, Any] | None = None) -> Session:
        sid = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = time.time()
        ttl = self.login_seconds if address else ANONYMOUS_SECONDS
        self._write(
            "INSERT INTO sessions(id_hash, address, csrf, data, created, seen, expires) VALUES (?,?,?,?,?,?,?)",
            (_hash(sid), address, csrf, json.dumps(data or {}), now, now, now + ttl),
        )
        if secrets.randbelow(50) == 0:
            self._write("DELETE FROM sessions WHERE expires < ?", (now,))
        return Session(sid, address, csrf, dict(data or {}), new=True)

    def get(self, sid: str) -> Session | None:
        if not sid or len(sid) > 100:
            return None
        row = self.db.one("SELECT * FROM sessions WHERE id_hash = ?", (_hash(sid),))
        now = time.time()
        if not row or row["expires"] < now:
            return None
        if now - row["seen"] > 60:
            self._write("UPDATE sessions SET seen = ? WHERE id_hash = ?", (now, _hash(sid)))
        return Session(sid, row["address"], row["csrf"], json.loads(row["data"]))

    def save_data(self, session: Session) -> None:
        self._write("UPDATE sessions SET data = ? WHERE id_hash = ?", (json.dumps(session.data), _hash(session.sid)))

    def login(self, old: Session | None, address: str) -> Session:
        """A fresh session id for ``address`` (the anonymous one is dropped; its data carries over)."""
        data = dict(old.data) if old else {}
        if old:
            self.delete(old.sid)
        return self.create(address, data)

    def delete(self, sid: str) -> None:
        self._write("DELETE FROM sessions WHERE id_hash = ?", (_hash(sid),))

    def delete_user(self, address: str, keep: str = "") -> None:
        """Log ``address`` out everywhere (after a password change or user removal), except ``keep``."""
        self._write("DELETE FROM sessions WHERE address = ? AND id_hash != ?", (address, _hash(keep)))
