"""``gk chat rooms|history``: the chat's rooms, and a room's or a conversation's history, read
from ``DATA_DIR/chat.sqlite3`` (safe beside a running ``gk serve``: WAL readers never block it)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from gk import clikit


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="chat_cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS)
    sub.add_parser("rooms", parents=[common], help="rooms with their members, message counts and topics")
    h = sub.add_parser("history", parents=[common], help="the latest messages of a room or a direct conversation")
    h.add_argument("target", help="a room (#general or general) or two users (alice,bob) for their direct messages")
    h.add_argument("--limit", type=int, default=50, help="messages to show (default 50, at most 1000)")


def handle(args: argparse.Namespace) -> int:
    from gk.chat.store import ChatStore, dm_target, room_target

    path = Path(args.data_dir) / "chat.sqlite3"
    if not path.exists():
        print(f"no chat yet ({path} does not exist)")
        return 1
    store = ChatStore(path)
    try:
        if args.chat_cmd == "rooms":
            for r in store.rooms():
                kind = "private" if r.private else "public"
                members = len(store.members(r.id))
                print(
                    f"#{r.name}\t{kind}\t{members} member(s)\t{store.count(room_target(r.name))} message(s)\t{r.topic}"
                )
            return 0
        target = args.target
        if "," in target:
            a, _, b = target.partition(",")
            target = dm_target(a.strip().lower(), b.strip().lower())
        else:
            name = target.lstrip("#").lower()
            if store.room(name) is None:
                return clikit.fail(f"no room named #{name}; `gk chat rooms` lists them")
            target = room_target(name)
        for m in store.latest(target, max(1, min(args.limit, 1000))):
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(m.time / 1000))
            edited = " (edited)" if m.edited else ""
            print(f"{when} <{m.sender}> {m.text}{edited}")
        return 0
    finally:
        store.close()
