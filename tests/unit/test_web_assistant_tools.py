"""The assistant's tools page in process (``support.wsgiclient``, a real MCP service): an external
server whose tools cannot be listed is explained in the reader's language with what to do, the
English detail kept behind "details"; a listing stored before the kinds shows its detail. The
classification itself: tests/unit/test_mcp_client_errors.py."""

from __future__ import annotations

import html
import http.server
import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.wsgiclient import ADMIN, ADMIN_PW, USER, USER_PW, Client, signed_in, web_with_tools

from gk.web import assistant_tools
from gk.web.app import Web


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    with web_with_tools(tmp_path) as web:
        yield web


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def errors(page: str) -> list[str]:
    """The text of the page's error paragraphs."""
    return [html.unescape(m) for m in re.findall(r'<p class="error"[^>]*>(.*?)</p>', page, re.S)]


def test_a_french_owner_reads_why_the_tools_could_not_be_listed(web: Web) -> None:
    owner = signed_in(web, ADMIN, ADMIN_PW)  # an administrator's servers may be on the LAN (127.0.0.1 here)
    assert owner.post("/account/language", {"language": "fr"}).status == 303
    owner.get("/assistant/tools")
    port = closed_port()
    page = owner.post("/assistant/tools/servers", {"name": "garden", "url": f"http://127.0.0.1:{port}/mcp"}).text
    refused = "127.0.0.1 a refusé la connexion : vérifiez l'adresse et le port, et que le serveur est démarré."
    assert errors(page)[0] == f"Le serveur a été ajouté mais ses outils n'ont pas pu être listés. {refused}"
    assert refused in errors(page)[1]
    assert "Connection refused" in page and "<summary>Détails</summary>" in page  # the detail, behind a line
    page = owner.post("/assistant/tools/servers", {"name": "nowhere", "url": "https://tools.example.invalid/mcp"}).text
    assert "tools.example.invalid est introuvable : vérifiez l'adresse." in errors(page)[0]
    # kept: the page says it again later, in the reader's language
    later = owner.get("/assistant/tools").text
    assert refused in errors(later) and "tools.example.invalid est introuvable : vérifiez l'adresse." in errors(later)
    assert 'data-kind="refused"' in later and 'data-kind="unresolvable"' in later
    assert "Name or service not known" not in "".join(errors(later))  # the raw text only in the details


def test_a_listing_stored_before_the_kinds_shows_its_detail(web: Web) -> None:
    owner = signed_in(web, ADMIN, ADMIN_PW)
    settings = assistant_tools.settings(web)
    sid = settings.add_server(ADMIN, "old", "https://old.example/mcp", "")
    settings.db.execute("UPDATE servers SET error = 'cannot reach old.example: timed out' WHERE id = ?", (sid,))
    page = owner.get("/assistant/tools").text
    assert "cannot reach old.example: timed out" in errors(page)


def test_a_server_that_wants_a_token_says_so_whether_one_was_given_or_not(web: Web) -> None:
    owner = signed_in(web, ADMIN, ADMIN_PW)
    owner.post("/account/language", {"language": "fr"})
    settings = assistant_tools.settings(web)
    for name, token in (("bare", ""), ("stale", "tok")):
        sid = settings.add_server(ADMIN, name, f"https://{name}.example/mcp", token)
        settings.save_listing(sid, None, "the server refused the token (HTTP 401)", "unauthorized")
    shown = errors(owner.get("/assistant/tools").text)
    assert "bare.example demande un jeton : indiquez-le avec Modifier, ci-dessous." in shown
    assert "stale.example a refusé le jeton : indiquez-en un valable avec Modifier, ci-dessous." in shown


# -- changing a server's URL and token in place -------------------------------------------------

SECRET = "garden-secret-6f1c"


class TokenHandler(http.server.BaseHTTPRequestHandler):
    """An MCP server (Streamable HTTP, JSON answers) that wants ``Bearer SECRET``."""

    def do_POST(self) -> None:
        message = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.headers.get("Authorization") != f"Bearer {SECRET}":
            status, body = 401, b'{"error": "invalid_token"}'
        elif "id" not in message:
            status, body = 202, b""
        else:
            tools = [{"name": "look", "description": "Read the soil sensor.", "annotations": {"readOnlyHint": True}}]
            result = {"tools": tools} if message.get("method") == "tools/list" else {"protocolVersion": "2025-11-25"}
            status, body = 200, json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def token_port() -> Iterator[int]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TokenHandler)
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def notices(page: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(r'<p class="notice"[^>]*>(.*?)</p>', page, re.S)]


def test_the_owner_changes_a_servers_token_and_url_in_place(web: Web, token_port: int) -> None:
    owner = signed_in(web, ADMIN, ADMIN_PW)
    owner.post("/account/language", {"language": "fr"})
    url = f"http://127.0.0.1:{token_port}/mcp"
    owner.post("/assistant/tools/servers", {"name": "garden", "url": url})
    settings = assistant_tools.settings(web)
    (server,) = settings.servers(ADMIN)
    edit = f"/assistant/tools/servers/{server.id}/edit"
    page = owner.get("/assistant/tools").text
    assert "127.0.0.1 demande un jeton : indiquez-le avec Modifier, ci-dessous." in errors(page)
    assert f'action="{edit}"' in page and "Pas de jeton." in page

    # the token given: kept, the tools listed at once, the token never shown back
    resp = owner.post(edit, {"url": url, "token": SECRET})
    assert resp.status == 303 and resp.location.endswith("/assistant/tools")
    page = owner.get("/assistant/tools").text
    assert notices(page) == ["Le serveur a été modifié et ses outils listés à nouveau."]
    assert not errors(page) and 'data-tool="garden_look"' in page and "Un jeton est enregistré." in page
    assert SECRET not in page and SECRET not in owner.get("/assistant/tools").text
    assert owner.post("/assistant/tools/switch", {"tool": "garden_look", "enabled": "1"}).status == 303

    # an empty field keeps the token; the switches stay
    assert owner.post(edit, {"url": url, "token": ""}).status == 303
    server = settings.server(ADMIN, server.id)
    assert server is not None and server.token == SECRET and not server.error
    assert settings.switches(ADMIN)["garden_look"] is True

    # a wrong one is kept and said; "remove the token" removes it
    page = owner.post(edit, {"url": url, "token": "  nope  "}).text
    assert "Le serveur a été modifié mais ses outils n'ont pas pu être listés. 127.0.0.1 a refusé le jeton" in errors(page)[0]  # fmt: skip
    assert "nope" not in page
    assert settings.server(ADMIN, server.id).token == "nope"  # type: ignore[union-attr]
    page = owner.post(edit, {"url": url, "token": "", "remove_token": "1"}).text
    assert "127.0.0.1 demande un jeton" in errors(page)[0] and settings.server(ADMIN, server.id).token == ""  # type: ignore[union-attr]

    # a new URL: the old listing dropped (another server's tools), the switches kept for when it lists them
    moved = f"http://127.0.0.1:{closed_port()}/mcp"
    page = owner.post(edit, {"url": moved, "token": SECRET}).text
    assert "127.0.0.1 a refusé la connexion" in errors(page)[0] and 'data-tool="garden_look"' not in page
    assert owner.post(edit, {"url": url, "token": ""}).status == 303
    assert 'data-tool="garden_look"' in owner.get("/assistant/tools").text
    assert settings.switches(ADMIN)["garden_look"] is True
    assert owner.post(edit, {"url": "ftp://127.0.0.1/mcp"}).status == 400


def test_only_the_owner_changes_a_server_with_the_csrf_token(web: Web, token_port: int) -> None:
    settings = assistant_tools.settings(web)
    sid = settings.add_server(ADMIN, "garden", "https://garden.example/mcp", SECRET)
    edit = f"/assistant/tools/servers/{sid}/edit"
    owner = signed_in(web, ADMIN, ADMIN_PW)
    owner.get("/assistant/tools")
    assert owner.post(edit, {"url": "https://other.example/mcp", "token": "x"}, csrf=False).status == 403
    member = signed_in(web, USER, USER_PW)
    member.get("/assistant/tools")
    assert member.post(edit, {"url": "https://other.example/mcp", "token": "x"}).status == 404
    anonymous = Client(web)
    assert anonymous.post(edit, {"url": "https://other.example/mcp"}, csrf=False).status in (303, 401, 403)
    server = settings.server(ADMIN, sid)
    assert server is not None and server.url == "https://garden.example/mcp" and server.token == SECRET
    # a member's server may not be moved onto the LAN
    mine = settings.add_server(USER, "garden", "https://garden.example/mcp", "")
    page = member.post(f"/assistant/tools/servers/{mine}/edit", {"url": f"http://127.0.0.1:{token_port}/mcp"})
    assert page.status == 400 and "127.0.0.1" in errors(page.text)[0]
    assert settings.server(USER, mine).url == "https://garden.example/mcp"  # type: ignore[union-attr]
