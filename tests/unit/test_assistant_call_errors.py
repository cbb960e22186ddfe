"""A tool call that fails, as a French owner reads it in the assistant's conversation and on the
approval of a call that acts: a sentence in their language saying what happened (a kind,
``meta["error_kind"]`` / ``PendingAction.result_kind``), the English detail behind "Détails",
while the model still reads that precise English text. Real sockets on 127.0.0.1: a small MCP
server over Streamable HTTP (JSON answers) whose tools fail, time out, want a token, and a
closed port; GK's own tools failing in process (a missing folder, a bad argument, an unknown
tool, a crash). The listing's failures: tests/unit/test_mcp_client_errors.py."""

from __future__ import annotations

import dataclasses
import functools
import html
import http.server
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.wsgiclient import ADMIN, ADMIN_PW, Client, signed_in, web_with_tools

from gk.mcp import client
from gk.mcp import toolbox as tb
from gk.web import assistant_tools
from gk.web.app import Web

READ = {"readOnlyHint": True}
TOOLS = [
    {"name": "look", "description": "Read the soil sensor.", "annotations": READ},
    {"name": "slow", "description": "Read the slow sensor.", "annotations": READ},
    {"name": "water", "description": "Open the valve."},  # acts: called only once approved
]
FAILING = {"look": "the soil sensor is offline", "water": "the valve is stuck"}


class Handler(http.server.BaseHTTPRequestHandler):
    """An MCP server (2025-11-25, Streamable HTTP, JSON answers) at /mcp; /locked wants a token."""

    def do_POST(self) -> None:
        message = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path == "/locked":
            return self._answer(401, b'{"error": "invalid_token"}')
        if "id" not in message:
            return self._answer(202, b"")
        method, params = message.get("method"), message.get("params") or {}
        if method == "initialize":
            result: dict[str, Any] = {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
                                      "serverInfo": {"name": "garden", "version": "1"}}  # fmt: skip
        elif method == "tools/list":
            result = {"tools": TOOLS}
        elif params.get("name") == "slow":
            time.sleep(1.5)
            result = {"content": [{"type": "text", "text": "12 °C"}]}
        else:  # the tool raised: an MCP tool result with isError, as the spec says
            text = FAILING.get(params.get("name"), "no such tool")
            result = {
                "content": [{"type": "text", "text": text}],
                "isError": True,
                "_meta": {"gk/errorKind": "not_found"},
            }  # fmt: skip  (a kind from outside is not trusted)
        self._answer(200, json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}).encode())

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up on "slow"
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def port() -> Iterator[int]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    with web_with_tools(tmp_path) as web:
        yield web


@pytest.fixture
def owner(web: Web) -> Client:
    """The administrator (their tool servers may be on 127.0.0.1), reading French."""
    c = signed_in(web, ADMIN, ADMIN_PW)
    assert c.post("/account/language", {"language": "fr"}).status == 303
    return c


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def add(web: Web, name: str, url: str) -> None:
    """A server with its tools listed (by GK itself when it answers, else as kept before), all on."""
    settings = assistant_tools.settings(web)
    sid = settings.add_server(ADMIN, name, url, "")
    server = settings.server(ADMIN, sid)
    assert server is not None
    if tb.refresh(settings, server) is not None:
        settings.save_listing(sid, TOOLS, "")
    for t in TOOLS:
        settings.set_enabled(ADMIN, f"{name}_{t['name']}", True)


def shown(page: str) -> tuple[str, str, str]:
    """(the failure's kind, its sentence, its detail) as a tool call renders."""
    said = re.search(r'<p class="error tool-error" data-kind="([^"]+)">(.*?)</p>', page, re.S)
    detail = re.search(r'<details class="error-detail"><summary>Détails</summary><pre class="result">(.*?)</pre>',
                       page, re.S)  # fmt: skip
    assert said and detail, page
    return said.group(1), html.unescape(said.group(2)), html.unescape(detail.group(1))


def call(web: Web, name: str, arguments: dict[str, Any] | None = None) -> tuple[dict[str, Any], str, str]:
    """One call the model made: (the stored meta, what the model reads, the French page's HTML)."""
    tools = assistant_tools.AnswerTools(web, assistant_tools.toolbox(web, ADMIN), "qwen", "fr")
    meta, for_model = tools.run({"name": name, "arguments": arguments or {}})
    return meta, for_model, assistant_tools.render_call(web, meta, "fr")


def test_an_external_tool_that_fails_is_said_in_french_and_the_model_reads_the_detail(
    web: Web, owner: Client, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client, "call_tool", functools.partial(client.call_tool, timeout=0.5))
    add(web, "garden", f"http://127.0.0.1:{port}/mcp")
    add(web, "locked", f"http://127.0.0.1:{port}/locked")
    add(web, "gone", f"http://127.0.0.1:{closed_port()}/mcp")

    meta, model, page = call(web, "garden_look")
    assert meta["status"] == "error" and meta["host"] == "127.0.0.1"
    assert shown(page) == (
        "tool_error",
        "L'outil garden_look de 127.0.0.1 a répondu par une erreur.",
        "the soil sensor is offline",
    )  # fmt: skip  (the server's own kind ignored)
    assert 'status="error"' in model and "the soil sensor is offline" in model

    meta, model, page = call(web, "garden_slow")
    kind, said, detail = shown(page)
    assert kind == "timeout" and said.startswith("127.0.0.1 n'a pas répondu en ")
    assert "timed out" in detail and "(timeout)" in model and "timed out" in model

    kind, said, detail = shown(call(web, "locked_look")[2])
    assert kind == "unauthorized"
    assert said == "127.0.0.1 a refusé de lancer locked_look sans jeton valable : vérifiez son jeton sur la page des outils."  # fmt: skip
    assert "HTTP 401" in detail

    meta, model, page = call(web, "gone_look")
    kind, said, detail = shown(page)
    assert kind == "refused"
    assert said == "127.0.0.1 a refusé la connexion : vérifiez l'adresse et le port, et que le serveur est démarré."
    assert "Connection refused" in detail and "Connection refused" in model and "Connection refused" not in said
    assert "<summary>Outil gone_look — échec</summary>" in page


def test_gks_own_tools_failing_are_said_in_french(web: Web, owner: Client) -> None:
    meta, model, page = call(web, "mail_read", {"folder": "Potager", "uid": 1})
    kind, said, detail = shown(page)
    assert kind == "not_found" and said.startswith("mail_read n'a pas trouvé ce que l'assistant demandait")
    assert "Potager" in detail and "Potager" in model

    kind, said, detail = shown(call(web, "mail_read", {"folder": "INBOX", "uid": "x"})[2])
    assert kind == "invalid" and said.startswith("L'assistant a appelé mail_read avec des valeurs qu'il n'accepte pas")
    assert "arguments.uid" in detail

    meta, model, page = call(web, "mail_burn")
    assert shown(page)[0] == "unknown_tool" and "mail_burn is not one of your tools" in model

    tools = assistant_tools.AnswerTools(web, assistant_tools.toolbox(web, ADMIN), "qwen", "fr")
    assert tools.box is not None

    def boom(address: str, args: dict[str, Any]) -> dict[str, Any]:
        raise OSError("disk on fire")

    registry = tools.box.registry._tools
    registry["mail_search"] = dataclasses.replace(registry["mail_search"], run=boom)
    meta, model = tools.run({"name": "mail_search", "arguments": {"text": "tomates"}})
    kind, said, detail = shown(assistant_tools.render_call(web, meta, "fr"))
    assert kind == "crashed" and said.startswith("mail_search a échoué sur ce serveur à cause d'une erreur interne")
    assert "OSError" in model and "disk on fire" not in model + detail  # the exception's text stays in the log


def test_a_result_stored_before_the_kinds_is_shown_as_it_was(web: Web) -> None:
    meta = {"tool": "mail_read", "arguments": {}, "status": "error", "text": "no message 3 in 'INBOX'"}
    page = assistant_tools.render_call(web, meta, "fr")
    assert '<pre class="result">no message 3 in &#x27;INBOX&#x27;</pre>' in page and "tool-error" not in page


def test_an_approved_call_that_fails_is_said_in_french(web: Web, owner: Client, port: int) -> None:
    add(web, "garden", f"http://127.0.0.1:{port}/mcp")
    add(web, "gone", f"http://127.0.0.1:{closed_port()}/mcp")
    for name, kind, said, detail in (
        ("garden_water", "tool_error", "L'outil de 127.0.0.1 a répondu par une erreur.", "the valve is stuck"),
        ("gone_water", "refused", "127.0.0.1 a refusé la connexion : vérifiez l'adresse et le port, et que le "
         "serveur est démarré.", "Connection refused"),
    ):  # fmt: skip
        meta, model, _page = call(web, name)
        assert meta["status"] == "queued" and "Queued for approval" in model
        owner.get(f"/approvals/{meta['action_id']}")
        page = owner.post(f"/approvals/{meta['action_id']}/approve").text
        notice = re.search(r'<p class="notice"[^>]*>(.*?)</p>', page, re.S)
        assert notice and html.unescape(notice.group(1)) == f"Approuvée, mais en échec : {said}"
        result = re.search(r'<dd id="result" data-kind="([^"]+)">(.*?)</dd>', page, re.S)
        assert result and result.group(1) == kind
        assert html.unescape(result.group(2)).startswith(said)
        assert "<summary>Détails</summary>" in result.group(2) and detail in result.group(2)


def test_a_call_approved_after_its_server_moved_is_not_made(web: Web, owner: Client, port: int) -> None:
    add(web, "garden", f"http://127.0.0.1:{port}/mcp")
    meta = call(web, "garden_water")[0]
    settings = assistant_tools.settings(web)
    (server,) = settings.servers(ADMIN)
    assert settings.update_server(ADMIN, server.id, f"http://127.0.0.1:{closed_port()}/mcp", None)
    owner.get(f"/approvals/{meta['action_id']}")
    page = owner.post(f"/approvals/{meta['action_id']}/approve").text
    result = re.search(r'<dd id="result" data-kind="([^"]+)">(.*?)</dd>', page, re.S)
    assert result and result.group(1) == "changed"
    assert html.unescape(result.group(2)).startswith("Cela a changé depuis la demande de l'assistant")
    assert "removed or changed since the call was asked" in result.group(2)
