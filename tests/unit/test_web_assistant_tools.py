"""The assistant's tools page in process (``support.wsgiclient``, a real MCP service): an external
server whose tools cannot be listed is explained in the reader's language with what to do, the
English detail kept behind "details"; a listing stored before the kinds shows its detail. The
classification itself: tests/unit/test_mcp_client_errors.py."""

from __future__ import annotations

import html
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.wsgiclient import ADMIN, ADMIN_PW, set_up_web, signed_in

from gk.mail.mailbox import service as mailbox_service
from gk.mcp.service import MCPService
from gk.web import assistant_tools
from gk.web.app import Web


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    web = set_up_web(tmp_path)
    mailbox = mailbox_service.start(web.ctx)
    assert mailbox is not None
    web.ctx.services.register("mailbox", mailbox)  # the MCP tools read mail
    mcp = MCPService(web.ctx)
    web.ctx.services.provide(mcp)
    yield web
    found = assistant_tools._settings.pop(Path(web.data_dir), None)
    if found is not None:
        found.close()
    mcp.stop(0)
    mailbox.stop(0)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def errors(page: str) -> list[str]:
    """The text of the page's error paragraphs."""
    import re

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
    assert "bare.example demande un jeton : supprimez ce serveur et ajoutez-le de nouveau avec son jeton." in shown
    assert (
        "stale.example a refusé le jeton : supprimez ce serveur et ajoutez-le de nouveau avec un jeton valable."
        in shown
    )
