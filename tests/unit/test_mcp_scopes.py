"""Which MCP tools a token's scopes open, tool by tool (``gk.mcp.scopes``)."""

from __future__ import annotations

import pytest

from gk.ai.tokens import parse_scopes
from gk.mcp import scopes
from gk.mcp.registry import Registry, Tool, UnknownTool


def tool(name: str, read_only: bool = True) -> Tool:
    return Tool(name, name, "", {"type": "object"}, {"type": "object"}, lambda a, args: {"ok": True},
                read_only=read_only)  # fmt: skip


def test_feature_and_level_decide():
    read, write = tool("mail_search"), tool("mail_send", read_only=False)
    assert scopes.needed(read) == "mail:read" and scopes.needed(write) == "mail:write"
    assert scopes.needed(tool("contacts_search")) == "calendar:read"
    assert scopes.needed(tool("test_simple_text")) is None  # fixtures: the mcp scope alone
    ro = parse_scopes("mcp,mail:read")
    assert scopes.allowed(read, ro) and not scopes.allowed(write, ro)
    assert not scopes.allowed(tool("chat_post", read_only=False), parse_scopes("mcp,mail:write"))
    assert scopes.allowed(write, parse_scopes("mcp,mail:write")) and scopes.allowed(read, parse_scopes("mcp,mail"))
    assert scopes.allowed(tool("test_simple_text"), frozenset({"mcp"}))


def test_registry_hides_and_refuses_what_the_request_may_not_use():
    reg = Registry([tool("mail_search"), tool("mail_send", read_only=False), tool("chat_search")])
    assert {t["name"] for t in reg.list()} == {"mail_search", "mail_send", "chat_search"}  # no token in play
    token = scopes.granted.set(parse_scopes("mcp,mail:read"))
    try:
        assert {t["name"] for t in reg.list()} == {"mail_search"}
        assert reg.call("a@b.example", "mail_search", {})["isError"] is False
        for hidden, need in (("mail_send", "mail:write"), ("chat_search", "chat:read")):
            with pytest.raises(scopes.InsufficientScope) as info:  # the transport's 403 step-up challenge
                reg.call("a@b.example", hidden, {})
            assert info.value.scopes == (need,) and info.value.what == hidden
        with pytest.raises(UnknownTool):
            reg.call("a@b.example", "mail_nope", {})
        widen = scopes.widenable.set(True)  # an OAuth token sees every tool: it can step up
        try:
            assert {t["name"] for t in reg.list()} == {"mail_search", "mail_send", "chat_search"}
            with pytest.raises(scopes.InsufficientScope):
                reg.call("a@b.example", "mail_send", {})
        finally:
            scopes.widenable.reset(widen)
    finally:
        scopes.granted.reset(token)
