"""Who an OAuth client is (``gk.oauth.clients``): Client ID Metadata Documents fetched from a
real HTTPS server on a real socket (a test CA), the SSRF fence (LAN and loopback refused by
default, no redirects, size and type limits, ``client_id`` must equal the URL), and the
redirect-URI rules shared with dynamic registration."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from support.testca import make_ca

from gk.oauth import clients
from gk.oauth.clients import ClientError, Resolver, fetch_document, redirect_uri_ok, registration

DOCS: dict[str, tuple[int, str, bytes]] = {}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, ctype, body = DOCS.get(self.path, (404, "text/plain", b"no"))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if status == 302:
            self.send_header("Location", "https://localhost/elsewhere.json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def https(tmp_path_factory) -> Iterator[tuple[str, ssl.SSLContext]]:  # type: ignore[no-untyped-def]
    ca = make_ca(tmp_path_factory.mktemp("ca"))
    cert, key = ca.issue("localhost")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    srv.socket = server_ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    client_ctx = ssl.create_default_context(cafile=str(ca.ca_file))
    yield f"https://localhost:{srv.server_address[1]}", client_ctx
    srv.shutdown()


def doc(url: str, **extra: object) -> bytes:
    return json.dumps({"client_id": url, "client_name": "Example client", "client_uri": "https://client.example",
                       "redirect_uris": ["http://127.0.0.1:3000/callback"], **extra}).encode()  # fmt: skip


def test_a_metadata_document_is_fetched_checked_and_cached(https):
    base, ctx = https
    url = base + "/client.json"
    DOCS["/client.json"] = (200, "application/json", doc(url))
    fetch = partial(fetch_document, allow_lan=True, context=ctx)
    resolver = Resolver(lambda cid: None, fetch)
    client = resolver.resolve(url)
    assert (client.client_id, client.name, client.uri) == (url, "Example client", "https://client.example")
    assert client.redirect_uris == ("http://127.0.0.1:3000/callback",)
    DOCS["/client.json"] = (500, "text/plain", b"gone")
    assert resolver.resolve(url) == client  # cached
    with pytest.raises(ClientError, match="unknown client_id"):
        resolver.resolve("gk-client-unknown")


def test_the_lan_and_loopback_are_never_fetched_by_default(https):
    base, ctx = https
    DOCS["/lan.json"] = (200, "application/json", doc(base + "/lan.json"))
    with pytest.raises(ClientError, match="not a public address"):
        fetch_document(base + "/lan.json", context=ctx)
    for host in ("10.0.0.1", "192.168.1.10", "169.254.169.254", "[::1]", "[fd00::1]", "100.64.0.1"):
        with pytest.raises(ClientError, match="not a public address"):
            fetch_document(f"https://{host}/client.json", context=ctx)


@pytest.mark.parametrize(
    ("path", "reply", "message"),
    [
        ("/moved.json", (302, "application/json", b""), "HTTP 302"),
        ("/text.json", (200, "text/html", b"<html>"), "not application/json"),
        ("/big.json", (200, "application/json", b"{" + b" " * (clients.MAX_BYTES + 10) + b"}"), "over"),
        ("/notjson.json", (200, "application/json", b"{nope"), "not JSON"),
        ("/other.json", (200, "application/json", None), "must equal its URL"),
    ],
)
def test_bad_documents_are_refused(https, path, reply, message):
    base, ctx = https
    status, ctype, body = reply
    DOCS[path] = (status, ctype, body if body is not None else doc(base + "/someone-else.json"))
    with pytest.raises(ClientError, match=message):
        fetch_document(base + path, allow_lan=True, context=ctx)


def test_client_id_urls_must_be_https_with_a_path():
    for url in ("http://client.example/c.json", "https://client.example/", "https://u:p@client.example/c.json"):
        with pytest.raises(ClientError):
            fetch_document(url)


def test_redirect_uris():
    good = ["https://app.example/cb", "http://127.0.0.1:8765/callback", "http://localhost/cb", "com.example.app:/cb"]
    bad = ["http://evil.example/cb", "javascript:alert(1)", "data:text/html,x", "https://app.example/cb#frag",
           "file:///etc/passwd", "myapp:/cb", "", "https:///nohost"]  # fmt: skip
    assert all(redirect_uri_ok(u) for u in good)
    assert not any(redirect_uri_ok(u) for u in bad)
    assert registration({"redirect_uris": good[:1], "client_name": "x"}) == ("x", "", good[:1])
    for meta in ({"redirect_uris": []}, {"redirect_uris": bad[:1]}, {"redirect_uris": good, "grant_types": ["implicit"]}, []):  # fmt: skip
        with pytest.raises(ClientError):
            registration(meta)


def test_pkce_s256_and_scopes():
    from gk.oauth.server import oauth_scope, pkce_ok

    # RFC 7636 appendix B
    assert pkce_ok("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
    assert not pkce_ok("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXx", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
    assert not pkce_ok("short", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
    assert oauth_scope("") == "mcp mail:read chat:read calendar:read"
    assert oauth_scope("mail:write") == "mcp mail:read mail:write"
    assert oauth_scope("ai mcp") == "mcp mail:read chat:read calendar:read"  # never /v1; bare mcp = read-only
    with pytest.raises(ValueError):
        oauth_scope("mcp root")
