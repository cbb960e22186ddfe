"""A small MCP client (Streamable HTTP, protocol 2025-11-25 and older) for the external MCP
servers an owner adds to the assistant: ``initialize``, ``tools/list``, ``tools/call``.

Why not the official SDK: it is asyncio + anyio + httpx + pydantic (~45 MB RSS, as much as GK
idle) and would need its own event loop beside the gevent hub; the assistant needs three
methods over HTTP POST. This client is the standard library's ``http.client`` (cooperative
under gevent's monkey-patching), one connection per call, answers read as JSON or as an SSE
stream (the message whose ``id`` is the request's), capped at ``MAX_ANSWER`` bytes, with a
timeout. A server's session (``Mcp-Session-Id``) is kept for the calls of one ``Session``.

Every failure is an ``MCPClientError``: its message is the English detail (the logs, the
model's view of a failed call, the "details" line of the tools page), its ``kind`` one of
``KINDS``, a stable code the web page turns into an actionable sentence in the reader's
language (``gk.web.assistant_tools.FAILURES``): the raw ``[Errno -2] Name or service not known``
alone is neither translated nor says what to do.
"""

from __future__ import annotations

import http.client
import itertools
import json
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import gk

PROTOCOL = "2025-11-25"
MAX_ANSWER = 1024 * 1024  # bytes of one answer
TIMEOUT = 30.0  # seconds for one request
MAX_PAGES = 10  # tools/list pages followed (nextCursor)
CLIENT_INFO = {"name": "gk-assistant", "version": gk.__version__}


# a server of a user who is not an administrator must be on the internet (``gk.security.egress``)
LAN_REFUSAL = "{host} is on this network ({address}): only an administrator's tool servers may be on the LAN"


# why a server could not be used (``MCPClientError.kind``): stored with the listing's error
UNRESOLVABLE = "unresolvable"  # the name does not resolve
NOT_PUBLIC = "not_public"  # on the LAN or the box, for a user who may not reach it (``gk.security.egress``)
REFUSED = "refused"  # nothing listens on that port
TIMED_OUT = "timeout"  # no connection or no answer within the timeout
TLS = "tls"  # the TLS handshake failed (certificate not valid for the name, expired, self-signed; not TLS)
UNAUTHORIZED = "unauthorized"  # HTTP 401/403: a token is missing or refused
NOT_FOUND = "not_found"  # HTTP 404 and no MCP answer: nothing at that path
SERVER_ERROR = "server_error"  # HTTP 5xx and no MCP answer
NOT_MCP = "not_mcp"  # an answer, but not a JSON-RPC result (a web page, a wrong path)
OTHER = "other"  # the rest (the server's own JSON-RPC error, an oversized answer, a reset connection)
KINDS = (UNRESOLVABLE, NOT_PUBLIC, REFUSED, TIMED_OUT, TLS, UNAUTHORIZED, NOT_FOUND, SERVER_ERROR, NOT_MCP, OTHER)


class MCPClientError(Exception):
    """The server could not be reached or answered something else than a result; ``kind`` says
    which (one of ``KINDS``), the message the details in English."""

    def __init__(self, message: str, kind: str = OTHER):
        super().__init__(message)
        self.kind = kind


def _kind_of(exc: BaseException) -> str:
    """The kind of a failure to connect, send or read (the order matters: all are ``OSError``)."""
    if isinstance(exc, socket.gaierror):
        return UNRESOLVABLE
    if isinstance(exc, ssl.SSLError):  # SSLCertVerificationError among them
        return TLS
    if isinstance(exc, TimeoutError):  # socket.timeout, gevent's too
        return TIMED_OUT
    if isinstance(exc, ConnectionRefusedError):
        return REFUSED
    return OTHER


def check_url(url: str) -> str:
    """An http(s) URL with a host, else ``MCPClientError``."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MCPClientError("the URL must be http:// or https:// with a host name")
    return url.strip()


def _sse_messages(body: bytes) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for block in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        data = b"\n".join(line[5:].lstrip(b" ") for line in block.split(b"\n") if line.startswith(b"data:"))
        if data:
            try:
                msg = json.loads(data)
            except ValueError:
                continue
            if isinstance(msg, dict):
                out.append(msg)
    return out


@dataclass
class Session:
    url: str
    token: str = ""
    timeout: float = TIMEOUT
    session_id: str = ""
    version: str = PROTOCOL
    public_only: bool = False  # the owner may not make the box reach its LAN (``gk.security.egress``)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _post(self, message: dict[str, Any]) -> dict[str, Any] | None:
        parts = urlsplit(check_url(self.url))
        host = parts.hostname or ""
        tls = parts.scheme == "https"
        if self.public_only:
            from gk.security.egress import EgressRefused, PinnedHTTP, PinnedHTTPS, vetted_address

            try:
                address = vetted_address(host, parts.port or (443 if tls else 80), LAN_REFUSAL)
            except EgressRefused as exc:
                raise MCPClientError(str(exc), exc.kind) from None
            conn: http.client.HTTPConnection = (PinnedHTTPS if tls else PinnedHTTP)(
                host, parts.port, self.timeout, address
            )
        else:
            conn = (http.client.HTTPSConnection if tls else http.client.HTTPConnection)(
                host, parts.port, timeout=self.timeout
            )
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": self.version,
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.session_id:
            headers["Mcp-Session-Id"] = self.session_id
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            conn.request("POST", path, json.dumps(message).encode(), headers)
            resp = conn.getresponse()
            body = resp.read(MAX_ANSWER + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise MCPClientError(f"cannot reach {parts.netloc}: {exc}", _kind_of(exc)) from exc
        finally:
            conn.close()
        if len(body) > MAX_ANSWER:
            raise MCPClientError(f"the answer is over {MAX_ANSWER} bytes")
        if resp.status in (401, 403):
            raise MCPClientError(f"the server refused the token (HTTP {resp.status})", UNAUTHORIZED)
        if "id" not in message:
            return None
        if sid := resp.getheader("Mcp-Session-Id"):
            self.session_id = sid
        ctype = (resp.getheader("Content-Type") or "").split(";", 1)[0].strip().lower()
        if ctype == "text/event-stream":
            found = [m for m in _sse_messages(body) if m.get("id") == message["id"]]
            answer: Any = found[-1] if found else None
        else:
            try:
                answer = json.loads(body or b"null")
            except ValueError:
                answer = None
        if not isinstance(answer, dict):
            kind = NOT_FOUND if resp.status == 404 else SERVER_ERROR if resp.status >= 500 else NOT_MCP
            raise MCPClientError(f"not an MCP answer (HTTP {resp.status}, {ctype or 'no type'})", kind)
        if isinstance(answer.get("error"), dict):
            raise MCPClientError(str(answer["error"].get("message", "error"))[:300])
        result = answer.get("result")
        if not isinstance(result, dict):
            raise MCPClientError(f"no result in the answer (HTTP {resp.status})", NOT_MCP)
        return result

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        out = self._post({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params or {}})
        assert out is not None
        return out

    def open(self) -> Session:
        """``initialize`` then ``notifications/initialized``."""
        result = self.request(
            "initialize", {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": CLIENT_INFO}
        )
        version = result.get("protocolVersion")
        if isinstance(version, str) and version:
            self.version = version
        self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return self

    def list_tools(self) -> list[dict[str, Any]]:
        tools: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            result = self.request("tools/list", {"cursor": cursor} if cursor else {})
            tools += [t for t in result.get("tools") or () if isinstance(t, dict) and isinstance(t.get("name"), str)]
            cursor = result.get("nextCursor")
            if not isinstance(cursor, str) or not cursor:
                break
        return tools

    def call_tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return self.request("tools/call", {"name": name, "arguments": arguments})


def list_tools(url: str, token: str, timeout: float = TIMEOUT, public_only: bool = False) -> list[dict[str, Any]]:
    return Session(url, token, timeout, public_only=public_only).open().list_tools()


def call_tool(
    url: str, token: str, name: str, arguments: dict[str, Any], timeout: float = TIMEOUT, public_only: bool = False
) -> dict[str, Any]:
    return Session(url, token, timeout, public_only=public_only).open().call_tool(name, arguments)
