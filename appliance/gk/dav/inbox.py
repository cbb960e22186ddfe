"""Each user's scheduling inbox (RFC 6638 §2.2): the iTIP REQUEST and CANCEL messages addressed to
them, and the REPLY of each attendee who answered an event they organize (§4), kept in
``dav.sqlite3`` (``schedule_inbox``) apart from their calendars, so no calendar listing, export or
reply lookup ever mistakes one for an event. Served at ``/dav/<user>/schedule-inbox/`` by
``gk.dav.extensions`` (PROPFIND, GET, DELETE, multiget), filled inside a local organizer's (or
attendee's) request by ``gk.dav.itip.Scheduler``, and by ``gk.dav.itip.ReplyWatcher`` from the
iTIP messages mailed to the user from outside. Plain SQL: no Radicale import.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from typing import NamedTuple

from gk.dav.rwlock import RWLock
from gk.store import Database

MAX_MESSAGES = 200  # per user: the oldest go first
KEEP_DELETED = 1000  # markers of deleted messages kept per user (a mail seen again is not redelivered)
MAX_TEXT = 256 * 1024


class Message(NamedTuple):
    href: str
    uid: str
    method: str
    text: str
    received: float

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.text.encode()).hexdigest()[:32] + '"'


def _bump(conn: sqlite3.Connection, owner: str) -> None:
    conn.execute(
        "INSERT INTO schedule_inbox_state (owner, version) VALUES (?, 1) "
        "ON CONFLICT (owner) DO UPDATE SET version = version + 1",
        (owner,),
    )


def _href(owner: str, text: str) -> str:
    return hashlib.sha256(f"{owner}\0{text}".encode()).hexdigest()[:40] + ".ics"


def is_new(db: Database, owner: str, uid: str, text: str) -> bool:
    """True when ``deliver`` would store this message: not too large, with a UID, never seen."""
    if len(text) > MAX_TEXT or not uid:
        return False
    return db.one("SELECT 1 FROM schedule_inbox WHERE owner = ? AND href = ?", (owner, _href(owner, text))) is None


def deliver(db: Database, lock: RWLock, owner: str, uid: str, method: str, text: str) -> str | None:
    """Store one iTIP message for ``owner`` (lower-case address); its href, None when it was
    there already (the same text: a mail seen twice) or is too large."""
    if len(text) > MAX_TEXT or not uid:
        return None
    href = _href(owner, text)
    with lock.acquire("w"), db.transaction() as conn:
        cur = conn.execute(
            "INSERT OR IGNORE INTO schedule_inbox (owner, href, uid, method, text, received) VALUES (?, ?, ?, ?, ?, ?)",
            (owner, href, uid, method, text, time.time()),
        )
        if not cur.rowcount:
            return None  # there, or delivered and deleted before
        conn.execute(
            "UPDATE schedule_inbox SET deleted = 1, text = '' WHERE owner = ? AND deleted = 0 AND id NOT IN "
            "(SELECT id FROM schedule_inbox WHERE owner = ? AND deleted = 0 ORDER BY id DESC LIMIT ?)",
            (owner, owner, MAX_MESSAGES),
        )
        conn.execute(
            "DELETE FROM schedule_inbox WHERE owner = ? AND deleted = 1 AND id NOT IN "
            "(SELECT id FROM schedule_inbox WHERE owner = ? AND deleted = 1 ORDER BY id DESC LIMIT ?)",
            (owner, owner, KEEP_DELETED),
        )
        _bump(conn, owner)
    return href


def messages(db: Database, owner: str) -> list[Message]:
    return [
        Message(r["href"], r["uid"], r["method"], r["text"], r["received"])
        for r in db.query(
            "SELECT href, uid, method, text, received FROM schedule_inbox WHERE owner = ? AND deleted = 0 ORDER BY id",
            (owner,),
        )
    ]


def get(db: Database, owner: str, href: str) -> Message | None:
    r = db.one(
        "SELECT href, uid, method, text, received FROM schedule_inbox WHERE owner = ? AND href = ? AND deleted = 0",
        (owner, href),
    )
    return Message(r["href"], r["uid"], r["method"], r["text"], r["received"]) if r is not None else None


def delete(db: Database, lock: RWLock, owner: str, href: str) -> bool:
    with lock.acquire("w"), db.transaction() as conn:
        cur = conn.execute(
            "UPDATE schedule_inbox SET deleted = 1, text = '' WHERE owner = ? AND href = ? AND deleted = 0",
            (owner, href),
        )
        if not cur.rowcount:
            return False
        _bump(conn, owner)
    return True


def version(db: Database, owner: str) -> int:
    r = db.one("SELECT version FROM schedule_inbox_state WHERE owner = ?", (owner,))
    return int(r["version"]) if r is not None else 0


def default_calendar(db: Database, user: str) -> str:
    """The path of the user's calendar for invitations (RFC 6638 ``schedule-default-calendar-URL``):
    ``calendar`` when it holds events, else their first calendar that does; "" when none."""
    best = ""
    for row in db.query(
        "SELECT path, meta FROM collections WHERE parent = ? AND tag = 'VCALENDAR' ORDER BY path", (user,)
    ):
        try:
            components = str(json.loads(row["meta"]).get("C:supported-calendar-component-set", "VEVENT"))
        except ValueError:
            continue
        if "VEVENT" not in components.upper():
            continue
        if row["path"] == f"{user}/calendar":
            return str(row["path"])
        best = best or str(row["path"])
    return best
