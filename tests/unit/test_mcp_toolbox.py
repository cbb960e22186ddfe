"""The assistant's toolbox without a server: compact descriptions, per-user settings and
servers, and the client's reading of an SSE answer (the network paths are in
tests/integration/test_ai_assistant_tools.py)."""

from __future__ import annotations

import pytest

from gk.mcp import client, toolbox
from gk.mcp.toolbox import Entry, Settings, ToolboxError

SEND = {
    "name": "mail_send",
    "description": "Send a new mail message from the user's address. Queued for the owner's approval.",
    "inputSchema": {
        "type": "object",
        "properties": {
            "to": {"type": "array", "items": {"type": "string"}, "description": "recipients"},
            "body": {"type": "string", "description": "the text"},
        },
        "required": ["to"],
    },
    "annotations": {"readOnlyHint": False},
}


def test_the_model_gets_compact_descriptions():
    entry = Entry("mail_send", SEND, None, True)
    fn = toolbox.function(entry)["function"]
    assert fn["description"] == "Send a new mail message from the user's address."
    assert "description" not in fn["parameters"]["properties"]["to"] and fn["parameters"]["required"] == ["to"]
    assert (
        toolbox.signature(entry)
        == "mail_send(to: array, body?: string): Send a new mail message from the user's address."
    )
    assert len(toolbox.short("x" * 500)) == toolbox.DESCRIPTION_CHARS


def test_settings_and_servers_are_per_user(tmp_path):
    s = Settings(tmp_path)
    assert (tmp_path / "tools.sqlite3").stat().st_mode & 0o777 == 0o600  # it holds tokens
    s.set_enabled("a@x.example", "mail_read", False)
    assert s.switches("a@x.example") == {"mail_read": False} and s.switches("b@x.example") == {}
    sid = s.add_server("b@x.example", "garden", "https://garden.example/mcp", "tok")
    s.set_enabled("b@x.example", "garden_look", True)
    assert s.servers("a@x.example") == [] and s.server("a@x.example", sid) is None
    assert not s.remove_server("a@x.example", sid)  # not theirs
    for name, url in (
        ("Bad Name", "https://x.example/mcp"),
        ("ok", "ftp://x.example/"),
        ("garden", "https://y.example"),
    ):
        with pytest.raises(ToolboxError):
            s.add_server("b@x.example", name, url, "")
    assert s.remove_server("b@x.example", sid)
    assert s.servers("b@x.example") == [] and "garden_look" not in s.switches("b@x.example")
    s.close()


def test_the_client_reads_its_answer_out_of_an_sse_stream():
    body = (
        b': comment\n\nevent: message\ndata: {"jsonrpc": "2.0", "method": "notifications/progress"}\n\n'
        b'event: message\ndata: {"jsonrpc": "2.0", "id": 7,\ndata:  "result": {"tools": []}}\n\n'
    )
    msgs = client._sse_messages(body)
    assert msgs[-1] == {"jsonrpc": "2.0", "id": 7, "result": {"tools": []}} and len(msgs) == 2
    with pytest.raises(client.MCPClientError):
        client.check_url("file:///etc/passwd")


def test_an_unreachable_server_is_an_error_the_owner_can_read():
    with pytest.raises(client.MCPClientError, match="cannot reach"):
        client.list_tools("http://127.0.0.1:9/mcp", "", timeout=5)
