"""The audit log: every tool call, read or write, from an MCP client or the local assistant.

One row per call in ``tool_calls`` of ``DATA_DIR/mcp.sqlite3``: when, who (the token's user),
through what (``mcp``, ``assistant``), the tool, its arguments (the JSON, cut at 2,000
characters, and the SHA-256 of the whole), the size of the result given back, the outcome
(``ok``, ``error``, ``queued``) and, for a queued side effect, the pending action's id — whose
row says who approved it and when. The user sees their own calls on ``/approvals``; the
administrator sees everyone's on ``/admin/audit``.

``AuditedRegistry`` is the tool registry with the recording around ``call``: the MCP server
and the assistant call tools through it, so no call escapes the log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gk.mcp import approvals
from gk.mcp.registry import Registry, Tool

log = logging.getLogger("gk.mcp")
MAX_ARGUMENTS = 2000


@dataclass(frozen=True)
class Call:
    id: int
    at: float
    address: str
    via: str
    tool: str
    arguments: str
    arguments_sha256: str
    result_chars: int
    outcome: str
    action_id: str | None
    # from the pending action, when there is one
    action_state: str = ""
    decided_by: str = ""
    decided: float | None = None


class AuditLog:
    def __init__(self, data_dir: Path):
        self.db = approvals.database(data_dir)

    def record(
        self,
        address: str,
        via: str,
        tool: str,
        arguments: Any,
        result_chars: int,
        outcome: str,
        action_id: str | None = None,
    ) -> int:
        text = json.dumps(arguments, ensure_ascii=False, sort_keys=True, default=str)
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        with self.db.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO tool_calls(at, address, via, tool, arguments, arguments_sha256, result_chars, outcome, "
                "action_id) VALUES (?,?,?,?,?,?,?,?,?)",
                (time.time(), address, via, tool[:100], text[:MAX_ARGUMENTS], digest, result_chars, outcome,
                 action_id),
            )  # fmt: skip
        return int(cur.lastrowid or 0)

    def calls(self, address: str | None = None, limit: int = 200) -> list[Call]:
        """The newest calls (one user's, or everyone's for the administrator)."""
        sql = (
            "SELECT c.*, coalesce(a.state, '') AS action_state, coalesce(a.decided_by, '') AS decided_by, "
            "a.decided AS decided FROM tool_calls c LEFT JOIN pending_actions a ON a.id = c.action_id"
        )
        if address is None:
            rows = self.db.query(sql + " ORDER BY c.id DESC LIMIT ?", (limit,))
        else:
            rows = self.db.query(sql + " WHERE c.address = ? ORDER BY c.id DESC LIMIT ?", (address, limit))
        return [Call(**dict(r)) for r in rows]


class AuditedRegistry(Registry):
    """``Registry`` whose every ``call`` is recorded (after it ran, whatever it answered)."""

    def __init__(self, tools: list[Tool] | tuple[Tool, ...], log_: AuditLog, via: str = "mcp"):
        super().__init__(tools)
        self.audit = log_
        self.via = via

    def call(self, address: str, name: str, arguments: Any) -> dict[str, Any]:
        try:
            result = super().call(address, name, arguments)
        except Exception:
            self._record(address, name, arguments, 0, "refused", None)
            raise
        out = result.get("structuredContent") or {}
        action_id = out.get("action_id") if isinstance(out, dict) else None
        outcome = "error" if result.get("isError") else ("queued" if action_id else "ok")
        size = sum(len(c.get("text", "")) for c in result.get("content", ()))
        self._record(address, name, arguments, size, outcome, action_id if isinstance(action_id, str) else None)
        return result

    def _record(self, address: str, name: str, arguments: Any, size: int, outcome: str, action: str | None) -> None:
        try:
            self.audit.record(address, self.via, name, arguments, size, outcome, action)
        except Exception:  # the log must not turn a call into a crash; it is logged instead
            log.exception("audit: could not record %s by %s", name, address)
