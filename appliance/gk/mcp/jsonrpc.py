"""JSON-RPC 2.0 for MCP: the error codes, one message parsed and checked, replies built.

Batches are refused (MCP removed them in 2025-06-18): an array is an Invalid Request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603


class RPCError(Exception):
    """A JSON-RPC error answer: ``code``, ``message``, and the HTTP status that carries it."""

    def __init__(self, code: int, message: str, status: int = 200, id_: Any = None, data: Any = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.id = id_
        self.data = data


@dataclass(frozen=True)
class Message:
    """One client message: a request (``id`` set), a notification, or a response to us."""

    method: str | None
    params: dict[str, Any]
    id: Any
    is_request: bool
    response: dict[str, Any] | None = None  # a response to a request of ours: the whole message


def parse(body: bytes) -> Message:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        raise RPCError(PARSE_ERROR, f"parse error: {exc}", 400) from exc
    if isinstance(data, list):
        raise RPCError(INVALID_REQUEST, "batches are not supported: send one JSON-RPC message per request", 400)
    if not isinstance(data, dict) or data.get("jsonrpc") != "2.0":
        raise RPCError(INVALID_REQUEST, 'not a JSON-RPC 2.0 message (an object with "jsonrpc": "2.0")', 400)
    id_ = data.get("id")
    has_id = "id" in data
    if has_id and (isinstance(id_, bool) or not isinstance(id_, (str, int))):
        raise RPCError(INVALID_REQUEST, "id must be a string or an integer", 400)
    method = data.get("method")
    if method is None:
        if has_id and ("result" in data or "error" in data):
            return Message(None, {}, id_, False, data)  # a response to a request the server sent
        raise RPCError(INVALID_REQUEST, "a request needs a method", 400, id_)
    if not isinstance(method, str):
        raise RPCError(INVALID_REQUEST, "method must be a string", 400, id_)
    params = data.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise RPCError(INVALID_PARAMS, "params must be an object", 200 if has_id else 400, id_)
    return Message(method, params, id_, has_id)


def result(id_: Any, value: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "result": value}


def error(id_: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": id_, "error": err}


def notification(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params}
