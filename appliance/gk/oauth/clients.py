"""Who the OAuth client is: a Client ID Metadata Document (the MCP authorization spec's
preferred way: ``client_id`` is an HTTPS URL serving the client's metadata as JSON) or, for
older clients, a client registered dynamically (RFC 7591, ``POST /oauth/register``).

Fetching a metadata document is a request the box makes to a URL a stranger chose, so it is
fenced (server-side request forgery):

- ``https`` only, default port or any, a path other than ``/``, no user info, no fragment;
- the host name is resolved once and **every** address must be public (``is_global``):
  loopback, RFC 1918/ULA LAN addresses, link-local, CGNAT and the like are refused — the LAN
  policy: a client on the LAN that wants to be known by URL must publish its document on a
  public host; otherwise it registers dynamically. The connection goes to the vetted address
  (the TLS name check still uses the host name), so a DNS answer that changes between the
  check and the connection (rebinding) cannot reach the LAN;
- no redirects followed, at most ``MAX_BYTES`` read, ``TIMEOUT`` seconds for the whole fetch,
  ``application/json`` only; the document's ``client_id`` must equal the URL;
- documents are cached ``CACHE_SECONDS`` in memory (at most ``CACHE_ENTRIES``).

Redirect URIs (both kinds of client) are matched exactly; allowed are ``https`` URLs, ``http``
on a loopback host (native apps, RFC 8252 §7.3) and private-use schemes (``com.example.app:/cb``,
RFC 8252 §7.1); never ``javascript:``, ``data:``, ``file:`` or plain ``http`` to another host.

Written by hand: the few checks above are GK's policy (authlib's ``ClientMixin`` would only hold
them), and no maintained Python library implements Client ID Metadata Documents.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from gk.oauth.store import Client
from gk.security.egress import EgressRefused, PinnedHTTPS, vetted_address

LAN_REFUSAL = "{host} resolves to {address}, not a public address: client metadata is never fetched from the LAN"

MAX_BYTES = 5 * 1024  # the draft's recommendation for a metadata document
TIMEOUT = 5.0
CACHE_SECONDS = 300.0
CACHE_ENTRIES = 64
MAX_REDIRECT_URIS = 10
FORBIDDEN_SCHEMES = {"javascript", "data", "file", "vbscript", "about", "blob", "ftp", "ws", "wss"}


class ClientError(ValueError):
    """An unusable client: the message is the ``error_description``; ``error`` is the RFC's code."""

    def __init__(self, message: str, error: str = "invalid_client"):
        super().__init__(message)
        self.error = error


def is_metadata_url(client_id: str) -> bool:
    try:
        parts = urlsplit(client_id)
    except ValueError:
        return False
    return parts.scheme == "https" and bool(parts.hostname) and parts.path not in ("", "/")


def redirect_uri_ok(uri: str) -> bool:
    try:
        parts = urlsplit(uri)
    except ValueError:
        return False
    scheme = parts.scheme.lower()
    if not scheme or parts.fragment or scheme in FORBIDDEN_SCHEMES or any(c.isspace() for c in uri):
        return False
    if scheme == "https":
        return bool(parts.hostname)
    if scheme == "http":
        return (parts.hostname or "") in ("localhost", "127.0.0.1", "::1")
    return "." in scheme  # a private-use scheme is a reversed domain name (RFC 8252 §7.1)


def check_redirect_uris(value: Any) -> list[str]:
    if not isinstance(value, list) or not value or len(value) > MAX_REDIRECT_URIS:
        raise ClientError(f"redirect_uris must list 1 to {MAX_REDIRECT_URIS} URIs", "invalid_redirect_uri")
    for uri in value:
        if not isinstance(uri, str) or len(uri) > 2000 or not redirect_uri_ok(uri):
            raise ClientError(f"redirect URI not allowed: {uri!r}", "invalid_redirect_uri")
    return list(value)


def _text(meta: dict[str, Any], key: str, limit: int = 200) -> str:
    value = meta.get(key, "")
    return value[:limit] if isinstance(value, str) else ""


def registration(meta: Any) -> tuple[str, str, list[str]]:
    """(name, uri, redirect URIs) of an RFC 7591 registration request; ``ClientError`` else."""
    if not isinstance(meta, dict):
        raise ClientError("the registration request must be a JSON object", "invalid_client_metadata")
    uris = check_redirect_uris(meta.get("redirect_uris"))
    grants = meta.get("grant_types", ["authorization_code"])
    if not isinstance(grants, list) or "authorization_code" not in grants:
        raise ClientError("the authorization_code grant is the one offered", "invalid_client_metadata")
    response_types = meta.get("response_types", ["code"])
    if not isinstance(response_types, list) or "code" not in response_types:
        raise ClientError("the code response type is the one offered", "invalid_client_metadata")
    # other grants, response types and auth methods asked are replaced (RFC 7591 §3.2.1): the
    # answer says what the client got (public, code, authorization_code + refresh_token)
    client_uri = _text(meta, "client_uri", 500)
    if client_uri and not client_uri.startswith("https://"):
        client_uri = ""
    return _text(meta, "client_name"), client_uri, uris


def fetch_document(url: str, *, allow_lan: bool = False, context: ssl.SSLContext | None = None) -> dict[str, Any]:
    """The JSON metadata document at ``url``, under the limits above; ``ClientError`` else.
    ``allow_lan`` and ``context`` (the CAs trusted) exist for the tests: GK never sets them."""
    from gevent import Timeout

    parts = urlsplit(url)
    if not is_metadata_url(url) or parts.username or parts.password or parts.fragment:
        raise ClientError("client_id must be an https URL with a path")
    host, port = parts.hostname or "", parts.port or 443
    try:
        with Timeout(TIMEOUT, ClientError(f"fetching {url} took over {TIMEOUT:.0f} s")):
            try:
                address = vetted_address(host, port, LAN_REFUSAL, allow_lan)
            except EgressRefused as exc:
                raise ClientError(str(exc)) from None
            conn = PinnedHTTPS(host, port, TIMEOUT, address, context or ssl.create_default_context())
            try:
                conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""),
                             headers={"Accept": "application/json", "User-Agent": "GK"})  # fmt: skip
                resp = conn.getresponse()
                if resp.status != 200:
                    raise ClientError(f"{url} answered HTTP {resp.status} (redirects are not followed)")
                if (resp.getheader("Content-Type") or "").split(";")[0].strip().lower() != "application/json":
                    raise ClientError(f"{url} is not application/json")
                body = resp.read(MAX_BYTES + 1)
            finally:
                conn.close()
    except (OSError, http.client.HTTPException) as exc:
        raise ClientError(f"cannot fetch {url}: {exc}") from None
    if len(body) > MAX_BYTES:
        raise ClientError(f"{url} is over {MAX_BYTES} bytes")
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested too deep
        raise ClientError(f"{url} is not JSON") from None
    if not isinstance(doc, dict) or doc.get("client_id") != url:
        raise ClientError("the metadata document's client_id must equal its URL")
    return doc


@dataclass
class Resolver:
    """client_id -> ``Client``: registered ones from the store, URLs by their document."""

    lookup: Callable[[str], Client | None]  # OAuthStore.client
    fetch: Callable[[str], dict[str, Any]] = fetch_document

    def __post_init__(self) -> None:
        self._cache: dict[str, tuple[float, Client]] = {}

    def resolve(self, client_id: str) -> Client:
        if is_metadata_url(client_id):
            hit = self._cache.get(client_id)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
            doc = self.fetch(client_id)
            auth_method = doc.get("token_endpoint_auth_method", "none")
            if auth_method != "none":
                raise ClientError("only public clients (token_endpoint_auth_method none)")
            uri = _text(doc, "client_uri", 500)
            client = Client(client_id, _text(doc, "client_name"), uri if uri.startswith("https://") else "",
                            tuple(check_redirect_uris(doc.get("redirect_uris"))))  # fmt: skip
            if len(self._cache) >= CACHE_ENTRIES:
                self._cache.clear()
            self._cache[client_id] = (time.monotonic() + CACHE_SECONDS, client)
            return client
        found: Client | None = self.lookup(client_id) if client_id and len(client_id) < 200 else None
        if found is None:
            raise ClientError("unknown client_id")
        return found
