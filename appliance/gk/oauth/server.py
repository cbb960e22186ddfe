"""GK as the OAuth 2.1 authorization server of its own MCP endpoint (the MCP authorization
spec, 2025-11-25): the endpoints other than the consent page (``gk.oauth.web``).

- ``/.well-known/oauth-authorization-server`` (RFC 8414): the issuer is the box's origin as
  the client addressed it; PKCE ``S256`` only, public clients only (``none``), Client ID
  Metadata Documents and dynamic registration both offered, ``iss`` in the authorization
  response (RFC 9207).
- ``POST /oauth/token``: ``authorization_code`` (code + ``code_verifier`` S256, mandatory; the
  same ``redirect_uri`` and ``client_id`` as the authorization request; ``resource`` if given must
  be the one authorized) and ``refresh_token`` (rotated). Errors are RFC 6749 §5.2's JSON
  (``invalid_request``, ``invalid_grant``, ``unsupported_grant_type``, ``invalid_target`` of
  RFC 8707), ``Cache-Control: no-store``.
- ``POST /oauth/register`` (RFC 7591): public clients; redirect URIs checked
  (``gk.oauth.clients``); at most ``REGISTRATIONS_PER_DAY`` a day (the endpoint is open).
- ``POST /oauth/revoke`` (RFC 7009).

Access tokens are opaque (``gko_at_…``), audience-bound: ``verify`` accepts one only at the
resource it was issued for (``http(s)://host/mcp``), so it opens neither ``/v1`` nor ``/api/v1``
(whose ``gk-`` tokens are another table) nor ``/mcp`` under another host name. GK never
forwards a client's token anywhere (no token passthrough): the tools act in-process.

Written by hand, small on purpose: authlib's ``AuthorizationServer`` needs a framework
integration (Flask, Django, Starlette; none for bottle) and its own storage mixins; the grant
logic here is the few checks above over ``gk.oauth.store``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import bottle

from gk.ai.tokens import SCOPES, ScopeError, format_scopes, parse_scopes
from gk.oauth.clients import ClientError, Resolver, registration
from gk.oauth.store import Grant, InvalidGrant, OAuthStore

AUTHORIZE_PATH = "/oauth/authorize"
TOKEN_PATH = "/oauth/token"
REGISTER_PATH = "/oauth/register"
REVOKE_PATH = "/oauth/revoke"
RESOURCE_PATH = "/mcp"
REGISTRATIONS_PER_DAY = 200
MAX_FORM = 16 * 1024
# what a token may be granted: the MCP transport and the features (never ``ai``: /v1 is another resource)
OAUTH_SCOPES = tuple(s for s in SCOPES if s != "ai")
DEFAULT_SCOPE = "mcp mail:read chat:read calendar:read"


def base_url(environ: dict[str, Any]) -> str:
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "localhost")
    return f"{scheme}://{host}"


def resource_of(environ: dict[str, Any]) -> str:
    return base_url(environ) + RESOURCE_PATH


def pkce_ok(verifier: str, challenge: str) -> bool:
    """RFC 7636 S256: BASE64URL(SHA256(verifier)) == challenge; the verifier 43-128 unreserved chars."""
    if not 43 <= len(verifier) <= 128 or not all(c.isalnum() or c in "-._~" for c in verifier):
        return False
    made = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()
    return hmac.compare_digest(made, challenge)


def oauth_scope(text: str) -> str:
    """A requested ``scope`` as granted: GK's names and aliases (``gk.ai.tokens``), always with
    ``mcp``, never ``ai``; space-separated. ``ScopeError`` on an unknown name."""
    scopes = parse_scopes((text or DEFAULT_SCOPE).replace(" ", ","))
    scopes = parse_scopes(",".join((scopes - {"ai"}) | {"mcp"}))
    return format_scopes(scopes).replace(",", " ")


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> bottle.HTTPResponse:
    resp = bottle.HTTPResponse(json.dumps(obj), status=status,
                               headers={"Cache-Control": "no-store", "Pragma": "no-cache", **(headers or {})})  # fmt: skip
    resp.content_type = "application/json"
    return resp


def _error(error: str, description: str, status: int = 400, headers: dict[str, str] | None = None) -> bottle.HTTPResponse:  # fmt: skip
    return _json({"error": error, "error_description": description}, status, headers)


def _form() -> dict[str, str] | None:
    """The ``application/x-www-form-urlencoded`` body, each parameter once (RFC 6749 §3.2), else None."""
    req = bottle.request
    ctype = (req.get_header("Content-Type") or "").split(";", 1)[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded" or req.content_length > MAX_FORM:
        return None
    forms = req.forms
    out: dict[str, str] = {}
    for key in forms:
        values = forms.getall(key)
        if len(values) != 1:
            return None
        out[key] = forms.getunicode(key) or ""
    return out


def _basic_client_id() -> str:
    scheme, _, value = (bottle.request.get_header("Authorization") or "").partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        user = base64.b64decode(value.strip()).decode().partition(":")[0]
    except ValueError:
        return ""
    return unquote(user)


class OAuthServer:
    """The store (opened on first use), the client resolver and the endpoints' apps."""

    def __init__(self, data_dir: Path, hostnames: tuple[str, ...] = ("localhost",)):
        self.data_dir = Path(data_dir)
        self.hostnames = tuple(h.lower() for h in hostnames)
        self._store: OAuthStore | None = None
        self.resolver = Resolver(lambda cid: self.store.client(cid))

    @property
    def store(self) -> OAuthStore:
        if self._store is None:
            self._store = OAuthStore.for_data_dir(self.data_dir)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    def verify(self, token: str, environ: dict[str, Any]) -> Grant | None:
        """The grant of an access token valid at this request's resource (audience), else None."""
        return self.store.verify(token, resource_of(environ))

    def resource_allowed(self, resource: str, environ: dict[str, Any]) -> bool:
        """RFC 8707: the one resource GK protects, ``/mcp``, under the host the client uses."""
        try:
            parts = urlsplit(resource)
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or parts.path != RESOURCE_PATH or parts.query or parts.fragment:
            return False
        host = (environ.get("HTTP_HOST") or "").lower()
        return parts.netloc.lower() == host or (parts.hostname or "") in self.hostnames

    # -- metadata --------------------------------------------------------------------------
    def metadata(self, environ: dict[str, Any]) -> dict[str, Any]:
        base = base_url(environ)
        return {
            "issuer": base,
            "authorization_endpoint": base + AUTHORIZE_PATH,
            "token_endpoint": base + TOKEN_PATH,
            "registration_endpoint": base + REGISTER_PATH,
            "revocation_endpoint": base + REVOKE_PATH,
            "scopes_supported": list(OAUTH_SCOPES),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "revocation_endpoint_auth_methods_supported": ["none"],
            "client_id_metadata_document_supported": True,
            "authorization_response_iss_parameter_supported": True,
        }

    def metadata_app(self) -> bottle.Bottle:
        app = bottle.Bottle()

        @app.get("/")
        def metadata() -> bottle.HTTPResponse:
            return _json(self.metadata(bottle.request.environ), headers={"Cache-Control": "max-age=3600"})

        return app

    # -- token endpoint --------------------------------------------------------------------
    def token_app(self) -> bottle.Bottle:
        app = bottle.Bottle()

        @app.post("/")
        def token() -> bottle.HTTPResponse:
            form = _form()
            if form is None:
                return _error("invalid_request", "a form-encoded body, each parameter once")
            client_id = form.get("client_id") or _basic_client_id()
            if not client_id:
                return _error("invalid_client", "client_id is required (public client)", 401,
                              {"WWW-Authenticate": 'Basic realm="gk"'})  # fmt: skip
            resource = form.get("resource")
            if resource is not None and not self.resource_allowed(resource, bottle.request.environ):
                return _error("invalid_target", "resource must be this server's /mcp")
            grant_type = form.get("grant_type", "")
            try:
                if grant_type == "authorization_code":
                    code, verifier = form.get("code", ""), form.get("code_verifier", "")
                    if not code or not verifier or "redirect_uri" not in form:
                        return _error("invalid_request", "code, redirect_uri and code_verifier (PKCE) are required")
                    issued = self.store.redeem(
                        code, client_id, form["redirect_uri"], lambda challenge: pkce_ok(verifier, challenge), resource
                    )
                elif grant_type == "refresh_token":
                    refresh = form.get("refresh_token", "")
                    if not refresh:
                        return _error("invalid_request", "refresh_token is required")
                    issued = self.store.refresh(refresh, client_id, resource)
                    if "scope" in form:
                        try:
                            asked = frozenset(oauth_scope(form["scope"]).split())
                        except ScopeError:
                            return _error("invalid_scope", "unknown scope")
                        if not asked <= frozenset(issued.scope.split()):
                            return _error("invalid_scope", "a refresh cannot widen the grant's scope")
                elif not grant_type:
                    return _error("invalid_request", "grant_type is required")
                else:
                    return _error("unsupported_grant_type", f"{grant_type!r} is not supported")
            except InvalidGrant as exc:
                return _error("invalid_grant", str(exc))
            return _json({
                "access_token": issued.access_token,
                "token_type": "Bearer",
                "expires_in": issued.expires_in,
                "refresh_token": issued.refresh_token,
                "scope": issued.scope,
            })  # fmt: skip

        return app

    # -- dynamic client registration -------------------------------------------------------
    def register_app(self) -> bottle.Bottle:
        app = bottle.Bottle()

        @app.post("/")
        def register() -> bottle.HTTPResponse:
            req = bottle.request
            if (req.get_header("Content-Type") or "").split(";")[0].strip().lower() != "application/json":
                return _error("invalid_client_metadata", "the request must be application/json")
            body = req.body.read(MAX_FORM + 1)
            if len(body) > MAX_FORM:
                return _error("invalid_client_metadata", f"over {MAX_FORM} bytes")
            try:
                name, uri, uris = registration(json.loads(body))
            except (ValueError, RecursionError) as exc:  # bad JSON (nested too deep: RecursionError), or ClientError
                error = exc.error if isinstance(exc, ClientError) else "invalid_client_metadata"
                return _error(error, str(exc))
            day = self.store.db.one("SELECT count(*) AS n FROM clients WHERE created > ?", (time.time() - 86400,))
            if day is not None and day["n"] >= REGISTRATIONS_PER_DAY:
                return _error("temporarily_unavailable", "too many client registrations today", 429)
            client = self.store.register(name, uri, uris)
            return _json({
                "client_id": client.client_id,
                "client_id_issued_at": int(time.time()),
                "client_name": name,
                **({"client_uri": uri} if uri else {}),
                "redirect_uris": uris,
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            }, 201)  # fmt: skip

        return app

    # -- revocation ------------------------------------------------------------------------
    def revoke_app(self) -> bottle.Bottle:
        app = bottle.Bottle()

        @app.post("/")
        def revoke() -> bottle.HTTPResponse:
            form = _form()
            if form is None or not form.get("token"):
                return _error("invalid_request", "token is required")
            client_id = form.get("client_id") or _basic_client_id()
            if client_id:
                self.store.revoke_token(form["token"], client_id)
            return _json({})  # RFC 7009 §2.2: 200 whether or not the token was known

        return app
