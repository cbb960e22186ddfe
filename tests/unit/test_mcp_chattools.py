"""The chat tools' identity rule: the chat account is the address's local part, and a local
part several users share opens no chat at all (as the IRC login refuses it)."""

from __future__ import annotations

import pytest

from gk.accounts import User
from gk.chat.core import ChatService
from gk.mcp.chattools import ChatTools
from gk.mcp.registry import ToolFailed


def user(address: str) -> User:
    return User(0, address, False, "", "", 0.0)


def test_shared_local_part_is_refused(tmp_path):
    chat = ChatService.open(tmp_path, ["general"])
    try:
        chat.join("general", "alice")
        chat.post("carol", "alice", "private note for alice")
        users = [user("alice@a.example"), user("carol@a.example")]
        tools = ChatTools(chat, lambda: users)
        found = tools.search("alice@a.example", {"text": "private"})
        assert [m["text"] for m in found["messages"]] == ["private note for alice"]
        users.append(user("alice@b.example"))  # a second alice: neither reads alice's chat
        for address in ("alice@a.example", "alice@b.example"):
            with pytest.raises(ToolFailed, match="several users") as err:
                tools.search(address, {"text": "private"})
            assert err.value.kind == "denied"
            with pytest.raises(ToolFailed):
                tools.read_history(address, {"conversation": "carol"})
    finally:
        chat.stop()


def test_a_room_refusal_says_its_kind(tmp_path):
    """The assistant's page says why in the reader's language from the kind (``chat_kind``)."""
    chat = ChatService.open(tmp_path, ["general"])
    try:
        tools = ChatTools(chat, lambda: [user("alice@a.example"), user("carol@a.example")])
        with pytest.raises(ToolFailed) as err:
            tools.read_history("alice@a.example", {"conversation": "#nowhere"})
        assert err.value.kind == "not_found", err.value
        with pytest.raises(ToolFailed) as err:
            tools.read_history("alice@a.example", {"conversation": "#general"})
        assert err.value.kind == "denied", err.value
        with pytest.raises(ToolFailed) as err:
            tools.read_history("alice@a.example", {"conversation": " "})
        assert err.value.kind == "invalid"
    finally:
        chat.stop()
