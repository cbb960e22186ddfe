"""MCP protocol versions and the per-request envelope: 2026-07-28 (stateless) and 2025-11-25.

A 2026-07-28 request carries its protocol version and the client's capabilities in
``params._meta`` (``io.modelcontextprotocol/protocolVersion``, ``…/clientCapabilities``) and
repeats the version, the method and the tool/prompt name or resource URI in HTTP headers
(``MCP-Protocol-Version``, ``Mcp-Method``, ``Mcp-Name``); there is no ``initialize``, no
``ping``, no ``logging/setLevel``, no ``resources/subscribe``: a client learns the server with
``server/discover`` and listens for list changes with ``subscriptions/listen``. Every result says
``resultType: "complete"``; list and read results carry the caching hints ``ttlMs`` and
``cacheScope``.

A 2025-era client (``initialize`` without a session, then requests with an
``MCP-Protocol-Version: 2025-…`` header or none) gets the 2025-11-25 protocol: no ``_meta``
required, no ``resultType``.

Which one a request speaks: 2026-07-28 when its ``_meta`` names a protocol version or its
``MCP-Protocol-Version`` header is not a 2025-era one; else 2025-11-25.

Errors (2026-07-28): ``-32020`` HeaderMismatch (a header missing or not matching the body),
``-32021`` MissingRequiredClientCapability, ``-32022`` UnsupportedProtocolVersion (with the
supported versions), ``-32602`` for a request without the required ``_meta`` keys — all with
HTTP 400; an unknown or removed method is ``-32601`` with HTTP 404.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from typing import Any

from gk.mcp import jsonrpc
from gk.mcp.jsonrpc import RPCError

MODERN = "2026-07-28"
LEGACY = ("2025-11-25", "2025-06-18", "2025-03-26")
SUPPORTED = (MODERN, *LEGACY)
LATEST_LEGACY = LEGACY[0]

HEADER_MISMATCH = -32020
MISSING_CLIENT_CAPABILITY = -32021
UNSUPPORTED_VERSION = -32022

META_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
META_CLIENT = "io.modelcontextprotocol/clientInfo"
META_LOG_LEVEL = "io.modelcontextprotocol/logLevel"
META_SERVER = "io.modelcontextprotocol/serverInfo"
META_SUBSCRIPTION = "io.modelcontextprotocol/subscriptionId"

# methods 2026-07-28 removed: a modern request for one is "method not found" (HTTP 404)
REMOVED = frozenset({"initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"})
# results a client may cache: they carry ttlMs and cacheScope (SEP-2549)
CACHEABLE = frozenset({"tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read"})
# the body field ``Mcp-Name`` repeats, per method
NAMED = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")


@dataclass(frozen=True)
class Envelope:
    """What a request says about itself beyond its method and params."""

    version: str
    modern: bool
    capabilities: dict[str, Any] = field(default_factory=dict)
    log_level: str | None = None
    progress_token: str | int | None = None


def _header(value: str | None) -> str | None:
    return None if value is None else value.strip()


def envelope(
    method: str,
    params: dict[str, Any],
    id_: Any,
    header_version: str | None,
    header_method: str | None,
    header_name: str | None,
) -> Envelope:
    """The request's envelope, or an ``RPCError`` (with its HTTP status) when the headers and
    the body disagree or the version is not one this server speaks."""
    header_version, header_method, header_name = map(_header, (header_version, header_method, header_name))
    meta = params.get("_meta")
    meta = meta if isinstance(meta, dict) else {}
    progress = meta.get("progressToken")
    progress = progress if isinstance(progress, (str, int)) and not isinstance(progress, bool) else None
    modern = META_VERSION in meta or (header_version is not None and header_version not in LEGACY)
    # the standard headers, when sent, must match the body in either era (values case-sensitive)
    if header_method is not None and header_method != method:
        raise RPCError(
            HEADER_MISMATCH, f"Mcp-Method header {header_method!r} does not match the body's method", 400, id_
        )
    named = NAMED.get(method)
    body_name = params.get(named) if named else None
    if header_name is not None and isinstance(body_name, str) and header_name != body_name:
        raise RPCError(HEADER_MISMATCH, "Mcp-Name header does not match the body", 400, id_)
    if not modern:
        if header_version is not None and header_version not in LEGACY:  # unreachable: kept explicit
            raise RPCError(jsonrpc.INVALID_REQUEST, "unsupported MCP-Protocol-Version", 400, id_)
        return Envelope(header_version or LATEST_LEGACY, False, progress_token=progress)
    if header_version is None:
        raise RPCError(HEADER_MISMATCH, "missing MCP-Protocol-Version header", 400, id_)
    missing = [k for k in (META_VERSION, META_CAPABILITIES) if k not in meta]
    if missing:
        raise RPCError(jsonrpc.INVALID_PARAMS, f"Invalid params: params._meta lacks {', '.join(missing)}", 400, id_)
    version, caps = meta[META_VERSION], meta[META_CAPABILITIES]
    if not isinstance(version, str) or not isinstance(caps, dict):
        raise RPCError(jsonrpc.INVALID_PARAMS, "Invalid params: malformed params._meta", 400, id_)
    if version != header_version:
        raise RPCError(HEADER_MISMATCH, "MCP-Protocol-Version header does not match params._meta", 400, id_)
    if version != MODERN:
        raise RPCError(
            UNSUPPORTED_VERSION,
            f"Unsupported protocol version {version!r}",
            400,
            id_,
            data={"supported": list(SUPPORTED), "requested": version},
        )
    if header_method is None:
        raise RPCError(HEADER_MISMATCH, "missing Mcp-Method header", 400, id_)
    if named and isinstance(body_name, str) and header_name is None:
        raise RPCError(HEADER_MISMATCH, "missing Mcp-Name header", 400, id_)
    level = meta.get(META_LOG_LEVEL)
    return Envelope(version, True, caps, level if level in LOG_LEVELS else None, progress)


def require_capabilities(env: Envelope, required: dict[str, Any], id_: Any) -> None:
    """A 2026-07-28 request that needs client capabilities it did not declare: ``-32021``."""
    if not env.modern or not required:
        return
    missing = {k: v for k, v in required.items() if k not in env.capabilities}
    if missing:
        raise RPCError(
            MISSING_CLIENT_CAPABILITY,
            f"this request needs the client capabilities {', '.join(sorted(missing))}",
            400,
            id_,
            data={"requiredCapabilities": missing},
        )


def finish(env: Envelope, method: str, result: dict[str, Any], ttl_ms: int = 0) -> dict[str, Any]:
    """A result as the request's protocol wants it: 2026-07-28 adds ``resultType`` and, on list
    and read results, the caching hints (``private``: every result here is the user's own)."""
    if not env.modern:
        return result
    out = {**result, "resultType": result.get("resultType", "complete")}
    if method in CACHEABLE:
        out.setdefault("ttlMs", ttl_ms)
        out.setdefault("cacheScope", "private")
    return out


# -- multi-round-trip requests (SEP-2322): inputResponses and a signed requestState ------------------

INPUT_METHODS = frozenset({"tools/call", "prompts/get", "resources/read"})  # may answer "input_required"


def input_responses(params: dict[str, Any], id_: Any) -> dict[str, dict[str, Any]]:
    """The ``inputResponses`` of a retried request: absent is none; anything but an object of
    objects is ``-32602`` (a response that is not an object cannot be a client's answer)."""
    if "inputResponses" not in params:
        return {}
    value = params["inputResponses"]
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise RPCError(jsonrpc.INVALID_PARAMS, "params.inputResponses must be an object of response objects", 200, id_)
    return value


class StateSigner:
    """``requestState`` the server hands out and gets back: JSON, HMAC-SHA256-signed with a key
    made at start, so a client can neither forge nor alter it (a restart voids the open rounds,
    which then start over)."""

    def __init__(self, key: bytes | None = None):
        self._key = key or os.urandom(32)

    def sign(self, state: dict[str, Any]) -> str:
        body = base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")
        mac = hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()
        return f"{body}.{mac}"

    def open(self, params: dict[str, Any], id_: Any) -> dict[str, Any] | None:
        """The request's verified ``requestState``, None when it sent none."""
        token = params.get("requestState")
        if token is None:
            return None
        bad = RPCError(jsonrpc.INVALID_PARAMS, "requestState failed its integrity check", 200, id_)
        if not isinstance(token, str) or token.count(".") != 1:
            raise bad
        body, mac = token.split(".")
        if not hmac.compare_digest(mac, hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()):
            raise bad
        try:
            state = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:
            raise bad from None
        if not isinstance(state, dict):
            raise bad
        return state
