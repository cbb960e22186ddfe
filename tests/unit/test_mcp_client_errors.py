"""Why an external MCP server's tools could not be listed: each failure carries a stable kind
(``gk.mcp.client.KINDS``) the tools page explains in the reader's language, found here on real
sockets on 127.0.0.1 (a closed port, a socket that never answers, a small HTTP server, an HTTPS
one whose certificate is not trusted) and a name under ``.invalid`` (RFC 6761: never resolves,
no network needed). The page itself: tests/unit/test_web_assistant_tools.py."""

from __future__ import annotations

import http.server
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.testca import make_ca

from gk.mcp import client, toolbox
from gk.mcp.toolbox import Settings

UNRESOLVABLE = "http://tools.example.invalid/mcp"

# path -> (status, content type, body); "/mcp" answers as an MCP server does
ANSWERS: dict[str, tuple[int, str, bytes]] = {
    "/token": (401, "application/json", b'{"error": "invalid_token"}'),
    "/gone": (404, "text/html", b"<!doctype html><h1>Not Found</h1>"),
    "/web": (200, "text/html", b"<!doctype html><h1>Welcome</h1>"),
    "/broken": (502, "text/html", b"<h1>Bad Gateway</h1>"),
    "/rpcerror": (200, "application/json", b'{"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "no"}}'),
}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        message = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path == "/mcp":
            result = {"tools": [{"name": "look"}]} if message.get("method") == "tools/list" else {}
            status, ctype = 200 if "id" in message else 202, "application/json"
            body = json.dumps({"jsonrpc": "2.0", "id": message.get("id"), "result": result}).encode()
        else:
            status, ctype, body = ANSWERS[self.path]
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _serve(context: ssl.SSLContext | None = None) -> Iterator[int]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if context is not None:
        srv.socket = context.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def web_port() -> Iterator[int]:
    yield from _serve()


@pytest.fixture
def untrusted_tls_port(tmp_path: Path) -> Iterator[int]:
    cert, key = make_ca(tmp_path / "ca").issue("127.0.0.1", self_signed=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    yield from _serve(context)


def kind(url: str, token: str = "", timeout: float = 5, public_only: bool = False) -> str:
    with pytest.raises(client.MCPClientError) as err:
        client.list_tools(url, token, timeout=timeout, public_only=public_only)
    assert str(err.value)  # the English detail, kept for the logs and the page's details line
    return err.value.kind


def test_a_name_that_does_not_resolve_is_unresolvable_on_both_paths() -> None:
    assert kind(UNRESOLVABLE) == client.UNRESOLVABLE  # an administrator's: the plain connection
    assert kind(UNRESOLVABLE, public_only=True) == client.UNRESOLVABLE  # another user's: the egress check


def test_the_lan_for_a_user_who_may_not_reach_it_is_not_public(web_port: int) -> None:
    assert kind(f"http://127.0.0.1:{web_port}/mcp", public_only=True) == client.NOT_PUBLIC


def test_a_closed_port_is_refused() -> None:
    with socket.socket() as s:  # a port just free, nothing listening on it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert kind(f"http://127.0.0.1:{port}/mcp") == client.REFUSED


def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as s:  # connections wait in the backlog, never read
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        assert kind(f"http://127.0.0.1:{s.getsockname()[1]}/mcp", timeout=0.3) == client.TIMED_OUT


def test_tls_failures(web_port: int, untrusted_tls_port: int) -> None:
    assert kind(f"https://127.0.0.1:{untrusted_tls_port}/mcp") == client.TLS  # a self-signed certificate
    assert kind(f"https://127.0.0.1:{web_port}/mcp") == client.TLS  # HTTPS to a plain HTTP port


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/token", client.UNAUTHORIZED),
        ("/gone", client.NOT_FOUND),
        ("/web", client.NOT_MCP),
        ("/broken", client.SERVER_ERROR),
        ("/rpcerror", client.OTHER),
    ],
)
def test_what_an_http_server_answers(web_port: int, path: str, expected: str) -> None:
    assert kind(f"http://127.0.0.1:{web_port}{path}") == expected


def test_the_kind_is_kept_with_the_detail_and_cleared_by_a_listing(tmp_path: Path, web_port: int) -> None:
    s = Settings(tmp_path, lan_allowed=lambda address: True)
    sid = s.add_server("a@x.example", "web", f"http://127.0.0.1:{web_port}/web", "")
    server = s.server("a@x.example", sid)
    assert server is not None
    failed = toolbox.refresh(s, server)
    assert failed is not None and failed.kind == client.NOT_MCP
    kept = s.server("a@x.example", sid)
    assert kept is not None and kept.error_kind == client.NOT_MCP and "HTTP 200" in kept.error
    s.db.execute("UPDATE servers SET url = ? WHERE id = ?", (f"http://127.0.0.1:{web_port}/mcp", sid))
    assert toolbox.refresh(s, s.server("a@x.example", sid)) is None  # type: ignore[arg-type]
    listed = s.server("a@x.example", sid)
    assert listed is not None and listed.error == listed.error_kind == "" and listed.tools == [{"name": "look"}]
    s.close()


def test_a_listing_stored_before_the_kinds_still_reads(tmp_path: Path) -> None:
    from gk.store import open_database

    old = open_database(tmp_path / "tools.sqlite3", toolbox.MIGRATIONS[:1])  # the schema before
    old.execute(
        "INSERT INTO servers(address, name, url, error, created) VALUES (?,?,?,?,?)",
        ("a@x.example", "old", "https://old.example/mcp", "cannot reach old.example: timed out", 0),
    )
    old.close()
    s = Settings(tmp_path)
    (server,) = s.servers("a@x.example")
    assert server.error == "cannot reach old.example: timed out" and server.error_kind == ""
    s.close()
