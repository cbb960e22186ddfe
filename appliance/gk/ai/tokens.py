"""Per-user API tokens for ``/v1`` (the OpenAI-compatible API) and, later, the MCP endpoint.

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
import time
from dataclasses import dataclass
from pathlib import Path

from gk.store.db import Database, open_database

PREFIX = "gk-"
SCOPES = ("ai", "mcp")

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
        """Create a token for ``address``; returns (id, token). The token is not kept."""
        token = PREFIX + secrets.token_urlsafe(32)
        with self.db.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO api_tokens(address, token_sha256, label, scope, created) VALUES (?,?,?,?,?)",
                (address, _digest(token), label, scope, time.time()),
            )
        return int(cur.lastrowid or 0), token

    def verify(self, token: str, scope: str = "ai") -> str | None:
        """The address a valid token belongs to, else None."""
        if not token.startswith(PREFIX) or len(token) > 200:
            return None
        row = self.db.one("SELECT id, address, scope FROM api_tokens WHERE token_sha256 = ?", (_digest(token),))
        if row is None or scope not in row["scope"].split(","):
            return None
        return str(row["address"])

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
