"""``gk chat rooms|history|export``: the chat's rooms, a room's or a conversation's history as
readable lines, and the whole chat (or one room) as JSON for backups, read from
``DATA_DIR/chat.sqlite3`` (safe beside a running ``gk serve``: WAL readers never block it)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from gk import clikit

if TYPE_CHECKING:
    from gk.chat.store import ChatStore


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="chat_cmd", required=True)
    common = clikit.data_dir_option()
    sub.add_parser("rooms", parents=[common], help="rooms with their members, message counts and topics")
    h = sub.add_parser("history", parents=[common], help="the latest messages of a room or a direct conversation")
    h.add_argument("target", help="a room (#general or general) or two users (alice,bob) for their direct messages")
    h.add_argument("--limit", type=int, default=50, help="messages to show (default 50, at most 1000)")
    e = sub.add_parser("export", parents=[common], help="rooms and messages as JSON (every room, or one), for backups")
    e.add_argument("room", nargs="?", help="only this room (default: every room and direct conversation)")
    e.add_argument("-o", "--output", type=Path, help="write to this file (mode 0600) instead of standard output")
    e.add_argument("--no-direct", action="store_true", help="leave direct conversations out")


def _when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))


def handle(args: argparse.Namespace) -> int:
    from gk.chat.store import ChatStore, dm_target, room_target

    path = Path(args.data_dir) / "chat.sqlite3"
    if not path.exists():
        return clikit.fail(f"no chat yet ({path} does not exist: `gk serve` creates it)")
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
        if args.chat_cmd == "export":
            return _export(args, store)
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
            extra = ""
            if m.reply_to:
                parent = store.message(m.reply_to)
                if parent is not None and not parent.redacted:
                    extra += f" (in reply to <{parent.sender}> {parent.text[:40]})"
            if m.edited:
                extra += " (edited)"
            reactions = store.reactions(m.msgid)
            if reactions:
                extra += " [" + " ".join(f"{r}:{a}" for a, r in reactions) + "]"
            if m.text.startswith("\x01ACTION ") and m.text.endswith("\x01"):  # IRC's /me
                text = f"* {m.sender} {m.text[8:-1]}"
            else:
                text = f"<{m.sender}> {m.text}"
            print(f"{_when(m.time)} {text}{extra}")
        return 0
    finally:
        store.close()


def _export(args: argparse.Namespace, store: ChatStore) -> int:
    from gk.chat import export

    out_path: Path | None = args.output
    if out_path is None:
        try:
            export.write(sys.stdout, store, args.room, direct=not args.no_direct and args.room is None)
        except KeyError:
            return clikit.fail(f"no room named #{args.room.lstrip('#').lower()}; `gk chat rooms` lists them")
        return 0
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            n = export.write(fh, store, args.room, direct=not args.no_direct and args.room is None)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out_path)
    except KeyError:
        return clikit.fail(f"no room named #{args.room.lstrip('#').lower()}; `gk chat rooms` lists them")
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    print(f"exported {n} conversation(s) to {out_path}", file=sys.stderr)
    return 0
