"""Chat storage: ``DATA_DIR/chat.sqlite3`` (WAL) with rooms, members, messages, reactions,
read markers and FTS5 search, behind a narrow face (like Radicale's storage): protocols never
see SQL.

Durability and cost. Every write goes through one ``GroupWriter``: a greenlet that takes every
write waiting at that moment and runs the whole batch in ONE call into gevent's native
threadpool, as ONE transaction with ``synchronous=FULL`` (one WAL fsync per batch). A caller
is woken only after that commit, so whatever it acknowledges (an IRC echo, a web reply) is on
disk; a burst of hundreds of messages a second shares a handful of fsyncs instead of one each,
and the hub never waits on the disk. While one batch is on disk the next one gathers
(leader/follower, no timer): an idle server commits a lone message at once. The writer owns
its own connection, used only inside the threadpool call (never two at once); reads use a
second connection on the hub (WAL: readers never wait for the writer; every read is an
indexed query of at most a few hundred rows).

Memory on a 512 MB board: two SQLite connections with the server's page cache each, one
greenlet, and the pending batch; nothing else is cached here.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import gevent.lock

from gk import pools
from gk.store.db import Database, open_database

log = logging.getLogger("gk.chat.store")

MIGRATIONS = [
    """
    CREATE TABLE rooms (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        private INTEGER NOT NULL DEFAULT 0,
        topic TEXT NOT NULL DEFAULT '',
        topic_by TEXT NOT NULL DEFAULT '',
        topic_time INTEGER NOT NULL DEFAULT 0,
        created INTEGER NOT NULL,
        created_by TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE members (
        room_id INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        account TEXT NOT NULL,
        joined INTEGER NOT NULL,
        PRIMARY KEY (room_id, account)
    ) WITHOUT ROWID;
    CREATE INDEX members_account ON members(account);
    CREATE TABLE invites (
        room_id INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        account TEXT NOT NULL,
        invited_by TEXT NOT NULL,
        time INTEGER NOT NULL,
        PRIMARY KEY (room_id, account)
    ) WITHOUT ROWID;
    CREATE TABLE users (
        account TEXT PRIMARY KEY,
        first_seen INTEGER NOT NULL
    ) WITHOUT ROWID;
    -- target: '#room' for a room (room_id set), or the DM key: the two accounts, sorted, joined by LF
    CREATE TABLE messages (
        seq INTEGER PRIMARY KEY,
        msgid TEXT NOT NULL UNIQUE,
        time INTEGER NOT NULL,
        sender TEXT NOT NULL,
        target TEXT NOT NULL,
        room_id INTEGER REFERENCES rooms(id) ON DELETE CASCADE,
        kind TEXT NOT NULL DEFAULT 'PRIVMSG',
        text TEXT NOT NULL,
        reply_to TEXT,
        edited INTEGER,
        redacted INTEGER
    );
    CREATE INDEX messages_target ON messages(target, seq);
    CREATE INDEX messages_target_time ON messages(target, time);
    CREATE TABLE edits (
        msgid TEXT NOT NULL,
        time INTEGER NOT NULL,
        old_text TEXT NOT NULL
    );
    CREATE INDEX edits_msgid ON edits(msgid);
    CREATE TABLE reactions (
        msgid TEXT NOT NULL,
        account TEXT NOT NULL,
        reaction TEXT NOT NULL,
        time INTEGER NOT NULL,
        PRIMARY KEY (msgid, account, reaction)
    ) WITHOUT ROWID;
    CREATE TABLE read_markers (
        account TEXT NOT NULL,
        target TEXT NOT NULL,
        time INTEGER NOT NULL,
        PRIMARY KEY (account, target)
    ) WITHOUT ROWID;
    CREATE VIRTUAL TABLE messages_fts USING fts5(text, content='messages', content_rowid='seq');
    CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts(rowid, text) VALUES (new.seq, new.text);
    END;
    CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);
    END;
    CREATE TRIGGER messages_au AFTER UPDATE OF text ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);
        INSERT INTO messages_fts(rowid, text) VALUES (new.seq, new.text);
    END;
    """,
    # the last time a message's reactions changed (added or removed): a removal leaves no row
    # behind, so a page resuming after it could not tell (changed_since)
    "ALTER TABLE messages ADD COLUMN changed INTEGER;",
    # what IRC's draft/event-playback replays besides messages: JOIN, PART, TOPIC, MODE, TAGMSG
    # (reactions and other client tags, ``text`` their JSON) and REDACT (``text`` the msgid
    # redacted), each with a msgid and a time. ``seq`` shares one sequence with messages
    # (``_NEXT_SEQ``), so one order holds across both tables and a msgid of either kind is a
    # history reference.
    """
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        msgid TEXT NOT NULL UNIQUE,
        time INTEGER NOT NULL,
        sender TEXT NOT NULL,
        target TEXT NOT NULL,
        room_id INTEGER REFERENCES rooms(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        text TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX events_target ON events(target, seq);
    """,
]

# the next seq of a message or an event: one sequence over both tables
_NEXT_SEQ = "SELECT max(coalesce((SELECT max(seq) FROM messages), 0), coalesce((SELECT max(seq) FROM events), 0)) + 1"
# the columns of a Message, from messages or from events (history with event playback)
_HISTORY_SOURCE = (
    "(SELECT seq, msgid, time, sender, target, kind, text, reply_to, edited, redacted FROM messages"
    " WHERE target = ? AND redacted IS NULL"
    " UNION ALL SELECT seq, msgid, time, sender, target, kind, text, NULL, NULL, NULL FROM events WHERE target = ?)"
)
_INSERT_MESSAGE = (
    "INSERT INTO messages(seq, msgid, time, sender, target, room_id, kind, text, reply_to)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
EVENT_KINDS = ("JOIN", "PART", "TOPIC", "MODE", "TAGMSG", "REDACT")

MAX_HISTORY = 1000  # rows one history query returns at most (ISUPPORT CHATHISTORY)


def now_ms() -> int:
    return int(time.time() * 1000)


def new_msgid() -> str:
    """A server message id: 16 url-safe characters, unguessable and unique."""
    return secrets.token_urlsafe(12)


def dm_target(a: str, b: str) -> str:
    """The stored target of a direct conversation between two accounts (order-free)."""
    x, y = sorted((a, b))
    return f"{x}\n{y}"


def room_target(name: str) -> str:
    return "#" + name.lower()


@dataclass(frozen=True)
class Room:
    id: int
    name: str
    private: bool
    topic: str
    topic_by: str
    topic_time: int
    created: int


@dataclass(frozen=True)
class Message:
    seq: int
    msgid: str
    time: int  # ms since the epoch, UTC, server clock
    sender: str  # account
    target: str  # '#room' or the DM key
    kind: str  # PRIVMSG or NOTICE
    text: str
    reply_to: str | None = None
    edited: int | None = None
    redacted: int | None = None

    @property
    def room(self) -> str | None:
        return self.target[1:] if self.target.startswith("#") else None


def _message(row: sqlite3.Row) -> Message:
    return Message(
        row["seq"],
        row["msgid"],
        row["time"],
        row["sender"],
        row["target"],
        row["kind"],
        row["text"],
        row["reply_to"],
        row["edited"],
        row["redacted"],
    )


def _log_event(c: sqlite3.Connection, kind: str, sender: str, target: str, room_id: int | None, text: str) -> Message:
    """Record an event for history (inside a write job: the same transaction as the change)."""
    msgid, t = new_msgid(), now_ms()
    cur = c.execute(
        f"INSERT INTO events(seq, msgid, time, sender, target, room_id, kind, text) VALUES (({_NEXT_SEQ}), ?, ?, ?, ?, ?, ?, ?)",
        (msgid, t, sender, target, room_id, kind, text),
    )
    return Message(int(cur.lastrowid or 0), msgid, t, sender, target, kind, text)


def _room(row: sqlite3.Row) -> Room:
    return Room(
        row["id"], row["name"], bool(row["private"]), row["topic"], row["topic_by"], row["topic_time"], row["created"]
    )


class StoreError(ValueError):
    """A refused write (unknown room, unknown message); the text is fit for the user."""


WriteFn = Callable[[sqlite3.Connection], Any]
# a new message is handed to IRC connections before its commit only while fewer writes than
# this wait for the next commit (ChatService.post: a steady rate, not a burst)
EARLY_MAX = 4


@dataclass
class _Job:
    fn: WriteFn
    # an INSERT that may run with its neighbours as one ``executemany``: (sql, params), the
    # sql's first placeholder the seq the writer assigns (``fn`` does the same alone)
    bulk: tuple[str, tuple[Any, ...]] | None = None
    result: Any = None
    error: BaseException | None = None


@dataclass
class _Batch:
    jobs: list[_Job] = field(default_factory=list)
    done: gevent.event.Event = field(default_factory=gevent.event.Event)


class GroupWriter:
    """Runs write functions in batches: one threadpool call, one transaction, one fsync each.

    Each job runs inside a SAVEPOINT, so a failing job (a constraint) is rolled back alone and
    its caller gets the exception; the rest of the batch commits. Consecutive ``bulk`` jobs (new
    messages) run as ONE ``executemany`` with seqs numbered from ``seq_sql`` — three statements
    and three GIL round trips per message were most of the writer thread's time, and the hub
    waited on that GIL; if the statement fails they run one by one as above."""

    def __init__(self, conn: sqlite3.Connection, seq_sql: str = ""):
        self.conn = conn
        self.seq_sql = seq_sql
        self._pending = _Batch()
        self._busy = False
        self.batches = 0  # committed batches (tests and benches read it)
        self.jobs = 0

    def waiting(self) -> int:
        """Writes queued for the next commit (0 when none is in flight: a write commits at once)."""
        return len(self._pending.jobs)

    def submit(self, fn: WriteFn, bulk: tuple[str, tuple[Any, ...]] | None = None) -> Any:
        job = _Job(fn, bulk if self.seq_sql else None)
        batch = self._pending
        batch.jobs.append(job)
        if not self._busy:
            self._lead()
        else:
            batch.done.wait()
            # Waking a batch's waiters is one hub callback that runs each of them in turn, and
            # each then fans its message out: 2,000 followers held the hub 508 ms (bench
            # chat_rss, 20 connections). Yielding once moves each follower's work into a
            # callback of its own, which the hub interleaves with timers and I/O.
            gevent.sleep(0)
        if job.error is not None:
            raise job.error
        return job.result

    def _lead(self) -> None:
        """Commit the waiting batch; hand the next one to a new leader greenlet.

        The caller's own job is in the batch it commits, so its latency is one commit; jobs
        queued meanwhile form the next batch, led by a fresh greenlet."""
        self._busy = True
        batch, self._pending = self._pending, _Batch()
        try:
            _in_threadpool(self._commit, batch.jobs)
            self.batches += 1
            self.jobs += len(batch.jobs)
        except BaseException as exc:  # the commit itself failed: nobody's write is on disk
            for job in batch.jobs:
                job.error = job.error or StoreError(f"chat store write failed: {exc}")
            if not isinstance(exc, Exception):
                raise
        finally:
            batch.done.set()
            if self._pending.jobs:
                gevent.spawn(self._lead)
            else:
                self._busy = False

    def _commit(self, jobs: list[_Job]) -> None:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            i = 0
            while i < len(jobs):
                bulk = jobs[i].bulk
                if bulk is not None:
                    j = i + 1
                    while j < len(jobs) and (b := jobs[j].bulk) is not None and b[0] == bulk[0]:
                        j += 1
                    if self._bulk(conn, bulk[0], jobs[i:j]):
                        i = j
                        continue
                    for job in jobs[i:j]:
                        self._one(conn, job)
                    i = j
                    continue
                self._one(conn, jobs[i])
                i += 1
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _one(conn: sqlite3.Connection, job: _Job) -> None:
        conn.execute("SAVEPOINT job")
        try:
            job.result = job.fn(conn)
        except Exception as exc:
            conn.execute("ROLLBACK TO job")
            job.error = exc
        conn.execute("RELEASE job")

    def _bulk(self, conn: sqlite3.Connection, sql: str, jobs: list[_Job]) -> bool:
        """Run ``jobs`` as one executemany; their results are their seqs. False (nothing
        written) if it failed: the caller runs them one by one."""
        conn.execute("SAVEPOINT bulk")
        try:
            base = int(conn.execute(self.seq_sql).fetchone()[0])
            conn.executemany(sql, [(base + k, *job.bulk[1]) for k, job in enumerate(jobs) if job.bulk])
        except sqlite3.Error:
            conn.execute("ROLLBACK TO bulk")
            conn.execute("RELEASE bulk")
            return False
        conn.execute("RELEASE bulk")
        for k, job in enumerate(jobs):
            job.result = base + k
        return True


def _in_threadpool(fn: Callable[..., Any], *args: Any) -> Any:
    return pools.run_io(fn, *args)


class ChatStore:
    """The chat database: writes group-committed (``GroupWriter``), reads on the hub."""

    def __init__(self, path: Path):
        self.path = path
        self.reader: Database = open_database(path, MIGRATIONS)
        self._wconn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
        self._wconn.row_factory = sqlite3.Row
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=10000"):
            self._wconn.execute(f"PRAGMA {pragma}")
        self.writer = GroupWriter(self._wconn, _NEXT_SEQ)

    def close(self) -> None:
        self.reader.close()
        self._wconn.close()

    # -- rooms and membership ---------------------------------------------------------------
    def room(self, name: str) -> Room | None:
        row = self.reader.one("SELECT * FROM rooms WHERE name = ?", (name,))
        return _room(row) if row else None

    def rooms(self) -> list[Room]:
        return [_room(r) for r in self.reader.query("SELECT * FROM rooms ORDER BY name")]

    def create_room(self, name: str, creator: str = "", private: bool = False) -> Room:
        def fn(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT OR IGNORE INTO rooms(name, private, created, created_by) VALUES (?, ?, ?, ?)",
                (name, int(private), now_ms(), creator),
            )

        self.writer.submit(fn)
        room = self.room(name)
        assert room is not None
        return room

    def members(self, room_id: int) -> list[str]:
        return [r[0] for r in self.reader.query("SELECT account FROM members WHERE room_id = ?", (room_id,))]

    def all_members(self) -> dict[str, set[str]]:
        """{room name (lower case): accounts}: the fan-out cache the core keeps in memory."""
        out: dict[str, set[str]] = {}
        for r in self.reader.query("SELECT lower(r.name), m.account FROM members m JOIN rooms r ON r.id = m.room_id"):
            out.setdefault(r[0], set()).add(r[1])
        return out

    def rooms_of(self, account: str) -> list[Room]:
        rows = self.reader.query(
            "SELECT r.* FROM rooms r JOIN members m ON m.room_id = r.id WHERE m.account = ? ORDER BY r.name",
            (account,),
        )
        return [_room(r) for r in rows]

    def join(self, room_id: int, account: str) -> bool:
        """Add a member (and drop their invitation); False if they were one already."""

        def fn(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "INSERT OR IGNORE INTO members(room_id, account, joined) VALUES (?, ?, ?)", (room_id, account, now_ms())
            )
            c.execute("DELETE FROM invites WHERE room_id = ? AND account = ?", (room_id, account))
            return cur.rowcount > 0

        return bool(self.writer.submit(fn))

    def join_logged(self, room_id: int, account: str, target: str) -> Message | None:
        """``join``, recording a JOIN event when the account is newly a member (returned)."""

        def fn(c: sqlite3.Connection) -> Message | None:
            cur = c.execute(
                "INSERT OR IGNORE INTO members(room_id, account, joined) VALUES (?, ?, ?)", (room_id, account, now_ms())
            )
            c.execute("DELETE FROM invites WHERE room_id = ? AND account = ?", (room_id, account))
            return _log_event(c, "JOIN", account, target, room_id, "") if cur.rowcount > 0 else None

        result: Message | None = self.writer.submit(fn)
        return result

    def part_logged(self, room_id: int, account: str, target: str, reason: str) -> Message | None:
        """Remove a member, recording a PART event (returned; None if it was no member)."""

        def fn(c: sqlite3.Connection) -> Message | None:
            if c.execute("DELETE FROM members WHERE room_id = ? AND account = ?", (room_id, account)).rowcount == 0:
                return None
            return _log_event(c, "PART", account, target, room_id, reason)

        result: Message | None = self.writer.submit(fn)
        return result

    def part(self, room_id: int, account: str) -> bool:
        def fn(c: sqlite3.Connection) -> bool:
            return c.execute("DELETE FROM members WHERE room_id = ? AND account = ?", (room_id, account)).rowcount > 0

        return bool(self.writer.submit(fn))

    def invite(self, room_id: int, account: str, by: str) -> None:
        self.writer.submit(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO invites(room_id, account, invited_by, time) VALUES (?, ?, ?, ?)",
                (room_id, account, by, now_ms()),
            )
        )

    def is_invited(self, room_id: int, account: str) -> bool:
        return (
            self.reader.one("SELECT 1 FROM invites WHERE room_id = ? AND account = ?", (room_id, account)) is not None
        )

    def set_topic(self, room_id: int, topic: str, by: str, target: str | None = None) -> Message | None:
        """Change a topic; with ``target`` (the room's) a TOPIC event is recorded and returned."""

        def fn(c: sqlite3.Connection) -> Message | None:
            c.execute(
                "UPDATE rooms SET topic = ?, topic_by = ?, topic_time = ? WHERE id = ?", (topic, by, now_ms(), room_id)
            )
            return _log_event(c, "TOPIC", by, target, room_id, topic) if target else None

        result: Message | None = self.writer.submit(fn)
        return result

    def set_private(self, room_id: int, private: bool, by: str = "", target: str | None = None) -> Message | None:
        """Make a room private or public; with ``target`` a MODE event (+i/-i) is recorded."""

        def fn(c: sqlite3.Connection) -> Message | None:
            c.execute("UPDATE rooms SET private = ? WHERE id = ?", (int(private), room_id))
            return _log_event(c, "MODE", by, target, room_id, "+i" if private else "-i") if target else None

        result: Message | None = self.writer.submit(fn)
        return result

    def add_event(self, kind: str, sender: str, target: str, room_id: int | None, text: str) -> Message:
        """Record an event that changes nothing else (a TAGMSG with client tags)."""
        result: Message = self.writer.submit(lambda c: _log_event(c, kind, sender, target, room_id, text))
        return result

    def first_seen(self, account: str) -> bool:
        """Record an account's first use of the chat; True the first time only."""
        return bool(
            self.writer.submit(
                lambda c: (
                    c.execute(
                        "INSERT OR IGNORE INTO users(account, first_seen) VALUES (?, ?)", (account, now_ms())
                    ).rowcount
                    > 0
                )
            )
        )

    # -- messages ---------------------------------------------------------------------------
    def add_message(
        self,
        sender: str,
        target: str,
        text: str,
        *,
        room_id: int | None = None,
        kind: str = "PRIVMSG",
        reply_to: str | None = None,
        queued: Callable[[Message], None] | None = None,
    ) -> Message:
        """Store a message; returns it once it is on disk (the caller may acknowledge it).
        ``queued`` is called with it (seq 0) just before its write is queued, nothing
        yielding between (messages reach it in the order they are stored), when fewer than
        ``EARLY_MAX`` writes wait for the next commit; else not at all."""
        msgid, t = new_msgid(), now_ms()

        params = (msgid, t, sender, target, room_id, kind, text, reply_to)

        def fn(c: sqlite3.Connection) -> int:
            cur = c.execute(_INSERT_MESSAGE.replace("?", f"({_NEXT_SEQ})", 1), params)
            return int(cur.lastrowid or 0)

        if queued is not None and self.writer.waiting() < EARLY_MAX:
            queued(Message(0, msgid, t, sender, target, kind, text, reply_to))
        seq = self.writer.submit(fn, bulk=(_INSERT_MESSAGE, params))
        return Message(seq, msgid, t, sender, target, kind, text, reply_to)

    def message(self, msgid: str) -> Message | None:
        row = self.reader.one("SELECT * FROM messages WHERE msgid = ?", (msgid,))
        return _message(row) if row else None

    def edit(self, msgid: str, text: str) -> int:
        t = now_ms()

        def fn(c: sqlite3.Connection) -> None:
            row = c.execute("SELECT text FROM messages WHERE msgid = ? AND redacted IS NULL", (msgid,)).fetchone()
            if row is None:
                raise StoreError("no such message")
            c.execute("INSERT INTO edits(msgid, time, old_text) VALUES (?, ?, ?)", (msgid, t, row[0]))
            c.execute("UPDATE messages SET text = ?, edited = ? WHERE msgid = ?", (text, t, msgid))

        self.writer.submit(fn)
        return t

    def redact(self, msgid: str, by: str = "") -> Message:
        """Delete a message's text for good (the row stays, marked, so ids never dangle); a
        REDACT event is recorded (``text``: the msgid) and returned."""
        t = now_ms()

        def fn(c: sqlite3.Connection) -> Message:
            row = c.execute("SELECT target, room_id, sender FROM messages WHERE msgid = ?", (msgid,)).fetchone()
            if row is None:
                raise StoreError("no such message")
            c.execute("UPDATE messages SET text = '', redacted = ? WHERE msgid = ?", (t, msgid))
            c.execute("DELETE FROM edits WHERE msgid = ?", (msgid,))
            c.execute("DELETE FROM reactions WHERE msgid = ?", (msgid,))
            return _log_event(c, "REDACT", by or row[2], row[0], row[1], msgid)

        result: Message = self.writer.submit(fn)
        return result

    def react(self, msgid: str, account: str, reaction: str, add: bool = True) -> Message:
        """Add or remove a reaction; a TAGMSG event (its client tags as JSON) is recorded."""

        def fn(c: sqlite3.Connection) -> Message:
            if add:
                c.execute(
                    "INSERT OR IGNORE INTO reactions(msgid, account, reaction, time) VALUES (?, ?, ?, ?)",
                    (msgid, account, reaction, now_ms()),
                )
            else:
                c.execute(
                    "DELETE FROM reactions WHERE msgid = ? AND account = ? AND reaction = ?", (msgid, account, reaction)
                )
            c.execute("UPDATE messages SET changed = ? WHERE msgid = ?", (now_ms(), msgid))
            row = c.execute("SELECT target, room_id FROM messages WHERE msgid = ?", (msgid,)).fetchone()
            if row is None:
                raise StoreError("no such message")
            tags = {"+draft/react" if add else "+draft/unreact": reaction, "+draft/reply": msgid}
            return _log_event(c, "TAGMSG", account, row[0], row[1], json.dumps(tags))

        result: Message = self.writer.submit(fn)
        return result

    def reactions(self, msgid: str) -> list[tuple[str, str]]:
        rows = self.reader.query("SELECT account, reaction FROM reactions WHERE msgid = ? ORDER BY time", (msgid,))
        return [(r[0], r[1]) for r in rows]

    # -- read markers -----------------------------------------------------------------------
    def set_read_marker(self, account: str, target: str, t: int) -> int:
        """Move the marker forward only; returns the marker now stored."""

        def fn(c: sqlite3.Connection) -> int:
            c.execute(
                "INSERT INTO read_markers(account, target, time) VALUES (?, ?, ?)"
                " ON CONFLICT(account, target) DO UPDATE SET time = max(time, excluded.time)",
                (account, target, t),
            )
            row = c.execute("SELECT time FROM read_markers WHERE account = ? AND target = ?", (account, target))
            return int(row.fetchone()[0])

        return int(self.writer.submit(fn))

    def read_marker(self, account: str, target: str) -> int | None:
        row = self.reader.one("SELECT time FROM read_markers WHERE account = ? AND target = ?", (account, target))
        return int(row[0]) if row else None

    # -- history ----------------------------------------------------------------------------
    # ``events=True``: the JOIN/PART/TOPIC/MODE/TAGMSG/REDACT events are merged in (IRC's
    # draft/event-playback); they share the messages' seq order and count towards ``limit``.
    def _bound(self, target: str, ref: str | int) -> tuple[str, int]:
        """A reference as (column, value): a msgid (of a message or an event) → its seq, a
        timestamp (ms) → time."""
        if isinstance(ref, int):
            return "time", ref
        row = self.reader.one("SELECT seq FROM messages WHERE msgid = ? AND target = ?", (ref, target))
        if row is None:
            row = self.reader.one("SELECT seq FROM events WHERE msgid = ? AND target = ?", (ref, target))
        if row is None:
            raise StoreError("no such message")
        return "seq", int(row[0])

    def _select(
        self, target: str, where: str, params: tuple[Any, ...], order: str, limit: int, events: bool = False
    ) -> list[Message]:
        limit = max(0, min(limit, MAX_HISTORY))
        if events:
            sql = f"SELECT * FROM {_HISTORY_SOURCE} WHERE 1 {where} ORDER BY seq {order} LIMIT ?"
            rows = self.reader.query(sql, (target, target, *params, limit))
        else:
            rows = self.reader.query(
                f"SELECT * FROM messages WHERE target = ? AND redacted IS NULL {where} ORDER BY seq {order} LIMIT ?",
                (target, *params, limit),
            )
        msgs = [_message(r) for r in rows]
        if order == "DESC":
            msgs.reverse()
        return msgs

    def latest(self, target: str, limit: int, after: str | int | None = None, events: bool = False) -> list[Message]:
        """The newest ``limit`` messages (after ``after`` if given), oldest first."""
        if after is None:
            return self._select(target, "", (), "DESC", limit, events)
        col, v = self._bound(target, after)
        return self._select(target, f"AND {col} > ?", (v,), "DESC", limit, events)

    def before(self, target: str, ref: str | int, limit: int, events: bool = False) -> list[Message]:
        col, v = self._bound(target, ref)
        return self._select(target, f"AND {col} < ?", (v,), "DESC", limit, events)

    def after(self, target: str, ref: str | int, limit: int, events: bool = False) -> list[Message]:
        col, v = self._bound(target, ref)
        return self._select(target, f"AND {col} > ?", (v,), "ASC", limit, events)

    def around(self, target: str, ref: str | int, limit: int, events: bool = False) -> list[Message]:
        """``limit`` messages centred on ``ref`` (the referenced message included)."""
        col, v = self._bound(target, ref)
        older = self._select(target, f"AND {col} < ?", (v,), "DESC", limit // 2, events)
        newer = self._select(target, f"AND {col} >= ?", (v,), "ASC", limit - len(older), events)
        return older + newer

    def between(self, target: str, start: str | int, end: str | int, limit: int, events: bool = False) -> list[Message]:
        """Messages strictly between two references; counted from ``start``'s side."""
        c1, v1 = self._bound(target, start)
        c2, v2 = self._bound(target, end)
        if (c1 == c2 and v1 <= v2) or (c1 != c2 and self._ordered(c1, v1, c2, v2)):
            return self._select(target, f"AND {c1} > ? AND {c2} < ?", (v1, v2), "ASC", limit, events)
        return self._select(target, f"AND {c1} < ? AND {c2} > ?", (v1, v2), "DESC", limit, events)

    def _time_of(self, col: str, v: int) -> int:
        if col == "time":
            return v
        row = self.reader.one("SELECT time FROM messages WHERE seq = ?", (v,)) or self.reader.one(
            "SELECT time FROM events WHERE seq = ?", (v,)
        )
        return int(row[0]) if row else 0

    def _ordered(self, c1: str, v1: int, c2: str, v2: int) -> bool:
        # one msgid, one timestamp: compare on time
        return self._time_of(c1, v1) <= self._time_of(c2, v2)

    def dm_targets_of(self, account: str) -> list[str]:
        """The stored targets of ``account``'s direct conversations (exact match on either side
        of the key: no LIKE, whose ``_`` and ``%`` would match other people's conversations).
        Scans the target index once: for TARGETS and search, not for every message."""
        rows = self.reader.query(
            "SELECT DISTINCT target FROM messages WHERE room_id IS NULL AND instr(target, char(10)) > 0"
            " AND (substr(target, 1, instr(target, char(10)) - 1) = ?1"
            "      OR substr(target, instr(target, char(10)) + 1) = ?1)",
            (account,),
        )
        return [r[0] for r in rows]

    def targets(self, account: str, start: int, end: int, limit: int) -> list[tuple[str, int]]:
        """Conversations of ``account`` with a message between two times: [(target, latest time)]."""
        lo, hi = min(start, end), max(start, end)
        mine = ["#" + r.name.lower() for r in self.rooms_of(account)] + self.dm_targets_of(account)
        if not mine:
            return []
        marks = ",".join("?" * len(mine))
        rows = self.reader.query(
            "SELECT target, max(time) AS t FROM messages WHERE time > ? AND time < ? AND redacted IS NULL"
            f" AND target IN ({marks}) GROUP BY target ORDER BY t LIMIT ?",
            (lo, hi, *mine, min(limit, MAX_HISTORY)),
        )
        return [(r[0], int(r[1])) for r in rows]

    def search(self, query: str, targets: list[str], limit: int = 50) -> list[Message]:
        """FTS5 search among ``targets`` (the caller's rooms and DMs), newest first."""
        if not targets or not query.strip():
            return []
        # every word a quoted FTS5 string: user text is never FTS5 syntax
        fts = " ".join('"' + w.replace('"', '""') + '"' for w in query.split())
        marks = ",".join("?" * len(targets))
        rows = self.reader.query(
            "SELECT m.* FROM messages_fts f JOIN messages m ON m.seq = f.rowid"
            f" WHERE messages_fts MATCH ? AND m.target IN ({marks}) AND m.redacted IS NULL"
            " ORDER BY m.seq DESC LIMIT ?",
            (fts, *targets, min(limit, MAX_HISTORY)),
        )
        return [_message(r) for r in rows]

    def changed_since(self, target: str, first: str, last: str, since: int, limit: int = 200) -> list[Message]:
        """Messages of ``target`` from ``first`` to ``last`` (msgids) edited, deleted or reacted to
        after ``since`` (ms), deleted ones included: what a web page that was away since then
        must redraw. A reaction added or removed stamps its message's ``changed``."""
        lo, hi = self._bound(target, first)[1], self._bound(target, last)[1]
        rows = self.reader.query(
            "SELECT * FROM messages WHERE target = ?1 AND seq BETWEEN ?2 AND ?3 AND (edited > ?4 OR redacted > ?4"
            " OR changed > ?4 OR msgid IN (SELECT msgid FROM reactions WHERE time > ?4)) ORDER BY seq LIMIT ?5",
            (target, lo, hi, since, limit),
        )
        return [_message(r) for r in rows]

    def unread_counts(self, account: str, targets: list[str], cap: int = 100) -> dict[str, int]:
        """Messages of others after ``account``'s read marker, per target (at most ``cap`` each):
        one indexed count per conversation, for the web chat's room list."""
        out: dict[str, int] = {}
        for t in targets:
            row = self.reader.one(
                "SELECT count(*) FROM (SELECT 1 FROM messages WHERE target = ?1 AND redacted IS NULL"
                " AND sender != ?2 AND time > coalesce((SELECT time FROM read_markers"
                " WHERE account = ?2 AND target = ?1), 0) LIMIT ?3)",
                (t, account, cap),
            )
            out[t] = int(row[0]) if row else 0
        return out

    def count(self, target: str | None = None) -> int:
        if target is None:
            return int(self.reader.one("SELECT count(*) FROM messages")[0])  # type: ignore[index]
        return int(self.reader.one("SELECT count(*) FROM messages WHERE target = ?", (target,))[0])  # type: ignore[index]

    # -- export and digests (read-only scans, paged by seq) ------------------------------------
    def messages_after(self, target: str | None, after_seq: int, limit: int) -> list[Message]:
        """Messages (redacted ones included, text empty) with ``seq > after_seq``, oldest first:
        one target's, or every target's when ``target`` is None; at most ``limit``."""
        if target is None:
            rows = self.reader.query("SELECT * FROM messages WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit))
        else:
            rows = self.reader.query(
                "SELECT * FROM messages WHERE target = ? AND seq > ? ORDER BY seq LIMIT ?", (target, after_seq, limit)
            )
        return [_message(r) for r in rows]

    def dm_targets(self) -> list[str]:
        """Every direct conversation's stored target (for exports)."""
        rows = self.reader.query("SELECT DISTINCT target FROM messages WHERE room_id IS NULL ORDER BY target")
        return [r[0] for r in rows if "\n" in r[0]]

    def known_accounts(self) -> set[str]:
        """Accounts that used the chat once (``first_seen``): they joined the default rooms."""
        return {r[0] for r in self.reader.query("SELECT account FROM users")}

    def last_seq(self) -> int:
        return int(self.reader.one("SELECT coalesce(max(seq), 0) FROM messages")[0])  # type: ignore[index]

    def delete_room(self, room_id: int) -> None:
        """Remove a room with its members, invitations and messages (reactions, edits, read
        markers of its messages go too)."""

        def fn(c: sqlite3.Connection) -> None:
            row = c.execute("SELECT name FROM rooms WHERE id = ?", (room_id,)).fetchone()
            if row is None:
                raise StoreError("no such room")
            target = "#" + str(row[0]).lower()
            c.execute("DELETE FROM reactions WHERE msgid IN (SELECT msgid FROM messages WHERE room_id = ?)", (room_id,))
            c.execute("DELETE FROM edits WHERE msgid IN (SELECT msgid FROM messages WHERE room_id = ?)", (room_id,))
            c.execute("DELETE FROM messages WHERE room_id = ?", (room_id,))
            c.execute("DELETE FROM events WHERE room_id = ?", (room_id,))
            c.execute("DELETE FROM read_markers WHERE target = ?", (target,))
            c.execute("DELETE FROM members WHERE room_id = ?", (room_id,))
            c.execute("DELETE FROM invites WHERE room_id = ?", (room_id,))
            c.execute("DELETE FROM rooms WHERE id = ?", (room_id,))

        self.writer.submit(fn)


def open_store(data_dir: Path) -> ChatStore:
    return ChatStore(Path(data_dir) / "chat.sqlite3")


__all__ = ["ChatStore", "Message", "Room", "StoreError", "open_store", "dm_target", "room_target", "now_ms"]
