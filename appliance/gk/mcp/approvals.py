"""Pending actions: what a tool with a side effect asks for, kept until the owner decides.

Every tool that sends, posts, creates, changes or deletes (``gk.mcp.writetools``) does not act:
it stores a *pending action* here — the tool, the full payload (for mail: the very RFC 5322
message that will be submitted, so the owner approves exactly the bytes that leave), a one-line
summary — and answers "queued for approval (id …)" with the approval page's URL. The action
runs only when its owner clicks Approve on ``/approvals/<id>`` in an authenticated web session
(cookie + CSRF token: ``gk.web.approvals``); nothing an MCP request or a model produces reaches
that code path (no tool, no JSON-RPC method approves).

Execute once: ``claim`` moves a row from ``pending`` to ``executing`` in one ``UPDATE … WHERE
state = 'pending' AND owner = ? AND expires > now``; only the caller that changed the row runs
the action, a replayed or concurrent approval finds nothing to claim. After a crash between the
claim and the end of the action the row stays ``executing`` (shown as interrupted): at most
once, never twice. Pending actions older than ``[mcp] approval_hours`` expire.

Storage: ``DATA_DIR/mcp.sqlite3`` (WAL, ``synchronous=FULL``: a queued action survives a power
cut before the tool answers), shared with the audit log (``gk.mcp.audit``).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gk.locks import SharedLock
from gk.store.db import Database, open_database

PENDING, EXECUTING, DONE, FAILED, REJECTED, EXPIRED = "pending", "executing", "done", "failed", "rejected", "expired"
STATES = (PENDING, EXECUTING, DONE, FAILED, REJECTED, EXPIRED)
DEFAULT_HOURS = 72
KEEP_MESSAGE_DAYS = 30  # a decided action's message (up to 10 MB) is kept this long for the owner to look back

MIGRATIONS = [
    """
    CREATE TABLE pending_actions (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        tool TEXT NOT NULL,
        summary TEXT NOT NULL,
        payload TEXT NOT NULL,
        message BLOB,
        state TEXT NOT NULL DEFAULT 'pending',
        created REAL NOT NULL,
        expires REAL NOT NULL,
        decided REAL,
        decided_by TEXT NOT NULL DEFAULT '',
        result TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX pending_actions_owner ON pending_actions(owner, state, created);
    CREATE TABLE tool_calls (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        address TEXT NOT NULL,
        via TEXT NOT NULL,
        tool TEXT NOT NULL,
        arguments TEXT NOT NULL,
        arguments_sha256 TEXT NOT NULL,
        result_chars INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        action_id TEXT
    );
    CREATE INDEX tool_calls_address ON tool_calls(address, at);
    CREATE INDEX tool_calls_action ON tool_calls(action_id);
    """,
    # why an approved action failed (``ActionFailed.kind``), beside ``result``'s English text;
    # '' for one that did not fail or failed before the kinds (its page shows the text alone)
    "ALTER TABLE pending_actions ADD COLUMN result_kind TEXT NOT NULL DEFAULT ''",
]

_open: dict[Path, Database] = {}
_open_lock = SharedLock()  # the hub and pool threads (gk.locks)


def database(data_dir: Path) -> Database:
    """The one connection to ``mcp.sqlite3`` of this process (the MCP server and the web UI)."""
    path = (Path(data_dir) / "mcp.sqlite3").resolve()
    with _open_lock:
        db = _open.get(path)
        if db is None:
            db = _open[path] = open_database(path, MIGRATIONS)
        return db


def close_all() -> None:
    with _open_lock:
        for db in _open.values():
            db.close()
        _open.clear()


@dataclass(frozen=True)
class PendingAction:
    id: str
    owner: str
    tool: str
    summary: str
    payload: dict[str, Any]
    message: bytes | None
    state: str
    created: float
    expires: float
    decided: float | None
    decided_by: str
    result: str
    result_kind: str = ""  # a failure's ``ActionFailed.kind``

    @property
    def is_pending(self) -> bool:
        return self.state == PENDING and self.expires > time.time()


def _action(row: Any) -> PendingAction:
    return PendingAction(
        id=row["id"],
        owner=row["owner"],
        tool=row["tool"],
        summary=row["summary"],
        payload=json.loads(row["payload"]),
        message=bytes(row["message"]) if row["message"] is not None else None,
        state=row["state"],
        created=row["created"],
        expires=row["expires"],
        decided=row["decided"],
        decided_by=row["decided_by"],
        result=row["result"],
        result_kind=row["result_kind"],
    )


class ActionError(Exception):
    """An approval that cannot go on: unknown or foreign id (``not_found``), already decided or
    expired (``not_pending``)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class ApprovalStore:
    def __init__(self, data_dir: Path, hours: int = DEFAULT_HOURS):
        self.db = database(data_dir)
        self.seconds = max(1, hours) * 3600

    def queue(
        self, owner: str, tool: str, summary: str, payload: dict[str, Any], message: bytes | None = None
    ) -> PendingAction:
        """Store a pending action (durable before this returns); its id is 128 random bits."""
        now = time.time()
        action_id = secrets.token_urlsafe(16)
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO pending_actions(id, owner, tool, summary, payload, message, created, expires) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (action_id, owner, tool, summary[:300], json.dumps(payload, ensure_ascii=False), message, now,
                 now + self.seconds),
            )  # fmt: skip
        found = self.get(action_id)
        assert found is not None
        return found

    def get(self, action_id: str) -> PendingAction | None:
        row = self.db.one("SELECT * FROM pending_actions WHERE id = ?", (action_id,))
        return _action(row) if row is not None else None

    def of_owner(self, owner: str, action_id: str) -> PendingAction:
        """The owner's action ``action_id``; another user's is as unknown as a missing one."""
        action = self.get(action_id) if len(action_id) <= 64 else None
        if action is None or action.owner != owner:
            raise ActionError("not_found", "no such pending action")
        return action

    def expire(self) -> int:
        """Pending actions past their time become ``expired``; the message of an action decided
        more than ``KEEP_MESSAGE_DAYS`` ago is dropped (its payload and the audit stay)."""
        now = time.time()
        with self.db.transaction() as conn:
            cur = conn.execute(
                "UPDATE pending_actions SET state = ?, decided = ? WHERE state = ? AND expires <= ?",
                (EXPIRED, now, PENDING, now),
            )
            conn.execute(
                "UPDATE pending_actions SET message = NULL WHERE message IS NOT NULL AND state NOT IN (?, ?) "
                "AND decided < ?",
                (PENDING, EXECUTING, now - KEEP_MESSAGE_DAYS * 86400),
            )
        return cur.rowcount

    def list(self, owner: str, limit: int = 100) -> list[PendingAction]:
        """The owner's actions, pending first, then the newest decided ones."""
        self.expire()
        rows = self.db.query(
            "SELECT * FROM pending_actions WHERE owner = ? ORDER BY state != 'pending', created DESC LIMIT ?",
            (owner, limit),
        )
        return [_action(r) for r in rows]

    def count_pending(self, owner: str) -> int:
        row = self.db.one(
            "SELECT count(*) FROM pending_actions WHERE owner = ? AND state = ? AND expires > ?",
            (owner, PENDING, time.time()),
        )
        return int(row[0]) if row else 0

    def claim(self, owner: str, action_id: str, decided_by: str) -> PendingAction:
        """Take a pending action for execution, once: the row moves to ``executing`` here."""
        with self.db.transaction() as conn:
            cur = conn.execute(
                "UPDATE pending_actions SET state = ?, decided = ?, decided_by = ? "
                "WHERE id = ? AND owner = ? AND state = ? AND expires > ?",
                (EXECUTING, time.time(), decided_by, action_id, owner, PENDING, time.time()),
            )
        if cur.rowcount != 1:
            self.of_owner(owner, action_id)  # not_found for an unknown or foreign id
            raise ActionError("not_pending", "this action was already decided or has expired")
        return self.of_owner(owner, action_id)

    def reject(self, owner: str, action_id: str, decided_by: str) -> None:
        with self.db.transaction() as conn:
            cur = conn.execute(
                "UPDATE pending_actions SET state = ?, decided = ?, decided_by = ? "
                "WHERE id = ? AND owner = ? AND state = ?",
                (REJECTED, time.time(), decided_by, action_id, owner, PENDING),
            )
        if cur.rowcount != 1:
            self.of_owner(owner, action_id)
            raise ActionError("not_pending", "this action was already decided or has expired")

    def finish(self, action_id: str, ok: bool, result: str, kind: str = "") -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE pending_actions SET state = ?, result = ?, result_kind = ? WHERE id = ? AND state = ?",
                (DONE if ok else FAILED, result[:2000], "" if ok else kind, action_id, EXECUTING),
            )


# why an approved action failed (``ActionFailed.kind``; an external server's call adds
# ``gk.mcp.client.KINDS`` and ``toolbox.TOOL_ERROR``): the owner is told it in their language
# (``gk.web.approvals.FAILURES``), the English text kept as the detail
GONE = "gone"  # what it acts on no longer exists (the message, the event, the calendar, the server)
CHANGED = "changed"  # it changed since it was asked: nothing done, so as not to act on something else
UNDELIVERABLE = "undeliverable"  # the mail was refused (the SMTP reply says why)
UNAVAILABLE = "unavailable"  # the feature is off, or the account is gone
FAILED_KIND = "failed"  # the rest
CRASHED = "crashed"  # an unexpected exception (logged)


class ActionFailed(Exception):
    """An approved action that could not be carried out (the recipient was refused, the
    message is gone…): the row becomes ``failed`` with this text and ``kind``."""

    def __init__(self, message: str, kind: str = FAILED_KIND):
        super().__init__(message)
        self.kind = kind


# the executors of approved actions, by tool name: (the owner's address, the action) -> result text
Executor = Callable[[str, PendingAction], str]


def approve(store: ApprovalStore, executors: dict[str, Executor], owner: str, action_id: str) -> PendingAction:
    """The owner approved ``action_id`` in their web session: claim it and run it, once.
    Raises ``ActionError`` when it is not theirs or not pending; a failing action is recorded
    as ``failed`` (and returned), never retried."""
    action = store.claim(owner, action_id, owner)
    executor = executors.get(action.tool)
    try:
        if executor is None:
            raise ActionFailed(f"{action.tool} is not available on this box now", UNAVAILABLE)
        text = executor(owner, action)
    except ActionFailed as exc:
        store.finish(action.id, False, str(exc), exc.kind)
    except Exception as exc:  # recorded, shown to the owner; the row never goes back to pending
        store.finish(action.id, False, f"internal error: {type(exc).__name__}", CRASHED)
        raise
    else:
        store.finish(action.id, True, text)
    found = store.get(action.id)
    assert found is not None
    return found


__all__ = [
    "ActionError",
    "ActionFailed",
    "ApprovalStore",
    "Executor",
    "PendingAction",
    "STATES",
    "approve",
    "database",
]
