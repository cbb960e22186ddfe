"""The assistant's tools (the registry of the assistant as an MCP client): GK's own MCP tools, run
in-process as the signed-in user, and the tools of external MCP servers the user added, each
enabled or disabled per user.

- **Built-in tools** are the very ``Tool`` objects of ``/mcp`` (``MCPService.registry``), called
  through an ``AuditedRegistry`` recording ``via = "assistant"``: the same argument checks, the
  same pending actions for side effects, the same audit. The signed-in user holds every scope of
  their own account (``mail:write``, ``chat:write``, ``calendar:write``): a write still only
  queues an action that the owner approves in the web UI.
- **External servers** (URL + bearer token, per user, in ``DATA_DIR/tools.sqlite3``): their
  tools are listed with ``gk.mcp.client`` when the owner adds or refreshes the server (the list
  is kept, so a conversation does not wait on the network), offered to the model under the name
  ``<server>_<tool>``, and called over HTTP. Everything they return is untrusted (``policy``:
  a turn that called one loses its outbound tools). A tool without ``readOnlyHint: true`` is
  not called when the model asks: the call (server, tool, arguments) becomes a pending action
  (``EXTERNAL_CALL``) that the owner approves in the web UI like GK's own writes, and only then
  is it made (``executor``; docs/assistant.md).
- By default only ``DEFAULT_ON`` is enabled (reading, searching and listing unread mail, and
  sending — which waits for approval): every tool offered costs context. Measured with
  ``function``: all 16 built-in tools take 8,400 characters of JSON (~2,400 tokens, more than a
  2,048-token board context; their full MCP descriptions 23,700), these four 2,650 (~700
  tokens), as signature lines 690. The owner enables others on ``/assistant/tools`` (the
  calendar writes ``calendar_create_event``/``_update_event``/``_cancel_event`` among them, listed
  when DAV runs); external tools start disabled.

``offered`` gives the model compact descriptions (the first sentence of each description and
the parameters without their descriptions): a board's context is small.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gk.mcp import client, scopes
from gk.mcp.approvals import CHANGED, ActionFailed, Executor, PendingAction
from gk.mcp.audit import AuditedRegistry
from gk.mcp.registry import ERROR_KIND, error_result
from gk.store import Database, open_database

if TYPE_CHECKING:
    from gk.mcp.service import MCPService

log = logging.getLogger("gk.mcp")

USER_SCOPES = frozenset({"mcp", "mail:write", "chat:write", "calendar:write"})
SLUG = re.compile(r"^[a-z][a-z0-9]{0,15}$")
MAX_SERVERS = 8  # per user
DESCRIPTION_CHARS = 160
EXTERNAL_CALL = "external_call"  # the pending action of an external tool that may act
TOOL_ERROR = "tool_error"  # an external tool ran and answered an error (beside ``client.KINDS``)
DEFAULT_ON = frozenset({"mail_list_unread", "mail_search", "mail_read", "mail_send"})

MIGRATIONS = [
    """
    CREATE TABLE tool_settings (
        address TEXT NOT NULL,
        tool TEXT NOT NULL,
        enabled INTEGER NOT NULL,
        PRIMARY KEY (address, tool)
    );
    CREATE TABLE servers (
        id INTEGER PRIMARY KEY,
        address TEXT NOT NULL,
        name TEXT NOT NULL,
        url TEXT NOT NULL,
        token TEXT NOT NULL DEFAULT '',
        tools TEXT NOT NULL DEFAULT '[]',
        listed REAL NOT NULL DEFAULT 0,
        error TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL,
        UNIQUE (address, name)
    );
    """,
    # why the last listing failed (``client.KINDS``), beside ``error``'s English detail; '' in a
    # row kept before (its page shows the detail alone)
    "ALTER TABLE servers ADD COLUMN error_kind TEXT NOT NULL DEFAULT ''",
]


class ToolboxError(ValueError):
    """A server that cannot be added (bad name, URL, too many)."""


@dataclass(frozen=True)
class Server:
    id: int
    address: str
    name: str
    url: str
    token: str
    tools: list[dict[str, Any]]
    listed: float
    error: str  # the last listing's failure, in English ('' when it worked)
    error_kind: str = ""  # its ``client.KINDS`` code ('' for one stored before the codes)


@dataclass(frozen=True)
class Entry:
    """One tool as the assistant sees it."""

    name: str  # offered to the model (an external tool's carries its server's name)
    tool: dict[str, Any]  # its MCP description (name, description, inputSchema, annotations)
    server: Server | None  # None: GK's own
    enabled: bool

    @property
    def external(self) -> bool:
        return self.server is not None

    @property
    def read_only(self) -> bool:
        a = self.tool.get("annotations")
        return isinstance(a, dict) and a.get("readOnlyHint") is True

    @property
    def needs_approval(self) -> bool:
        """An external tool that may act: its calls wait for the owner's approval."""
        return self.external and not self.read_only


def _strip(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _strip(v) for k, v in schema.items() if k not in ("description", "title", "$schema")}
    if isinstance(schema, list):
        return [_strip(v) for v in schema]
    return schema


def short(description: str) -> str:
    text = " ".join(str(description or "").split())
    first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return first if len(first) <= DESCRIPTION_CHARS else first[: DESCRIPTION_CHARS - 1] + "…"


def function(entry: Entry) -> dict[str, Any]:
    """The OpenAI-style function given to the chat template: compact."""
    params = entry.tool.get("inputSchema")
    return {
        "type": "function",
        "function": {
            "name": entry.name,
            "description": short(entry.tool.get("description", "")),
            "parameters": _strip(params) if isinstance(params, dict) else {"type": "object", "properties": {}},
        },
    }


def signature(entry: Entry) -> str:
    """One line for a template that does not render tools: ``name(arg: type, opt?: type): description``."""
    found = entry.tool.get("inputSchema")
    schema: dict[str, Any] = found if isinstance(found, dict) else {}
    required = set(schema.get("required") or ())
    args = []
    for key, sub in (schema.get("properties") or {}).items():
        kind = sub.get("type", "any") if isinstance(sub, dict) else "any"
        args.append(f"{key}{'' if key in required else '?'}: {kind}")
    return f"{entry.name}({', '.join(args)}): {short(entry.tool.get('description', ''))}"


class Settings:
    """``tools.sqlite3``: per-user tool switches and external servers."""

    def __init__(self, data_dir: Path, lan_allowed: Callable[[str], bool] = lambda address: False):
        """``lan_allowed(owner)``: may that user's servers be on the LAN (or loopback)? Only an
        administrator's: another user's server would make the box a way into the LAN (a POST
        to any address, its HTTP status shown back). Anyone's may be on the internet."""
        self.lan_allowed = lan_allowed
        self.db: Database = open_database(Path(data_dir) / "tools.sqlite3", MIGRATIONS)
        (Path(data_dir) / "tools.sqlite3").chmod(0o600)  # it holds the external servers' tokens

    def switches(self, address: str) -> dict[str, bool]:
        rows = self.db.query("SELECT tool, enabled FROM tool_settings WHERE address = ?", (address,))
        return {r["tool"]: bool(r["enabled"]) for r in rows}

    def set_enabled(self, address: str, tool: str, enabled: bool) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO tool_settings(address, tool, enabled) VALUES (?,?,?)"
                " ON CONFLICT(address, tool) DO UPDATE SET enabled = excluded.enabled",
                (address, tool[:200], int(enabled)),
            )

    def servers(self, address: str) -> list[Server]:
        rows = self.db.query("SELECT * FROM servers WHERE address = ? ORDER BY name", (address,))
        return [_server(r) for r in rows]

    def server(self, address: str, server_id: int) -> Server | None:
        row = self.db.one("SELECT * FROM servers WHERE id = ? AND address = ?", (server_id, address))
        return _server(row) if row else None

    def add_server(self, address: str, name: str, url: str, token: str) -> int:
        name = name.strip().lower()
        if not SLUG.match(name):
            raise ToolboxError("the name is 1 to 16 lowercase letters or digits, starting with a letter")
        try:
            url = client.check_url(url)
        except client.MCPClientError as exc:
            raise ToolboxError(str(exc)) from exc
        if len(self.servers(address)) >= MAX_SERVERS:
            raise ToolboxError(f"at most {MAX_SERVERS} servers")
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM servers WHERE address = ? AND name = ?", (address, name)).fetchone():
                raise ToolboxError("a server of that name exists")
            cur = conn.execute(
                "INSERT INTO servers(address, name, url, token, created) VALUES (?,?,?,?,?)",
                (address, name, url, token.strip()[:4000], time.time()),
            )
        return int(cur.lastrowid or 0)

    def update_server(self, address: str, server_id: int, url: str, token: str | None) -> bool:
        """Change a server's URL and token (``None``: keep the token; '' removes it), keeping its
        name and its tools' switches. A new URL drops the stored listing (those tools were
        another server's): list it again. False when the server is not ``address``'s."""
        try:
            url = client.check_url(url)
        except client.MCPClientError as exc:
            raise ToolboxError(str(exc)) from exc
        with self.db.transaction() as conn:
            row = conn.execute("SELECT url FROM servers WHERE id = ? AND address = ?", (server_id, address)).fetchone()
            if row is None:
                return False
            if row["url"] != url:
                conn.execute(
                    "UPDATE servers SET url = ?, tools = '[]', listed = 0, error = '', error_kind = '' WHERE id = ?",
                    (url, server_id),
                )
            if token is not None:
                conn.execute("UPDATE servers SET token = ? WHERE id = ?", (token.strip()[:4000], server_id))
        return True

    def save_listing(
        self, server_id: int, tools: list[dict[str, Any]] | None, error: str, error_kind: str = client.OTHER
    ) -> None:
        with self.db.transaction() as conn:
            if tools is None:
                conn.execute(
                    "UPDATE servers SET error = ?, error_kind = ? WHERE id = ?", (error[:500], error_kind, server_id)
                )
            else:
                conn.execute(
                    "UPDATE servers SET tools = ?, listed = ?, error = '', error_kind = '' WHERE id = ?",
                    (json.dumps(tools[:200], ensure_ascii=False), time.time(), server_id),
                )

    def remove_server(self, address: str, server_id: int) -> bool:
        with self.db.transaction() as conn:
            row = conn.execute("SELECT name FROM servers WHERE id = ? AND address = ?", (server_id, address)).fetchone()
            if row is None:
                return False
            conn.execute("DELETE FROM servers WHERE id = ?", (server_id,))
            conn.execute(
                "DELETE FROM tool_settings WHERE address = ? AND tool LIKE ? ESCAPE '\\'",
                (address, row["name"] + "\\_%"),
            )
        return True

    def close(self) -> None:
        self.db.close()


def _server(row: Any) -> Server:
    try:
        tools = json.loads(row["tools"] or "[]")
    except ValueError:
        tools = []
    return Server(
        row["id"], row["address"], row["name"], row["url"], row["token"], tools, row["listed"], row["error"],
        row["error_kind"],
    )  # fmt: skip


def refresh(settings: Settings, server: Server) -> client.MCPClientError | None:
    """List an external server's tools now and keep them; None, or the failure (kept too: its
    kind and its detail, which the page explains to the owner)."""
    try:
        tools = client.list_tools(server.url, server.token, public_only=not settings.lan_allowed(server.address))
    except client.MCPClientError as exc:
        log.info("tools of %s (%s) not listed: %s: %s", server.name, server.url, exc.kind, exc)
        settings.save_listing(server.id, None, str(exc), exc.kind)
        return exc
    settings.save_listing(server.id, tools, "")
    return None


class Toolbox:
    """One user's tools for one answer: what to offer the model and how to call each."""

    def __init__(self, mcp: MCPService, settings: Settings, address: str):
        self.mcp = mcp
        self.settings = settings
        self.address = address
        self.registry = AuditedRegistry(mcp.registry.tools(), mcp.audit, via="assistant")
        switches = settings.switches(address)
        self.entries: list[Entry] = []
        for tool in self.registry.tools():
            self.entries.append(
                Entry(tool.name, tool.describe("en"), None, switches.get(tool.name, tool.name in DEFAULT_ON))
            )
        for server in settings.servers(address):
            for t in server.tools:
                name = f"{server.name}_{t['name']}"[:64]
                self.entries.append(Entry(name, t, server, switches.get(name, False)))

    def offered(self) -> list[Entry]:
        return [e for e in self.entries if e.enabled]

    def find(self, name: str) -> Entry | None:
        return next((e for e in self.entries if e.name == name and e.enabled), None)

    def call(self, entry: Entry, arguments: dict[str, Any]) -> dict[str, Any]:
        """The MCP ``tools/call`` result (``content``, ``structuredContent``, ``isError``); an
        external server that fails gives an error result, never an exception."""
        if entry.server is None:
            token = scopes.granted.set(USER_SCOPES)  # the signed-in user acts on their own account
            try:
                return self.registry.call(self.address, entry.tool["name"], arguments)
            finally:
                scopes.granted.reset(token)
        action_id: str | None = None
        try:
            if entry.needs_approval:
                result = self._queue(entry, arguments)
                action_id = result["structuredContent"]["action_id"]
                outcome = "queued"
            else:
                result = client.call_tool(
                    entry.server.url,
                    entry.server.token,
                    entry.tool["name"],
                    arguments,
                    public_only=not self.settings.lan_allowed(entry.server.address),
                )
                outcome = "error" if result.get("isError") else "ok"
        except client.MCPClientError as exc:
            text = f"the server {entry.server.name} could not run {entry.tool['name']} ({exc.kind}): {exc}"
            result = error_result(text, exc.kind)
            outcome = "error"
        else:
            if result.get("isError"):  # the tool ran and failed; a kind the server put in _meta is not ours
                meta = result.get("_meta")
                result = {**result, "_meta": {**(meta if isinstance(meta, dict) else {}), ERROR_KIND: TOOL_ERROR}}
        size = sum(len(str(c.get("text", ""))) for c in result.get("content") or () if isinstance(c, dict))
        try:
            self.mcp.audit.record(self.address, "assistant", entry.name, arguments, size, outcome, action_id)
        except Exception:  # the log never turns a call into a crash (as AuditedRegistry)
            pass
        return result

    def _queue(self, entry: Entry, arguments: dict[str, Any]) -> dict[str, Any]:
        """A pending action for a call of an external tool that may act."""
        assert entry.server is not None
        args = json.dumps(arguments, ensure_ascii=False)
        summary = f"{entry.server.name}: {entry.tool['name']} {args[:200]}"
        payload = {"server_id": entry.server.id, "server": entry.server.name, "url": entry.server.url,
                   "tool": entry.tool["name"], "arguments": arguments}  # fmt: skip
        action = self.mcp.approvals.queue(self.address, EXTERNAL_CALL, summary, payload)
        text = (
            f"Queued for approval (id {action.id}): {summary}. Nothing has happened yet: the owner must approve "
            f"it in the GK web UI at /approvals/{action.id}. Do not call the tool again for the same action."
        )
        out = {"status": "pending_approval", "action_id": action.id, "approval_url": f"/approvals/{action.id}",
               "summary": summary}  # fmt: skip
        return {"content": [{"type": "text", "text": text}], "structuredContent": out, "isError": False}


def executor(settings: Settings) -> Executor:
    """Runs an approved ``EXTERNAL_CALL``: the call is made then, with the server's token of now,
    if the owner still has that server at the same URL."""

    def run(owner: str, action: PendingAction) -> str:
        p = action.payload
        server = settings.server(owner, int(p.get("server_id", 0)))
        if server is None or server.url != p.get("url"):
            raise ActionFailed("that MCP server was removed or changed since the call was asked", CHANGED)
        try:
            result = client.call_tool(
                server.url,
                server.token,
                str(p["tool"]),
                dict(p.get("arguments") or {}),
                public_only=not settings.lan_allowed(owner),
            )
        except client.MCPClientError as exc:
            raise ActionFailed(str(exc), exc.kind) from exc
        text = "\n".join(
            str(c.get("text", ""))
            for c in result.get("content") or ()
            if isinstance(c, dict) and c.get("type") == "text"
        )[:2000]
        if result.get("isError"):
            raise ActionFailed(text or "the tool answered an error", TOOL_ERROR)
        return text or "done"

    return run
