"""The bottle app of ``/api/v1``: bearer tokens, JSON errors, the routes of ``mail.py``.

Every request but ``GET /openapi.json`` carries ``Authorization: Bearer gk-…`` (``gk token add
ADDRESS --scope mail`` or the account page); no cookie is ever read, so the mount is CSRF-exempt
(``gk.features``: ``Csrf.EXEMPT`` + ``Auth.PER_REQUEST``). A missing or unknown token is a 401
with ``WWW-Authenticate: Bearer``; a token without the route's scope a 403 naming the scope
(RFC 6750 ``insufficient_scope``). Errors are ``{"error": {"code", "message"}}`` with the HTTP
status; nothing about another user's objects is ever told apart from "not found".
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import bottle

from gk.accounts import User
from gk.ai.tokens import has_scope

log = logging.getLogger("gk.api")

MAX_JSON = 36 * 1024 * 1024  # a send with 25 MiB of attachments, base64-encoded


class APIError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.headers = status, code, headers or {}

    def response(self) -> bottle.HTTPResponse:
        return json_response({"error": {"code": self.code, "message": str(self)}}, self.status, self.headers)


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> bottle.HTTPResponse:
    resp = bottle.HTTPResponse(json.dumps(obj, ensure_ascii=False), status=status, headers=headers or {})
    resp.content_type = "application/json"
    resp.set_header("Cache-Control", "no-store")
    return resp


@dataclass(frozen=True)
class Caller:
    """Who is calling: the token's user and the token's scopes."""

    user: User
    scopes: frozenset[str]

    @property
    def address(self) -> str:
        return self.user.address


def bearer(environ: dict[str, Any]) -> str:
    scheme, _, token = str(environ.get("HTTP_AUTHORIZATION", "")).partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def read_json(limit: int = MAX_JSON) -> dict[str, Any]:
    """The request's JSON object body; 413 over ``limit``, 415 unless JSON, 400 when malformed."""
    req = bottle.request
    ctype = (req.get_header("Content-Type") or "").split(";", 1)[0].strip().lower()
    if ctype != "application/json":
        raise APIError(415, "unsupported_media_type", "Content-Type must be application/json")
    if req.content_length > limit:
        raise APIError(413, "too_large", f"request body over {limit} bytes")
    raw = req.body.read(limit + 1)
    if len(raw) > limit:
        raise APIError(413, "too_large", f"request body over {limit} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        raise APIError(400, "bad_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise APIError(400, "bad_json", "the body must be a JSON object")
    return body


Handler = Callable[..., Any]


def make_app(
    authenticate: Callable[[str], Caller | None],
    routes: Iterable[tuple[str, str, str | None, Handler]],
    openapi: Callable[[], dict[str, Any]],
) -> bottle.Bottle:
    """``routes``: (method, path, scope needed or None, handler(caller, **url_args)) — a
    handler returns a JSON-able object (200), or a ``bottle.HTTPResponse`` of its own."""
    app = bottle.Bottle()
    app.config["autojson"] = False

    def wrap(scope: str | None, handler: Handler) -> Callable[..., bottle.HTTPResponse]:
        def route(**kw: Any) -> bottle.HTTPResponse:
            try:
                token = bearer(bottle.request.environ)
                caller = authenticate(token) if token else None
                if caller is None:
                    challenge = 'Bearer realm="gk"' + (', error="invalid_token"' if token else "")
                    raise APIError(401, "unauthorized", "missing or invalid bearer token (gk token add ADDRESS "
                                   "--scope mail, or the account page)", {"WWW-Authenticate": challenge})  # fmt: skip
                if scope is not None and not has_scope(caller.scopes, scope):
                    raise APIError(
                        403,
                        "insufficient_scope",
                        f"this token lacks the {scope} scope",
                        {"WWW-Authenticate": f'Bearer realm="gk", error="insufficient_scope", scope="{scope}"'},
                    )
                out = handler(caller, **kw)
            except APIError as exc:
                return exc.response()
            except Exception:
                log.exception("api %s %s failed", bottle.request.method, bottle.request.path)
                return APIError(500, "internal", "internal error").response()
            return out if isinstance(out, bottle.HTTPResponse) else json_response(out)

        return route

    for method, path, scope, handler in routes:
        app.route(path, method, wrap(scope, handler))

    @app.get("/openapi.json")
    def description() -> bottle.HTTPResponse:
        return json_response(openapi(), headers={"Access-Control-Allow-Origin": "*"})

    def error(err: bottle.HTTPError) -> str:
        bottle.response.content_type = "application/json"
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code, "error")
        text = {404: "no such endpoint (see /api/v1/openapi.json)", 405: "method not allowed here"}.get(
            err.status_code, f"HTTP {err.status_code}"
        )
        return json.dumps({"error": {"code": code, "message": text}})

    for status in (400, 404, 405, 413, 500):
        app.error(status)(error)
    return app
