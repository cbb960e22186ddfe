"""The chat as JSON, for backups and moves: rooms (with members, topic, access) and their
messages, direct conversations, each message with its id, server time, sender, text, reply,
edit time and reactions. Read from the store's reader connection in pages of ``PAGE``
messages (WAL: safe beside a running ``gk serve``); written as a stream, so a large history
never sits in memory whole.

Format (``"format": "gk-chat-export/1"``)::

    {"format": ..., "exported": "2026-...Z",
     "rooms": [{"name", "private", "topic", "topic_by", "topic_time", "created", "members": [...],
                "messages": [{"msgid", "time", "time_iso", "sender", "kind", "text", "reply_to",
                              "edited", "redacted", "reactions": [[account, reaction], ...]}]}],
     "direct": [{"members": [a, b], "messages": [...]}]}

Redacted messages keep their id and time with an empty text (their content is gone for good).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import IO

from gk.chat.store import ChatStore, Message, Room, room_target

FORMAT = "gk-chat-export/1"
PAGE = 500


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def message_json(store: ChatStore, m: Message) -> dict[str, object]:
    return {
        "msgid": m.msgid,
        "time": m.time,
        "time_iso": iso(m.time),
        "sender": m.sender,
        "kind": m.kind,
        "text": m.text,
        "reply_to": m.reply_to,
        "edited": m.edited,
        "redacted": m.redacted,
        "reactions": [list(r) for r in store.reactions(m.msgid)] if not m.redacted else [],
    }


def messages(store: ChatStore, target: str) -> Iterator[Message]:
    seq = 0
    while True:
        page = store.messages_after(target, seq, PAGE)
        yield from page
        if len(page) < PAGE:
            return
        seq = page[-1].seq


def room_header(store: ChatStore, r: Room) -> dict[str, object]:
    return {
        "name": r.name,
        "private": r.private,
        "topic": r.topic,
        "topic_by": r.topic_by,
        "topic_time": r.topic_time,
        "created": r.created,
        "members": sorted(store.members(r.id)),
    }


def _write_messages(out: IO[str], store: ChatStore, target: str) -> None:
    out.write('"messages": [')
    for i, m in enumerate(messages(store, target)):
        out.write(("," if i else "") + "\n    " + json.dumps(message_json(store, m), ensure_ascii=False))
    out.write("]}")


def write(out: IO[str], store: ChatStore, room: str | None = None, direct: bool = True) -> int:
    """Write the export to ``out``: every room (or only ``room``) and, with ``direct``, every
    direct conversation; returns how many conversations were written. Raises KeyError for an
    unknown room."""
    if room is not None:
        r = store.room(room.lstrip("#").lower())
        if r is None:
            raise KeyError(room)
        rooms = [r]
    else:
        rooms = store.rooms()
    now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    out.write("{" + f'"format": "{FORMAT}", "exported": {json.dumps(iso(now))},\n"rooms": [')
    for i, r in enumerate(rooms):
        head = json.dumps(room_header(store, r), ensure_ascii=False)[:-1]  # open the object
        out.write(("," if i else "") + "\n  " + head + ", ")
        _write_messages(out, store, room_target(r.name))
    out.write('],\n"direct": [')
    dms = store.dm_targets() if direct else []
    for i, target in enumerate(dms):
        out.write(("," if i else "") + "\n  " + '{"members": ' + json.dumps(target.split("\n")) + ", ")
        _write_messages(out, store, target)
    out.write("]}\n")
    return len(rooms) + len(dms)
