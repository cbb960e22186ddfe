"""The one way GK opens SQLite: WAL, foreign keys, busy timeout, versioned migrations.

Each domain (accounts, mail index and queue, chat, dav, ai, web) owns one database file
under the data dir and passes its ordered list of migrations; ``open_database`` applies the
ones not yet applied (tracked in ``PRAGMA user_version``) inside one transaction each.

Durability: ``synchronous=FULL`` by default, so a committed transaction is on disk before
the caller tells a client "saved". A domain whose writes are cheap to lose (caches) may ask
for ``NORMAL``.

Concurrency under gevent: sqlite3 calls are C calls that never yield to the hub, so a
transaction is atomic with respect to other greenlets *as long as the code inside it does no
gevent I/O*. Keep network and file I/O outside ``with db.transaction():`` blocks.
"""

from __future__ import annotations

import contextlib
import sqlite3
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from gk.locks import SharedRLock

Migration = str  # a SQL script; index + 1 is the schema version it produces


class Database:
    """A SQLite connection with GK's pragmas and a re-entrant transaction helper."""

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = path
        self.conn = conn
        self._lock = SharedRLock()  # greenlets on the hub and pool threads both query (gk.locks)
        self._depth = 0
        # Runs a transaction's COMMIT (the WAL write and, with synchronous=FULL, its fsync) —
        # e.g. ``gk.pools.run_io`` so the hub serves others meanwhile. The lock stays held by
        # the committing greenlet, so the connection is still used by one caller at a time.
        self.commit_runner: Callable[[Callable[[], object]], object] | None = None
        _open.add(self)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (or ``ROLLBACK`` on error); nests as one transaction."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self.conn
                finally:
                    self._depth -= 1
                return
            self.conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self.conn
            except BaseException:
                self._depth = 0
                self.conn.execute("ROLLBACK")
                raise
            self._depth = 0
            if self.commit_runner is not None:
                self.commit_runner(self._commit)
            else:
                self._commit()

    def _commit(self) -> None:
        self.conn.execute("COMMIT")

    @contextlib.contextmanager
    def relaxed_commits(self) -> Iterator[None]:
        """Transactions inside commit with ``synchronous=NORMAL``: in WAL mode the COMMIT writes
        the WAL without fsync, so it survives a crash of the process (kill -9) but not a power
        cut until the next fsync of the WAL (any later ``FULL`` commit, or a checkpoint). The
        connection's own setting comes back after; the lock keeps other callers out meanwhile."""
        with self._lock:
            before = int(self.conn.execute("PRAGMA synchronous").fetchone()[0])
            self.conn.execute("PRAGMA synchronous=NORMAL")
            try:
                yield
            finally:
                self.conn.execute(f"PRAGMA synchronous={before}")

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self.conn.execute(sql, params)

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self.conn.execute(sql, params).fetchall()

    def tuples(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        """``query`` with plain tuples for rows (no ``sqlite3.Row`` made per row: for thousands)."""
        with self._lock:
            cur = self.conn.cursor()
            cur.row_factory = None
            return cur.execute(sql, params).fetchall()

    def one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Row | None:
        with self._lock:
            return self.conn.execute(sql, params).fetchone()

    def close(self) -> None:
        with self._lock:
            self.conn.close()


# Every open Database, for ``release_caches`` (weak: a closed and dropped one leaves the set)
_open: weakref.WeakSet[Database] = weakref.WeakSet()


def release_caches() -> int:
    """``PRAGMA shrink_memory`` on every open database nobody is using: its page cache's
    pages go back to the allocator (the caches refill from disk as pages are read again).

    ``gk serve`` calls it once started: the migrations and schema checks of startup leave
    ~0.7 MB of pages in the 8 caches of an idle server that nothing reads until a client
    comes (measured with ``sqlite3_memory_used``, docs/performance.md). Returns how many
    were shrunk; one that is busy (its lock held) is skipped.
    """
    done = 0
    for db in list(_open):
        if not db._lock.acquire(blocking=False):
            continue
        try:
            db.conn.execute("PRAGMA shrink_memory")
            done += 1
        except sqlite3.ProgrammingError:  # closed
            pass
        finally:
            db._lock.release()
    return done


# Page cache of a database opened without its own size: ``server.sqlite_cache_kib`` (set by
# ``gk tune`` from the RAM), installed by ``gk serve`` at start through ``set_default_cache``.
_default_cache_kib = 2048


def set_default_cache(kib: int) -> None:
    global _default_cache_kib
    _default_cache_kib = max(64, int(kib))


def open_database(
    path: Path,
    migrations: Sequence[Migration],
    *,
    synchronous: str = "FULL",
    cache_kib: int | None = None,
) -> Database:
    """Open (creating if needed) ``path`` and bring its schema to ``len(migrations)``.

    ``cache_kib`` None = the server-wide default (``server.sqlite_cache_kib``)."""
    if cache_kib is None:
        cache_kib = _default_cache_kib
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
    conn.execute("PRAGMA temp_store=MEMORY")
    db = Database(path, conn)
    migrate(db, migrations)
    return db


class SchemaTooNew(RuntimeError):
    pass


def migrate(db: Database, migrations: Sequence[Migration]) -> int:
    current = db.one("PRAGMA user_version")[0]  # type: ignore[index]
    if current > len(migrations):
        raise SchemaTooNew(
            f"{db.path}: schema version {current} is newer than this GK knows ({len(migrations)}); "
            "run the newer GK or restore a backup"
        )
    for version in range(current + 1, len(migrations) + 1):
        script = migrations[version - 1]
        with db.transaction() as conn:
            for statement in _split_sql(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={version}")
    return len(migrations)


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements (respecting triggers' BEGIN…END)."""
    statements: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                statements.append(buf.strip())
            buf = ""
    if buf.strip():
        statements.append(buf.strip())
    return statements
