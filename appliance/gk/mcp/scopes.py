"""Which MCP tools a token may see and call: its scopes (``gk.ai.tokens``), tool by tool.

A tool belongs to a feature by its name (``mail_…``, ``chat_…``, ``calendar_…`` and
``contacts_…`` — calendars and contacts share the ``calendar`` scopes) and needs that feature's
``:read`` scope when it is read-only (``readOnlyHint``), ``:write`` otherwise. A read-only token
neither lists nor calls a write tool: to it the tool does not exist (``Unknown tool``). Tools of
no feature (the conformance suite's fixtures) need only the ``mcp`` scope that opened ``/mcp``.

Resources follow the same rule (``feature_allowed``): a provider of mail, chat or calendars
lists and reads nothing for a token without that feature's ``:read`` scope; the transport
passes the request's scopes explicitly to ``Resources``. For tools, the transport sets the
context variable ``granted`` right after authenticating the request (each request runs in its
own greenlet's context, set again on every request of a keep-alive connection) and
``Registry.list``/``Registry.call`` read it through ``allowed`` (the registry is shared with the
assistant's runtime, which calls it with no token: ``granted`` is None there).
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING

from gk.ai.tokens import has_scope

if TYPE_CHECKING:
    from gk.mcp.registry import Tool

FEATURE_OF = {"mail": "mail", "chat": "chat", "calendar": "calendar", "contacts": "calendar"}

# None: no token in play (the in-process registry, tests of tools alone): every tool allowed
granted: contextvars.ContextVar[frozenset[str] | None] = contextvars.ContextVar("gk_mcp_scopes", default=None)


def needed(tool: Tool) -> str | None:
    """The scope ``tool`` needs beyond ``mcp`` (None: none)."""
    feature = FEATURE_OF.get(tool.name.split("_", 1)[0])
    if feature is None:
        return None
    return f"{feature}:{'read' if tool.read_only else 'write'}"


def feature_allowed(feature: str | None, have: frozenset[str] | None) -> bool:
    """May a token with scopes ``have`` (None: no token in play) read ``feature``'s data?"""
    return have is None or feature is None or has_scope(have, f"{feature}:read")


def allowed(tool: Tool, scopes: frozenset[str] | None = None) -> bool:
    """May the current request's token (or ``scopes``) see and call ``tool``?"""
    have = scopes if scopes is not None else granted.get()
    if have is None:
        return True
    need = needed(tool)
    return need is None or has_scope(have, need)
