"""Radicale storage plugin on SQLite (``DATA_DIR/dav.sqlite3``): collections, items, sync tokens.

Why not Radicale's own ``multifilesystem``: it is O(n) per write (every item file is listed and
hashed for the history and the sync token; bulk imports go O(n^2)), locks with ``flock`` and runs
a hook subprocess, none of which belongs in a gevent process on a small board. Here:

* ``collections``: one row per collection (path without slashes, ``''`` is the root), its
  properties (Radicale's "meta", JSON), a per-collection change sequence ``seq`` and
  ``purged_seq`` (tombstones up to it were dropped: older sync tokens are refused);
* ``items``: one row per calendar object / vCard with href, UID, etag, component and the start
  and end of its time range as indexed columns (a ``calendar-query`` for one week reads the
  rows of that week only, never parsing the others), ``seq`` of its last change, and the text;
* ``tombstones``: deleted hrefs with the ``seq`` of their deletion, so a ``sync-collection``
  delta is two indexed range scans (``seq > token``) instead of Radicale's history hashing.

A sync token is ``http://gk.invalid/ns/sync/<collection id>-<seq>``; collection ids are never
reused (AUTOINCREMENT), so a token of a deleted and re-created collection is refused and the
client falls back to a full sync, as with the file backend.

Durability: ``synchronous=FULL``; every write lock (one DAV request) is one transaction, so a
PUT is on disk before its 201 and a bulk import is one fsync. Reads need no transaction: the
RW lock keeps writers out of this process, and SQLite's WAL gives other processes (``gk dav
export``) a consistent snapshot.

Memory: rows are turned into Radicale ``Item`` objects carrying their text and cached fields;
vobject parses an item only when Radicale needs the component tree (filters it cannot decide
from the indexed range, or serializing a whole calendar). SQLite's page cache is the server-wide
``server.sqlite_cache_kib``.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from hashlib import sha256
from pathlib import Path
from typing import Any, NamedTuple

from radicale import item as radicale_item
from radicale import pathutils, storage
from radicale.item import filter as radicale_filter

from gk.dav import scheduletag
from gk.dav.rwlock import RWLock
from gk.dav.schema import MIGRATIONS
from gk.store import Database, open_database

log = logging.getLogger("gk.dav")
SYNC_PREFIX = "http://gk.invalid/ns/sync/"
# tombstones older than this are dropped (Radicale's default max_sync_token_age: 30 days)
TOMBSTONE_SECONDS = 30 * 86400


class SyncPage:
    """The most changes one ``sync-collection`` answer may list (``limit``; 0 = all), set by
    ``gk.dav.extensions`` for the request; ``truncated`` tells it the answer is a first page."""

    __slots__ = ("limit", "truncated")

    def __init__(self, limit: int):
        self.limit = limit
        self.truncated = False


# set around one Radicale request, in the thread that runs it
SYNC_PAGE: contextvars.ContextVar[SyncPage | None] = contextvars.ContextVar("gk_dav_sync_page", default=None)

# True around a request from a CalDAV/CardDAV client (``gk.dav.extensions``) and the web calendar's
# deletions (``gk.web.calendar.answering``), not its other writes: the attendee side of implicit
# scheduling answers those (``gk.dav.itip``)
DAV_CLIENT: contextvars.ContextVar[bool] = contextvars.ContextVar("gk_dav_client", default=False)

ITEM_COLUMNS = "href, uid, etag, name, component, start, end, modified, text"


_new_item = object.__new__


def http_date(ts: float) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(ts))


def _parent(path: str) -> str | None:
    if not path:
        return None
    return path.rpartition("/")[0]


def _descendants_clause() -> str:
    # rows strictly below :path (no LIKE: '%' and '_' are legal in collection names)
    return "substr(path, 1, length(:path) + 1) = :path || '/'"


@contextlib.contextmanager
def _null_child_context(path: str, href: str | None) -> Iterator[None]:
    yield


class Collection(storage.BaseCollection):
    """A collection row, looked up per request (Radicale makes new objects for every discover)."""

    def __init__(self, storage_: Storage, path: str, row: sqlite3.Row):
        self._storage = storage_
        self._path = path
        self._id: int = row["id"]
        self._meta_cache: Mapping[str, str] | None = None

    @property
    def path(self) -> str:
        return self._path

    @property
    def db(self) -> Database:
        return self._storage.db

    def _row(self) -> sqlite3.Row:
        row = self.db.one("SELECT * FROM collections WHERE id = ?", (self._id,))
        if row is None:
            raise storage.ComponentNotFoundError(self._path)
        return row

    def _item(self, row: sqlite3.Row) -> radicale_item.Item:
        """An ``Item`` with every cached field filled from the row (no vobject parse). Built without
        ``Item.__init__``, whose path-sanitizing asserts cost 60 µs per item: a third of an initial
        sync-collection of 2,000 items. The fields are those of Radicale 3.9's ``Item`` (pinned);
        the storage tests run Radicale's code over these items."""
        item = _new_item(radicale_item.Item)
        item._collection_path = self._path
        item.collection = self
        item.href = row["href"]
        item.last_modified = http_date(row["modified"])
        item._text = row["text"]
        item._vobject_item = None
        item._etag = row["etag"]
        item._uid = row["uid"]
        item._name = row["name"]
        item._component_name = row["component"]
        item._time_range = (row["start"], row["end"])
        return item

    # -- reading -------------------------------------------------------------------------
    def get_multi(self, hrefs: Iterable[str]) -> Iterator[tuple[str, radicale_item.Item | None]]:
        wanted = list(dict.fromkeys(hrefs))
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            safe = [h for h in chunk if pathutils.is_safe_filesystem_path_component(h)]
            found: dict[str, sqlite3.Row] = {}
            if safe:
                marks = ",".join("?" * len(safe))
                rows = self.db.query(
                    f"SELECT {ITEM_COLUMNS} FROM items WHERE collection = ? AND href IN ({marks})",
                    (self._id, *safe),
                )
                found = {r["href"]: r for r in rows}
            for href in chunk:
                row = found.get(href)
                yield href, self._item(row) if row is not None else None

    def get_all(self) -> Iterator[radicale_item.Item]:
        rows = self.db.query(f"SELECT {ITEM_COLUMNS} FROM items WHERE collection = ? ORDER BY href", (self._id,))
        for row in rows:
            yield self._item(row)

    def get_filtered(self, filters: Iterable[Any]) -> Iterator[tuple[radicale_item.Item, bool]]:
        """The indexed time range and component decide first; Radicale re-checks the rest
        (``filters_matched`` False) exactly as ``BaseCollection.get_filtered`` would."""
        if not self.tag:
            return
        tag, start, end, simple = radicale_filter.simplify_prefilters(filters, self.tag)
        sql = f"SELECT {ITEM_COLUMNS} FROM items WHERE collection = ? AND start < ? AND end > ?"
        params: list[Any] = [self._id, end, start]
        if tag is not None:
            sql += " AND component = ?"
            params.append(tag)
        for row in self.db.query(sql + " ORDER BY href", params):
            istart, iend = row["start"], row["end"]
            yield self._item(row), simple and (start <= istart or iend <= end)

    def has_uid(self, uid: str) -> bool:
        return self.db.one("SELECT 1 FROM items WHERE collection = ? AND uid = ?", (self._id, uid)) is not None

    # -- writing -------------------------------------------------------------------------
    def _bump(self, conn: sqlite3.Connection, now: float) -> int:
        conn.execute("UPDATE collections SET seq = seq + 1, modified = ? WHERE id = ?", (now, self._id))
        return int(conn.execute("SELECT seq FROM collections WHERE id = ?", (self._id,)).fetchone()[0])

    def upload(self, href: str, item: radicale_item.Item) -> tuple[radicale_item.Item, radicale_item.Item | None]:
        if not pathutils.is_safe_filesystem_path_component(href):
            raise pathutils.UnsafePathError(href)
        with self._storage._write() as conn:
            if conn.execute("SELECT 1 FROM collections WHERE path = ?", (_join(self._path, href),)).fetchone():
                raise ValueError(f"{href!r} is a collection in {self._path!r}")
            old = conn.execute(
                f"SELECT {ITEM_COLUMNS} FROM items WHERE collection = ? AND href = ?", (self._id, href)
            ).fetchone()
            state = scheduletag.MERGE.get()
            if state is not None and old is not None and not self._storage._scheduling:  # (the request's own object)
                merged = scheduletag.merge(
                    old["text"], item.serialize(), self._storage._owner(self._path.split("/")[0])
                )
                if merged is not None:
                    (component,) = radicale_item.read_components(merged)
                    item = radicale_item.Item(collection_path=self._path, vobject_item=component)
                    item.prepare()
                    state.merged = True
            now = time.time()
            seq = self._bump(conn, now)
            self._storage._write_item(conn, self._id, href, item, seq, now)
        new = self.db.one(f"SELECT {ITEM_COLUMNS} FROM items WHERE collection = ? AND href = ?", (self._id, href))
        assert new is not None
        self._storage._changed(self._path, href, old["text"] if old is not None else None, new["text"])
        return self._item(new), self._item(old) if old is not None else None

    def delete(self, href: str | None = None) -> None:
        if href is None:
            self._storage._delete_tree(self._path)
            return
        if not pathutils.is_safe_filesystem_path_component(href):
            raise pathutils.UnsafePathError(href)
        with self._storage._write() as conn:
            old = conn.execute("SELECT text FROM items WHERE collection = ? AND href = ?", (self._id, href)).fetchone()
            if old is None:
                raise storage.ComponentNotFoundError(href)
            now = time.time()
            seq = self._bump(conn, now)
            self._storage._delete_item(conn, self._id, href, seq, now)
        self._storage._changed(self._path, href, old["text"], None)

    def get_meta(self, key: str | None = None) -> Any:
        if self._meta_cache is None or self._storage.lock.locked == "w":
            try:
                self._meta_cache = radicale_item.check_and_sanitize_props(json.loads(self._row()["meta"]))
            except ValueError as e:
                raise RuntimeError(f"Failed to load properties of collection {self._path!r}: {e}") from e
        return self._meta_cache if key is None else self._meta_cache.get(key)

    def set_meta(self, props: Mapping[str, str]) -> None:
        meta = json.dumps(dict(props), sort_keys=True)
        with self._storage._write() as conn:
            conn.execute(
                "UPDATE collections SET meta = ?, tag = ?, modified = ? WHERE id = ?",
                (meta, props.get("tag", "") or "", time.time(), self._id),
            )
        self._meta_cache = None

    # -- state ---------------------------------------------------------------------------
    @property
    def last_modified(self) -> str:
        return http_date(self._row()["modified"])

    @property
    def etag(self) -> str:
        """The collection's id, change sequence and properties: changes with every item change
        (each bumps ``seq``) and every PROPPATCH, without reading the items."""
        row = self._row()
        digest = sha256(f"{row['id']}/{row['seq']}/".encode() + row["meta"].encode()).hexdigest()
        return f'"{digest}"'

    def sync(self, old_token: str = "") -> tuple[str, Iterable[str]]:
        """The changes since ``old_token`` in the order they were made, at most ``SYNC_PAGE``'s
        limit of them (RFC 6578 §3.6): a truncated answer's token is that of its last change, so
        the client's next request continues from there. A page of an initial sync carries a floor,
        ``<id>-<seq>-<floor>``: the collection's sequence when the first page was read; deletions up
        to it concern objects the client never had, so neither their purge nor their absence from
        the later pages matters."""
        row = self._row()
        token = f"{SYNC_PREFIX}{row['id']}-{row['seq']}"
        page = SYNC_PAGE.get()
        limit = page.limit if page is not None else 0
        if not old_token:
            old_seq, floor = 0, int(row["seq"])
        else:
            old_seq, floor = self._parse_token(old_token, row)
        if old_token and old_seq == row["seq"]:
            return token, ()
        sql = "SELECT href, seq FROM items WHERE collection = ? AND seq > ?"
        params: list[int] = [self._id, old_seq]
        if old_token:
            sql += " UNION ALL SELECT href, seq FROM tombstones WHERE collection = ? AND seq > ?"
            params += [self._id, max(old_seq, floor)]
        sql += " ORDER BY seq"
        if limit > 0:
            sql += " LIMIT ?"
            params.append(limit + 1)
        changed = self.db.query(sql, params)
        if limit <= 0 or len(changed) <= limit:
            return token, [r[0] for r in changed]
        assert page is not None
        page.truncated = True
        last = int(changed[limit - 1][1])
        suffix = f"-{floor}" if floor > last else ""
        return f"{SYNC_PREFIX}{row['id']}-{last}{suffix}", [r[0] for r in changed[:limit]]

    def _parse_token(self, old_token: str, row: sqlite3.Row) -> tuple[int, int]:
        """(sequence, floor) of one of this collection's tokens; ValueError for any other."""
        if not old_token.startswith(SYNC_PREFIX):
            raise ValueError(f"Malformed token: {old_token!r}")
        col_id, _, rest = old_token[len(SYNC_PREFIX) :].partition("-")
        seq_text, _, floor_text = rest.partition("-")
        if not (col_id.isdigit() and seq_text.isdigit() and (floor_text == "" or floor_text.isdigit())):
            raise ValueError(f"Malformed token: {old_token!r}")
        old_seq, floor = int(seq_text), int(floor_text or 0)
        if int(col_id) != row["id"] or old_seq > row["seq"] or floor > row["seq"]:
            raise ValueError(f"Token of another collection or from the future: {old_token!r}")
        if max(old_seq, floor) < row["purged_seq"]:
            raise ValueError(f"Token older than the kept deletions: {old_token!r}")
        return old_seq, floor


class Change(NamedTuple):
    """One object written by a request: its collection path, href and text before and after."""

    path: str
    href: str
    old: str | None
    new: str | None


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name


class Storage(storage.BaseStorage):
    """Radicale ``BaseStorage`` on one SQLite file. Build it with ``Storage.factory(path)`` as the
    ``storage.type`` callable of Radicale's configuration, or directly for tests."""

    _is_collision_free = True
    _supports_unicode = True
    _supports_trailing_whitespace = False
    _supports_problematic_chars = False

    def __init__(self, configuration: Any, db_path: Path, lock: RWLock | None = None, db: Database | None = None):
        super().__init__(configuration)
        self.db = db or open_database(db_path, MIGRATIONS)
        self.lock = lock or RWLock()
        # ``observer(user, changes)`` after each committed write request: its single-object PUTs
        # and DELETEs as Change(collection path, href, old text, new text) (iTIP mail: gk.dav.itip)
        self.observer: Callable[[str, list[Change]], None] | None = None
        # ``scheduler(user, changes)`` inside each write request's transaction, before its commit
        # (RFC 6638 implicit scheduling between users of the box: gk.dav.itip.Scheduler): what it
        # writes into other users' collections commits with the request, before its 2xx; it
        # returns what to run after the commit (the iTIP mail), or None
        self.scheduler: Callable[[str, list[Change]], Callable[[], None] | None] | None = None
        # ``addresses(principal)``: is an address one of that user's (gk.dav.itip.addresses_of: their
        # aliases too)? Tells the organizer's copy of an event from an attendee's (Schedule-Tag)
        self.addresses: Callable[[str], scheduletag.Mine] | None = None
        self._changes: list[Change] = []
        self._scheduling = False  # the scheduler runs: its writes record no change, call no one

    @classmethod
    def factory(cls, db_path: Path, lock: RWLock | None = None, db: Database | None = None) -> Callable[[Any], Storage]:
        """``lock`` and ``db``: the ones ``gk.dav.service`` shares with ``gk.dav.defaults`` writers."""
        return lambda configuration: cls(configuration, db_path, lock, db)

    def close(self) -> None:
        self.db.close()

    # -- lookup --------------------------------------------------------------------------
    def _collection_row(self, path: str) -> sqlite3.Row | None:
        return self.db.one("SELECT * FROM collections WHERE path = ?", (path,))

    def discover(
        self,
        path: str,
        depth: str = "0",
        child_context_manager: Callable[[str, str | None], contextlib.AbstractContextManager[None]] | None = None,
        user_groups: set[str] = set(),  # noqa: B006 - Radicale's signature
    ) -> Iterator[Any]:
        ccm = child_context_manager or _null_child_context
        sane = pathutils.strip_path(path)
        row = self._collection_row(sane)
        if row is None:
            if not sane:
                return
            parent, _, href = sane.rpartition("/")
            prow = self._collection_row(parent)
            if prow is None or not parent or not pathutils.is_safe_filesystem_path_component(href):
                return
            col = Collection(self, parent, prow)
            found = self.db.one(
                f"SELECT {ITEM_COLUMNS} FROM items WHERE collection = ? AND href = ?", (prow["id"], href)
            )
            if found is not None:
                yield col._item(found)
            return
        col = Collection(self, sane, row)
        yield col
        if depth == "0":
            return
        for item_row in self.db.query(
            f"SELECT {ITEM_COLUMNS} FROM items WHERE collection = ? ORDER BY href", (row["id"],)
        ):
            with ccm(sane, item_row["href"]):
                yield col._item(item_row)
        for child in self.db.query("SELECT * FROM collections WHERE parent = ? ORDER BY path", (sane,)):
            with ccm(child["path"], None):
                yield Collection(self, child["path"], child)
        if "/" not in sane:
            # a principal's home set also lists the collections shared with it (at their owner's
            # path): DAVx5, iOS and Thunderbird find a shared calendar with the member's own ones
            for child in self.db.query(
                "SELECT c.* FROM shares s JOIN collections c ON c.path = s.owner || '/' || s.collection "
                "WHERE s.member = ? ORDER BY c.path",
                (sane,),
            ):
                with ccm(child["path"], None):
                    yield Collection(self, child["path"], child)

    # -- writing -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write inside the request's transaction, undone alone when it fails: Radicale turns some
        storage errors into an error reply inside its write lock, whose transaction then commits —
        a failed whole-collection PUT must not have deleted the collection it meant to replace."""
        with self.db.transaction() as conn:
            conn.execute("SAVEPOINT dav_write")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK TO dav_write")
                conn.execute("RELEASE dav_write")
                raise
            conn.execute("RELEASE dav_write")

    def _ensure(self, conn: sqlite3.Connection, path: str, now: float) -> int:
        """The id of collection ``path``, creating it and its missing parents (props-less)."""
        row = conn.execute("SELECT id FROM collections WHERE path = ?", (path,)).fetchone()
        if row is not None:
            return int(row[0])
        parent = _parent(path)
        assert parent is not None
        parent_id = self._ensure(conn, parent, now)
        name = path.rpartition("/")[2]
        if conn.execute("SELECT 1 FROM items WHERE collection = ? AND href = ?", (parent_id, name)).fetchone():
            raise ValueError(f"{name!r} is an item in {parent!r}")
        cur = conn.execute("INSERT INTO collections (path, parent, modified) VALUES (?, ?, ?)", (path, parent, now))
        return int(cur.lastrowid or 0)

    def _write_item(
        self, conn: sqlite3.Connection, col_id: int, href: str, item: radicale_item.Item, seq: int, now: float
    ) -> None:
        start, end = item.time_range
        text = item.serialize()
        tagged = scheduletag.organizer(text) is not None
        old = None
        if tagged:
            old = conn.execute(
                "SELECT i.text, t.tag FROM items i LEFT JOIN schedule_tags t "
                "ON t.collection = i.collection AND t.href = i.href WHERE i.collection = ? AND i.href = ?",
                (col_id, href),
            ).fetchone()
        conn.execute(
            "INSERT INTO items (collection, href, uid, etag, name, component, start, end, seq, modified, text) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (collection, href) DO UPDATE SET uid = excluded.uid, etag = excluded.etag, "
            "name = excluded.name, component = excluded.component, start = excluded.start, end = excluded.end, "
            "seq = excluded.seq, modified = excluded.modified, text = excluded.text",
            (col_id, href, item.uid, item.etag, item.name, item.component_name, start, end, seq, now, text),
        )
        conn.execute("DELETE FROM tombstones WHERE collection = ? AND href = ?", (col_id, href))
        tag = None
        if tagged:
            path = conn.execute("SELECT path FROM collections WHERE id = ?", (col_id,)).fetchone()[0]
            tag = scheduletag.decide(
                self._owner(str(path).partition("/")[0]),
                old["text"] if old is not None else None,
                old["tag"] if old is not None else None,
                text,
            )
        if tag is None:
            conn.execute("DELETE FROM schedule_tags WHERE collection = ? AND href = ?", (col_id, href))
        elif old is None or old["tag"] != tag:
            conn.execute(
                "INSERT INTO schedule_tags (collection, href, tag) VALUES (?, ?, ?) "
                "ON CONFLICT (collection, href) DO UPDATE SET tag = excluded.tag",
                (col_id, href, tag),
            )

    def _owner(self, principal: str) -> scheduletag.Mine:
        """The addresses of the owner of principal ``principal`` (``addresses``, else its name)."""
        if self.addresses is not None:
            return self.addresses(principal)
        own = principal.lower()
        return lambda address: address.lower() == own

    def schedule_tags(self, path: str) -> dict[str, str]:
        """href -> Schedule-Tag of the scheduling objects of collection ``path``."""
        rows = self.db.query(
            "SELECT t.href, t.tag FROM schedule_tags t JOIN collections c ON c.id = t.collection WHERE c.path = ?",
            (path,),
        )
        return {str(r[0]): str(r[1]) for r in rows}

    def schedule_tag(self, path: str, href: str) -> str | None:
        """The Schedule-Tag of item ``href`` of collection ``path``, None when it has none."""
        row = self.db.one(
            "SELECT t.tag FROM schedule_tags t JOIN collections c ON c.id = t.collection "
            "WHERE c.path = ? AND t.href = ?",
            (path, href),
        )
        return str(row[0]) if row is not None else None

    def _delete_item(self, conn: sqlite3.Connection, col_id: int, href: str, seq: int, now: float) -> None:
        conn.execute("DELETE FROM items WHERE collection = ? AND href = ?", (col_id, href))
        conn.execute("DELETE FROM schedule_tags WHERE collection = ? AND href = ?", (col_id, href))
        conn.execute(
            "INSERT OR REPLACE INTO tombstones (collection, href, seq, deleted) VALUES (?, ?, ?, ?)",
            (col_id, href, seq, now),
        )
        self._purge_tombstones(conn, col_id, now)

    def _purge_tombstones(self, conn: sqlite3.Connection, col_id: int, now: float) -> None:
        horizon = now - TOMBSTONE_SECONDS
        old = conn.execute(
            "SELECT max(seq) FROM tombstones WHERE collection = ? AND deleted < ?", (col_id, horizon)
        ).fetchone()[0]
        if old is not None:
            conn.execute("DELETE FROM tombstones WHERE collection = ? AND seq <= ?", (col_id, old))
            conn.execute("UPDATE collections SET purged_seq = max(purged_seq, ?) WHERE id = ?", (old, col_id))

    def _delete_tree(self, path: str) -> None:
        if not path:
            raise ValueError("the root collection cannot be deleted")
        with self._write() as conn:
            conn.execute(f"DELETE FROM collections WHERE {_descendants_clause()}", {"path": path})
            conn.execute("DELETE FROM collections WHERE path = ?", (path,))
            # its shares go with it: a member must not re-create it in the owner's principal
            conn.execute(
                "DELETE FROM shares WHERE owner || '/' || collection = :path "
                "OR substr(owner || '/' || collection, 1, length(:path) + 1) = :path || '/'",
                {"path": path},
            )

    def create_collection(
        self,
        href: str,
        items: Iterable[radicale_item.Item] | None = None,
        props: Mapping[str, str] | None = None,
    ) -> tuple[Collection, dict[str, radicale_item.Item], list[str]]:
        sane = pathutils.strip_path(href)
        if not sane:
            raise ValueError("the root collection cannot be replaced")
        now = time.time()
        if not props:
            with self._write() as conn:
                self._ensure(conn, sane, now)
            row = self._collection_row(sane)
            assert row is not None
            return Collection(self, sane, row), {}, []
        replaced: dict[str, radicale_item.Item] = {}
        new_hrefs: list[str] = []
        with self._write() as conn:
            old = conn.execute("SELECT id FROM collections WHERE path = ?", (sane,)).fetchone()
            old_items: dict[str, sqlite3.Row] = {}
            if old is not None:
                old_items = {
                    r["href"]: r
                    for r in conn.execute(f"SELECT {ITEM_COLUMNS} FROM items WHERE collection = ?", (old[0],))
                }
                conn.execute(f"DELETE FROM collections WHERE {_descendants_clause()}", {"path": sane})
                conn.execute("DELETE FROM collections WHERE id = ?", (old[0],))
            col_id = self._ensure(conn, sane, now)
            meta = json.dumps(dict(props), sort_keys=True)
            conn.execute(
                "UPDATE collections SET meta = ?, tag = ? WHERE id = ?", (meta, props.get("tag", "") or "", col_id)
            )
            tag = props.get("tag")
            if items is not None and tag in ("VCALENDAR", "VADDRESSBOOK"):
                suffix = ".ics" if tag == "VCALENDAR" else ".vcf"
                taken: set[str] = set()
                seq = 0
                for item in items:
                    item_href = _free_href(item.uid, suffix, taken)
                    taken.add(item_href)
                    seq += 1
                    self._write_item(conn, col_id, item_href, item, seq, now)
                    if item_href in old_items:
                        replaced[item_href] = item
                    else:
                        new_hrefs.append(item_href)
                conn.execute("UPDATE collections SET seq = ? WHERE id = ?", (seq, col_id))
        row = self._collection_row(sane)
        assert row is not None
        col = Collection(self, sane, row)
        # the replaced items as they were before (Radicale's hooks compare old and new)
        replaced = {h: col._item(old_items[h]) for h in replaced}
        return col, replaced, new_hrefs

    def move(self, item: radicale_item.Item, to_collection: storage.BaseCollection, to_href: str) -> None:
        if not pathutils.is_safe_filesystem_path_component(to_href):
            raise pathutils.UnsafePathError(to_href)
        assert isinstance(item.collection, Collection) and isinstance(to_collection, Collection)
        assert item.href
        src, dst = item.collection, to_collection
        with self._write() as conn:
            now = time.time()
            if not conn.execute(
                "SELECT 1 FROM items WHERE collection = ? AND href = ?", (src._id, item.href)
            ).fetchone():
                raise ValueError(f"no item {item.href!r} in {src.path!r} to move")
            seq = src._bump(conn, now)
            self._delete_item(conn, src._id, item.href, seq, now)
            seq = dst._bump(conn, now)
            self._write_item(conn, dst._id, to_href, item, seq, now)

    _changes_open = False

    def _changed(self, path: str, href: str, old: str | None, new: str | None) -> None:
        if self._changes_open and not self._scheduling and (self.observer or self.scheduler) is not None:
            self._changes.append(Change(path, href, old, new))

    @contextlib.contextmanager
    def acquire_lock(self, mode: str, user: str = "", *args: Any, **kwargs: Any) -> Iterator[None]:
        """Shared ("r") or exclusive ("w") access; a write lock is one SQLite transaction, so one
        DAV request is one commit (one fsync) whatever number of rows it touches. No hook.

        The scheduler's writes into the attendees' (or the organizer's) collections are made by
        the holder of the write lock, inside its transaction: the lock is re-entrant for its
        holder, so they take no other lock of the DAV storage, and they are one commit with the
        request that caused them."""
        with self.lock.acquire(mode):
            if mode != "w":
                yield
                return
            if self._scheduling:
                with self.db.transaction():
                    yield
                return
            outer = not self._changes_open
            if outer:
                self._changes, self._changes_open = [], True
            after: Callable[[], None] | None = None
            try:
                with self.db.transaction():
                    yield
                    if outer and self._changes and self.scheduler is not None:
                        after = self._schedule(user, list(self._changes))
            finally:
                if outer:
                    self._changes_open = False
            changes, self._changes = (self._changes, []) if outer else ([], self._changes)
            if changes and self.observer is not None:
                try:
                    self.observer(user, changes)
                except Exception:
                    log.exception("dav: change observer failed")
            if after is not None:
                try:
                    after()
                except Exception:
                    log.exception("dav: scheduling after the commit failed")

    def _schedule(self, user: str, changes: list[Change]) -> Callable[[], None] | None:
        assert self.scheduler is not None
        self._scheduling = True
        try:
            return self.scheduler(user, changes)
        except Exception:
            log.exception("dav: scheduling failed")  # the request's own write still commits
            return None
        finally:
            self._scheduling = False

    def verify(self) -> bool:
        ok = True
        result = self.db.one("PRAGMA quick_check")
        if result is None or result[0] != "ok":
            ok = False
        for row in self.db.query(
            "SELECT c.path, i.href, i.text FROM items i JOIN collections c ON c.id = i.collection"
        ):
            try:
                (component,) = radicale_item.read_components(row["text"])
                radicale_item.Item(collection_path=row["path"], vobject_item=component).prepare()
            except Exception:
                ok = False
        return ok


def _free_href(uid: str, suffix: str, taken: set[str]) -> str:
    """Radicale's choice of href for items of a whole-collection PUT: the UID, else its etag."""
    candidates = [uid if uid.lower().endswith(suffix.lower()) else uid + suffix]
    candidates.append(radicale_item.get_etag(uid).strip('"') + suffix)
    for href in candidates:
        if pathutils.is_safe_filesystem_path_component(href) and href not in taken:
            return href
    return radicale_item.find_available_uid(lambda h: h in taken, suffix)
