"""Per-user conversations with the assistant, in ``DATA_DIR/ai.sqlite3`` (beside the API tokens).

Each user sees only their own: every method takes the owner's address and checks it. Messages
are plain rows (role, content); a conversation's ``messages_for_model`` is what the runtime is
given, so a follow-up turn repeats the history verbatim and llama.cpp's prefix match (or the
saved KV state, ``[ai] state_cache_mb``) spares re-reading it. Search is a ``LIKE`` over titles
and messages (a household's conversations are small; FTS5 can come with the chat UI). Writes
are ``synchronous=FULL`` commits: an answer shown to the user is on disk.
"""

from __future__ import annotations

import builtins
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gk.ai.tokens import open_ai_database

ROLES = ("system", "user", "assistant", "tool")
TITLE_CHARS = 80


@dataclass(frozen=True)
class Conversation:
    id: int
    address: str
    title: str
    model: str
    created: float
    updated: float


class ConversationStore:
    def __init__(self, path: Path):
        self.db = open_ai_database(path)

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> ConversationStore:
        return cls(Path(data_dir) / "ai.sqlite3")

    def create(self, address: str, *, title: str = "", model: str = "") -> int:
        now = time.time()
        with self.db.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO conversations(address, title, model, created, updated) VALUES (?,?,?,?,?)",
                (address, title[:TITLE_CHARS], model, now, now),
            )
        return int(cur.lastrowid or 0)

    def get(self, address: str, conv_id: int) -> Conversation | None:
        row = self.db.one("SELECT * FROM conversations WHERE id = ? AND address = ?", (conv_id, address))
        return Conversation(**dict(row)) if row else None

    def list(self, address: str) -> list[Conversation]:
        rows = self.db.query("SELECT * FROM conversations WHERE address = ? ORDER BY updated DESC, id DESC", (address,))
        return [Conversation(**dict(r)) for r in rows]

    def add_message(
        self, address: str, conv_id: int, role: str, content: str, meta: dict[str, Any] | None = None
    ) -> int:
        """Append a message; the first user message titles an untitled conversation. ``meta``
        (JSON) is what the page shows about a tool call or result, never given to the model."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        now = time.time()
        with self.db.transaction() as conn:
            conv = conn.execute(
                "SELECT title FROM conversations WHERE id = ? AND address = ?", (conv_id, address)
            ).fetchone()
            if conv is None:
                raise KeyError(conv_id)
            cur = conn.execute(
                "INSERT INTO messages(conversation_id, role, content, created, meta) VALUES (?,?,?,?,?)",
                (conv_id, role, content, now, json.dumps(meta, ensure_ascii=False) if meta else ""),
            )
            title = conv["title"] or (" ".join(content.split())[:TITLE_CHARS] if role == "user" else "")
            conn.execute("UPDATE conversations SET updated = ?, title = ? WHERE id = ?", (now, title, conv_id))
        return int(cur.lastrowid or 0)

    def messages(self, address: str, conv_id: int) -> builtins.list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT m.id, m.role, m.content, m.created, m.meta FROM messages m"
            " JOIN conversations c ON c.id = m.conversation_id WHERE c.id = ? AND c.address = ? ORDER BY m.id",
            (conv_id, address),
        )
        return [{**dict(r), "meta": json.loads(r["meta"]) if r["meta"] else {}} for r in rows]

    def messages_for_model(self, address: str, conv_id: int) -> builtins.list[dict[str, str]]:
        return [{"role": m["role"], "content": m["content"]} for m in self.messages(address, conv_id)]

    def rename(self, address: str, conv_id: int, title: str) -> bool:
        with self.db.transaction() as conn:
            cur = conn.execute(
                "UPDATE conversations SET title = ? WHERE id = ? AND address = ?",
                (title.strip()[:TITLE_CHARS], conv_id, address),
            )
        return cur.rowcount > 0

    def delete(self, address: str, conv_id: int) -> bool:
        with self.db.transaction() as conn:
            cur = conn.execute("DELETE FROM conversations WHERE id = ? AND address = ?", (conv_id, address))
        return cur.rowcount > 0

    def search(self, address: str, text: str) -> builtins.list[Conversation]:
        like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self.db.query(
            "SELECT DISTINCT c.* FROM conversations c LEFT JOIN messages m ON m.conversation_id = c.id"
            " WHERE c.address = ? AND (c.title LIKE ? ESCAPE '\\' OR m.content LIKE ? ESCAPE '\\')"
            " ORDER BY c.updated DESC, c.id DESC",
            (address, like, like),
        )
        return [Conversation(**dict(r)) for r in rows]

    def export(self, address: str, conv_id: int) -> dict[str, Any] | None:
        """The conversation as a JSON-ready dict (title, model, dates, messages)."""
        conv = self.get(address, conv_id)
        if conv is None:
            return None
        return {**conv.__dict__, "messages": self.messages(address, conv_id)}

    def close(self) -> None:
        self.db.close()
