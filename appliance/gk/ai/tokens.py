"""Per-user API tokens for ``/v1`` (the OpenAI-compatible API), ``/mcp`` and ``/api/v1`` (mail REST).

Scopes say what a token may reach: the transports ``ai`` (``/v1``) and ``mcp`` (``/mcp``), and
per feature, read-only or read-write: ``mail:read``, ``mail:write``, ``chat:read``,
``chat:write``, ``calendar:read``, ``calendar:write`` (calendars and contacts). A ``:write``
scope carries its ``:read`` (stored explicitly). Aliases (``parse_scopes``): ``read`` = every
feature read-only, ``write`` = every feature read-write, ``all`` = everything, ``mail`` =
``mail:read,mail:write`` (likewise ``chat``, ``calendar``; ``contacts`` names ``calendar``);
``mcp`` given with no feature scope means ``mcp`` plus read-only access to every feature, what
``gk token add ADDRESS --scope mcp`` always meant. Tokens made before scopes per feature
existed keep their meaning (the third migration): ``mcp`` tokens reached the read-only mail
tools, so they get ``mail:read``.

Stored in ``DATA_DIR/ai.sqlite3`` as the SHA-256 of the token, never the token itself: ``gk
token add`` prints it once. A plain SHA-256 is enough here (a slow password hash would not add
safety) because the token is 32 random bytes from ``secrets``: nobody can guess a 256-bit
preimage, so the work factor of argon2 only protects low-entropy human passwords. It also
costs nothing per request (argon2id would take ~50 ms and 19 MiB on a board for every API
call) and lets the lookup go through a unique index on the hash. Writes are
``synchronous=FULL``: a token printed to the owner survives a power cut.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from gk.store.db import Database, open_database

PREFIX = "gk-"
TOUCH_SECONDS = 300.0  # last_used is written at most this often per token (no write per request)
TRANSPORTS = ("ai", "mcp")
FEATURES = ("mail", "chat", "calendar")
READ = tuple(f"{f}:read" for f in FEATURES)
WRITE = tuple(f"{f}:write" for f in FEATURES)
SCOPES = TRANSPORTS + tuple(s for f in FEATURES for s in (f"{f}:read", f"{f}:write"))
ALIASES: dict[str, tuple[str, ...]] = {
    "read": READ,
    "write": READ + WRITE,
    "rw": READ + WRITE,
    "all": SCOPES,
    **{f: (f"{f}:read", f"{f}:write") for f in FEATURES},
    "contacts": ("calendar:read", "calendar:write"),
    "contacts:read": ("calendar:read",),
    "contacts:write": ("calendar:write",),
    "dav": ("calendar:read", "calendar:write"),
}


class ScopeError(ValueError):
    """A scope that does not exist (the message names it and lists the known ones)."""


def parse_scopes(text: str) -> frozenset[str]:
    """The scopes a comma- or space-separated list names, aliases expanded, ``:write``
    carrying its ``:read``; ``ScopeError`` on an unknown name or an empty list."""
    words = [w.strip().lower() for w in text.replace(" ", ",").split(",") if w.strip()]
    if not words:
        raise ScopeError("no scope given; choose among " + ", ".join(SCOPES + tuple(ALIASES)))
    out: set[str] = set()
    for word in words:
        if word in SCOPES:
            out.add(word)
        elif word in ALIASES:
            out.update(ALIASES[word])
        else:
            raise ScopeError(f"unknown scope {word!r}; choose among " + ", ".join(SCOPES + tuple(ALIASES)))
    if "mcp" in out and not out & set(READ + WRITE):
        out.update(READ)  # bare ``mcp``: the MCP tools, read-only
    out.update(s.replace(":write", ":read") for s in list(out) if s.endswith(":write"))
    return frozenset(out)


def format_scopes(scopes: frozenset[str] | set[str]) -> str:
    """Canonical stored form: known scopes in ``SCOPES`` order, comma-separated."""
    return ",".join(s for s in SCOPES if s in scopes)


def has_scope(granted: frozenset[str], needed: str) -> bool:
    return needed in granted or (needed.endswith(":read") and needed.replace(":read", ":write") in granted)


# ai.sqlite3's schema, shared by this module and conversations.py (one migration list per file)
MIGRATIONS = [
    """
    CREATE TABLE api_tokens (
        id INTEGER PRIMARY KEY,
        address TEXT NOT NULL,
        token_sha256 BLOB NOT NULL UNIQUE,
        label TEXT NOT NULL DEFAULT '',
        scope TEXT NOT NULL DEFAULT 'ai',
        created REAL NOT NULL,
        last_used REAL NOT NULL DEFAULT 0
    );
    CREATE INDEX api_tokens_address ON api_tokens(address);
    """,
    """
    CREATE TABLE conversations (
        id INTEGER PRIMARY KEY,
        address TEXT NOT NULL,
        title TEXT NOT NULL DEFAULT '',
        model TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL,
        updated REAL NOT NULL
    );
    CREATE INDEX conversations_address ON conversations(address, updated);
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        created REAL NOT NULL
    );
    CREATE INDEX messages_conversation ON messages(conversation_id, id);
    """,
    # scopes per feature (gk.ai.tokens): an ``mcp`` token reached the read-only mail tools
    """
    UPDATE api_tokens SET scope = scope || ',mail:read' WHERE instr(',' || scope || ',', ',mcp,') > 0;
    """,
    # the assistant's tool calls and results (gk.web.assistant): what the page shows about them
    """
    ALTER TABLE messages ADD COLUMN meta TEXT NOT NULL DEFAULT '';
    """,
]


def open_ai_database(path: Path) -> Database:
    return open_database(path, MIGRATIONS)


@dataclass(frozen=True)
class TokenInfo:
    id: int
    address: str
    label: str
    scope: str
    created: float
    last_used: float

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(s for s in self.scope.split(",") if s)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


class TokenStore:
    """The ``api_tokens`` table of ``ai.sqlite3``; one connection, shared by greenlets."""

    def __init__(self, path: Path):
        self.db: Database = open_ai_database(path)

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> TokenStore:
        return cls(Path(data_dir) / "ai.sqlite3")

    def add(self, address: str, *, label: str = "", scope: str = "ai") -> tuple[int, str]:
        """Create a token for ``address`` with ``scope`` (``parse_scopes``' syntax: aliases
        allowed; ``ScopeError`` when unknown); returns (id, token). The token is not kept."""
        scope = format_scopes(parse_scopes(scope))
        token = PREFIX + secrets.token_urlsafe(32)
        with self.db.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO api_tokens(address, token_sha256, label, scope, created) VALUES (?,?,?,?,?)",
                (address, _digest(token), label, scope, time.time()),
            )
        return int(cur.lastrowid or 0), token

    def verify(self, token: str, scope: str = "ai") -> str | None:
        """The address a valid token with ``scope`` belongs to, else None."""
        info = self.lookup(token)
        if info is None or not has_scope(info.scopes, scope):
            return None
        return info.address

    def lookup(self, token: str) -> TokenInfo | None:
        """The token's row (address and scopes), else None."""
        if not token.startswith(PREFIX) or len(token) > 200:
            return None
        row = self.db.one(
            "SELECT id, address, label, scope, created, last_used FROM api_tokens WHERE token_sha256 = ?",
            (_digest(token),),
        )
        if row is None:
            return None
        info = TokenInfo(**dict(row))
        now = time.time()
        if now - info.last_used > TOUCH_SECONDS:  # "last used" for gk token list: a stamp, not a log
            try:
                with self.db.relaxed_commits(), self.db.transaction() as conn:
                    conn.execute("UPDATE api_tokens SET last_used = ? WHERE id = ?", (now, info.id))
            except sqlite3.Error:  # a stamp never refuses a request (the database busy, read-only)
                pass
        return info

    def list(self, address: str | None = None) -> list[TokenInfo]:
        sql = "SELECT id, address, label, scope, created, last_used FROM api_tokens"
        rows = (
            self.db.query(sql + " WHERE address = ? ORDER BY id", (address,))
            if address
            else self.db.query(sql + " ORDER BY address, id")
        )
        return [TokenInfo(**dict(r)) for r in rows]

    def delete(self, token_id: int, address: str | None = None) -> bool:
        with self.db.transaction() as conn:
            if address:
                cur = conn.execute("DELETE FROM api_tokens WHERE id = ? AND address = ?", (token_id, address))
            else:
                cur = conn.execute("DELETE FROM api_tokens WHERE id = ?", (token_id,))
        return cur.rowcount > 0

    def close(self) -> None:
        self.db.close()
