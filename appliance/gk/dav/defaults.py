"""Default and shared collections, written straight to ``DATA_DIR/dav.sqlite3`` (no Radicale import).

Every user has a calendar, a task list and an address book: ``ensure_user`` creates the
principal and the three when the principal is missing (idempotent: a user who deleted their
task list does not get it back). ``gk serve`` runs it for every account at start (an upgraded
box's existing users) and for each account created while it runs; Radicale's
``predefined_collections`` (the same three) still covers a first DAV login in between.

Shared collections: ``create_shared`` makes a calendar in its owner's principal (the wizard's
"Family" calendar) and ``set_members`` chooses who else may read ("r") or read and write ("rw")
it. ``Shares`` answers ``gk.dav.rights`` from a small cache (one lookup per DAV request and per
item of a PROPFIND, invalidated by every change made through it).

Callers in ``gk serve`` hold the DAV write lock (``DAVService.write``); these functions only
make one transaction each.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterable, Mapping

from gk.store import Database

DEFAULT_COLLECTIONS: dict[str, dict[str, str]] = {
    "calendar": {
        "tag": "VCALENDAR",
        "D:displayname": "Calendar",
        "C:supported-calendar-component-set": "VEVENT",
    },
    "tasks": {
        "tag": "VCALENDAR",
        "D:displayname": "Tasks",
        "C:supported-calendar-component-set": "VTODO",
    },
    "contacts": {"tag": "VADDRESSBOOK", "D:displayname": "Contacts"},
}
FAMILY = "family"
RIGHTS = ("r", "rw")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ShareError(ValueError):
    pass


def _insert_collection(conn: sqlite3.Connection, path: str, props: Mapping[str, str] | None, now: float) -> bool:
    """Create collection ``path`` (its parent must exist) unless it does; True when created."""
    if conn.execute("SELECT 1 FROM collections WHERE path = ?", (path,)).fetchone():
        return False
    parent = path.rpartition("/")[0]
    meta = json.dumps(dict(props or {}), sort_keys=True)
    tag = (props or {}).get("tag", "")
    conn.execute(
        "INSERT INTO collections (path, parent, tag, meta, modified) VALUES (?, ?, ?, ?, ?)",
        (path, parent, tag, meta, now),
    )
    return True


def ensure_user(db: Database, address: str) -> bool:
    """The principal ``/<address>/`` and its default collections, if the principal is missing."""
    if not address or "/" in address:
        raise ValueError(f"not a DAV principal name: {address!r}")
    now = time.time()
    with db.transaction() as conn:
        if not _insert_collection(conn, address, None, now):
            return False
        for name, props in DEFAULT_COLLECTIONS.items():
            _insert_collection(conn, f"{address}/{name}", props, now)
    return True


def ensure_users(db: Database, addresses: Iterable[str]) -> list[str]:
    """``ensure_user`` for each; the addresses that got their defaults now."""
    return [a for a in addresses if ensure_user(db, a)]


def collections_of(db: Database, owner: str) -> list[tuple[str, str, str]]:
    """(collection name, tag, display name) of each collection of ``owner``; a collection without
    a display name (or an empty one, as a client's PROPPATCH may leave) is shown by its name."""
    out = []
    for row in db.query("SELECT path, tag, meta FROM collections WHERE parent = ? ORDER BY path", (owner,)):
        meta = json.loads(row["meta"] or "{}")
        name = row["path"].rpartition("/")[2]
        out.append((name, row["tag"], str(meta.get("D:displayname") or name)))
    return out


def create_shared(db: Database, owner: str, name: str = FAMILY, display_name: str = "Family") -> bool:
    """A calendar ``name`` in ``owner``'s principal (the principal made if needed); True when new."""
    if not _NAME_RE.match(name):
        raise ShareError(f"invalid collection name {name!r}")
    ensure_user(db, owner)
    props = {"tag": "VCALENDAR", "D:displayname": display_name, "C:supported-calendar-component-set": "VEVENT"}
    with db.transaction() as conn:
        return _insert_collection(conn, f"{owner}/{name}", props, time.time())


class Shares:
    """The sharing table with a cache for ``gk.dav.rights`` (one row lookup per request otherwise)."""

    def __init__(self, db: Database):
        self.db = db
        self._cache: dict[tuple[str, str, str], str] = {}
        self._version = -1

    def rights(self, user: str, owner: str, collection: str) -> str:
        # another process (``gk dav share``) committed since: the cache may be stale
        version = int(self.db.one("PRAGMA data_version")[0])  # type: ignore[index]
        if version != self._version:
            self._cache.clear()
            self._version = version
        key = (user, owner, collection)
        found = self._cache.get(key)
        if found is None:
            row = self.db.one(
                "SELECT rights FROM shares WHERE owner = ? AND collection = ? AND member = ?", (owner, collection, user)
            )
            found = str(row["rights"]) if row else ""
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[key] = found
        return found

    def members(self, owner: str, collection: str) -> dict[str, str]:
        rows = self.db.query(
            "SELECT member, rights FROM shares WHERE owner = ? AND collection = ? ORDER BY member", (owner, collection)
        )
        return {r["member"]: r["rights"] for r in rows}

    def shared_with(self, member: str) -> list[tuple[str, str, str]]:
        """(owner, collection, rights) of each collection shared with ``member``."""
        rows = self.db.query(
            "SELECT owner, collection, rights FROM shares WHERE member = ? ORDER BY owner, collection", (member,)
        )
        return [(r["owner"], r["collection"], r["rights"]) for r in rows]

    def set_members(self, owner: str, collection: str, members: Mapping[str, str]) -> None:
        """Exactly ``members`` (address -> "r" | "rw") share ``owner``'s ``collection`` from now on."""
        for member, rights in members.items():
            if rights not in RIGHTS:
                raise ShareError(f"invalid rights {rights!r} for {member}")
            if member == owner or not member or "/" in member:
                raise ShareError(f"cannot share with {member!r}")
        with self.db.transaction() as conn:
            if not conn.execute("SELECT 1 FROM collections WHERE path = ?", (f"{owner}/{collection}",)).fetchone():
                raise ShareError(f"no collection {collection!r} of {owner}")
            conn.execute("DELETE FROM shares WHERE owner = ? AND collection = ?", (owner, collection))
            conn.executemany(
                "INSERT INTO shares (owner, collection, member, rights) VALUES (?, ?, ?, ?)",
                [(owner, collection, m, r) for m, r in sorted(members.items())],
            )
        self._cache.clear()

    def forget_member(self, member: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM shares WHERE member = ?", (member,))
        self._cache.clear()
