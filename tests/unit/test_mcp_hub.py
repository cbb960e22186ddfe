"""gk.mcp.http.Hub: which open subscriptions/listen streams hear of a mail or chat change — only
their own user's, only the kinds and URIs they asked for."""

from __future__ import annotations

from gk import events
from gk.chat import core
from gk.chat.store import Message
from gk.mcp.http import Hub, Listener

INBOX = "gk-mail:///folder/INBOX"
TEAM = "gk-chat:///room/team"


def drain(lst: Listener) -> list[tuple[str, dict]]:
    out = []
    while not lst.queue.empty():
        out.append(lst.queue.get())
    return out


def test_mail_events_reach_their_users_subscribed_streams_only():
    hub = Hub()
    alice = Listener("alice@x.example", {"resourcesListChanged": True, "resourceSubscriptions": [INBOX]})
    alice_lists = Listener("alice@x.example", {"resourcesListChanged": True})
    bob = Listener("bob@x.example", {"resourcesListChanged": True, "resourceSubscriptions": [INBOX]})
    hub.listeners += [alice, alice_lists, bob]
    hub.on_mail_event(events.MessagesAdded("alice@x.example", "INBOX", (1,), 2))
    hub.on_mail_event(events.MaildirChanged("alice@x.example", "Archive"))
    hub.on_mail_event(events.FoldersChanged("alice@x.example", "Old"))
    assert drain(alice) == [
        ("notifications/resources/updated", {"uri": INBOX}),
        ("notifications/resources/list_changed", {}),
    ]
    assert drain(alice_lists) == [("notifications/resources/list_changed", {})]
    assert drain(bob) == []


def test_chat_events_reach_the_rooms_audience_only():
    hub = Hub()
    alice = Listener("alice@x.example", {"resourcesListChanged": True, "resourceSubscriptions": [TEAM]})
    carol = Listener("carol@x.example", {"resourcesListChanged": True, "resourceSubscriptions": [TEAM]})
    hub.listeners += [alice, carol]
    msg = Message(1, "m1", 0, "bob", "#team", "PRIVMSG", "hi")
    hub.on_chat_event(core.MessagePosted(frozenset({"alice", "bob"}), msg))
    hub.on_chat_event(core.Joined(frozenset({"alice"}), "team", "alice"))
    dm = Message(2, "m2", 0, "bob", "alice\nbob", "PRIVMSG", "psst")
    hub.on_chat_event(core.MessagePosted(frozenset({"alice", "bob"}), dm))  # a DM is no room resource
    assert drain(alice) == [
        ("notifications/resources/updated", {"uri": TEAM}),
        ("notifications/resources/list_changed", {}),
    ]
    assert drain(carol) == []


def test_list_changes_only_for_kinds_asked():
    hub = Hub()
    tools = Listener("", {"toolsListChanged": True})
    prompts = Listener("", {"promptsListChanged": True})
    hub.listeners += [tools, prompts]
    hub.changed("tools")
    assert drain(tools) == [("notifications/tools/list_changed", {})] and drain(prompts) == []
