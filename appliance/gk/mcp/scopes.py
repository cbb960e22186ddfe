"""Which MCP tools a token may see and call: its scopes (``gk.ai.tokens``), tool by tool.

A tool belongs to a feature by its name (``mail_…``, ``chat_…``, ``calendar_…`` and
``contacts_…`` — calendars and contacts share the ``calendar`` scopes) and needs that feature's
``:read`` scope when it is read-only (``readOnlyHint``), ``:write`` otherwise. A read-only token
neither lists nor calls a write tool: to it the tool does not exist (``Unknown tool``). Tools of
no feature (the conformance suite's fixtures) need only the ``mcp`` scope that opened ``/mcp``.

Resources follow the same rule (``feature_allowed``): a provider of mail, chat or calendars
lists nothing for a token without that feature's ``:read`` scope, and reading one of its URIs
is refused with ``InsufficientScope``; the transport passes the request's scopes explicitly to
``Resources``.

Step-up (the MCP authorization spec, 2025-11-25 and 2026-07-28, "Scope Challenge Handling"):
calling a tool, or reading a resource, whose scope the token lacks raises ``InsufficientScope``,
which the transport answers with HTTP 403 and ``WWW-Authenticate: Bearer
error="insufficient_scope", scope="…"`` naming the scopes the operation needs: an OAuth client
re-authorizes with them (added to those it has) and retries. So that it can, an OAuth token
(``widenable``) still sees every tool in ``tools/list``; a ``gk token add`` token, whose scopes
the owner fixed and which no client can widen, sees only the tools it may call (a model is not
offered what it cannot use). Resource *lists* stay filtered for both: listing folders or rooms
would already disclose the feature's data. For tools, the transport sets the
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

# the request's token can be widened by re-authorization (an OAuth grant): out-of-scope tools stay listed
widenable: contextvars.ContextVar[bool] = contextvars.ContextVar("gk_mcp_widenable", default=False)
# None: no token in play (the in-process registry, tests of tools alone): every tool allowed
granted: contextvars.ContextVar[frozenset[str] | None] = contextvars.ContextVar("gk_mcp_scopes", default=None)


class InsufficientScope(Exception):
    """The token lacks ``scopes`` (all those the operation needs) for ``what`` (a tool's name or
    a resource URI): HTTP 403 with an ``insufficient_scope`` challenge."""

    def __init__(self, scopes: tuple[str, ...], what: str):
        super().__init__(f"insufficient scope: {what} needs {' '.join(scopes)}")
        self.scopes = scopes
        self.what = what


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


def listed(tool: Tool) -> bool:
    """Does ``tools/list`` show ``tool`` to the current request's token? Those it may call, and
    for a widenable (OAuth) token every tool: calling one out of scope is the step-up's start."""
    return widenable.get() or allowed(tool)


def require(tool: Tool) -> None:
    """``InsufficientScope`` unless the current request's token may call ``tool``."""
    if not allowed(tool):
        need = needed(tool)
        raise InsufficientScope((need,) if need else (), tool.name)


def require_feature(feature: str | None, have: frozenset[str] | None, what: str) -> None:
    """``InsufficientScope`` unless a token with ``have`` may read ``feature``'s data."""
    if not feature_allowed(feature, have):
        raise InsufficientScope((f"{feature}:read",), what)
