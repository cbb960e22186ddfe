"""``ChatService``: the chat's public face. Protocols (IRC now; the web chat and IRC over
WebSocket next) call its plain methods and subscribe to its typed events; none of them touches
the store or another protocol.

Rules kept here, once for every protocol: who may see and post where (public rooms are open
to every user of the box, private ones by invitation; a direct message needs an existing
account), which accounts an event goes to (``audience``), room names, the default rooms.

A private room does not exist for whoever is neither in it nor invited to it: every refusal
about it is ``no_such_room`` with the very text a missing room gets (``visible_room``,
``_room_for``, ``_resolve``), so no protocol can tell the two apart by its answer. The one
exception is joining: a free name is created by a join, so refusing one says that the name is
taken (``invite_only``); nothing more about the room (topic, members, history) is given.

Fan-out: ``subscribe(callback, account)`` registers a callback for the events whose audience
holds ``account`` (``account=None``: every event, for bridges and digests). Callbacks run on
the poster's greenlet, so they must only queue (an IRC session puts lines on its send queue);
an exception in one is logged and never reaches the poster or the other subscribers.

A new message that finds the group commit (nearly) idle is published twice. First, as its
write is queued, to the ``early`` subscribers only, as ``MessagePosted(durable=False)``: IRC
connections, which render it from the event alone, so the room's other members read it while
its commit is in flight instead of after it (the commit's fsync and the hand-offs to and from
the I/O pool were most of the fan-out's p99 at a steady rate in bench/chat). Then, once it is on
disk, to every subscriber as ``MessagePosted(durable=True, early=True)``: the sender's echo (the
acknowledgement), the web chat (which reads history), files, digests. When commits are
already queued (a burst), a message is published once, after its commit: the batch's messages
then go out together, in one write per connection, where early ones cost a write each (bursts
ran at half the rate). What is acknowledged is on disk; a kill -9 in the millisecond between
can lose a line other members saw and its sender never had confirmed, as with Ergo or any IRC
server that keeps history (they write it after fan-out).
Membership of every room is cached in memory (a set of account names per room: a few KB for a
family or a team) so fan-out never reads the database.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent.event

from gk.chat.store import (
    ChatStore,
    Message,
    Room,
    StoreError,
    dm_target,
    new_msgid,
    now_ms,
    open_store,
    room_target,
)

log = logging.getLogger("gk.chat")

ROOM_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,49}$")
MAX_TEXT = 16_000  # characters of one message (IRC lines are far shorter; the web chat is not)


class ChatError(ValueError):
    """A refused chat operation. ``code`` names the reason for protocols to map to their own
    replies: no_such_room, no_such_user, not_member, invite_only, bad_name, no_such_message,
    not_allowed, too_long."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


# -- events -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    audience: frozenset[str]  # accounts that may see it
    # the connection that caused it (a protocol session), so it can tell its own echo apart
    origin: Any = field(default=None, compare=False, kw_only=True)
    # the id and time of the event as recorded for history (IRC draft/event-playback), for the
    # events that are: JOIN, PART, TOPIC, MODE, reactions and client tags, redactions
    event_id: str | None = field(default=None, compare=False, kw_only=True)
    event_time: int | None = field(default=None, compare=False, kw_only=True)


@dataclass(frozen=True)
class MessagePosted(Event):
    message: Message
    client_tags: dict[str, str] = field(default_factory=dict)  # e.g. +draft/reply passed through
    # protocol renderings shared by the subscribers that would render it alike (one IRC line
    # per distinct set of tag capabilities, not one per connection)
    rendered: dict[Any, bytes] = field(default_factory=dict, compare=False, repr=False)
    # False: published before its commit, to early subscribers only (its ``message.seq`` is 0)
    durable: bool = field(default=True, compare=False, kw_only=True)
    # the early subscribers were handed it before its commit (this event, or an earlier one)
    early: bool = field(default=False, compare=False, kw_only=True)


@dataclass(frozen=True)
class MessageEdited(Event):
    message: Message  # with the new text
    time: int


@dataclass(frozen=True)
class MessageRedacted(Event):
    msgid: str
    target: str
    by: str
    time: int


@dataclass(frozen=True)
class Reacted(Event):
    msgid: str
    target: str
    account: str
    reaction: str
    added: bool
    time: int


@dataclass(frozen=True)
class Joined(Event):
    room: str
    account: str


@dataclass(frozen=True)
class Parted(Event):
    room: str
    account: str
    reason: str


@dataclass(frozen=True)
class Invited(Event):
    room: str
    account: str
    by: str


@dataclass(frozen=True)
class TopicChanged(Event):
    room: str
    topic: str
    by: str
    time: int


@dataclass(frozen=True)
class RoomAccessChanged(Event):
    room: str
    private: bool
    by: str


@dataclass(frozen=True)
class Typing(Event):
    target: str  # '#room' or the DM key
    account: str
    state: str  # active, paused, done


@dataclass(frozen=True)
class ReadMarker(Event):
    account: str
    target: str
    time: int


@dataclass(frozen=True)
class TagMessage(Event):
    """Client-only tags sent to a target (IRC TAGMSG) that no other event covers."""

    target: str
    account: str
    client_tags: dict[str, str]


Subscriber = Callable[[Event], None]


class ChatService:
    name = "chat"

    def __init__(
        self,
        store: ChatStore,
        default_rooms: list[str] | None = None,
        user_exists: Callable[[str], bool] | None = None,
    ):
        self.store = store
        # chat account names are the box's user names (mail local parts); None = anyone (tests)
        self._user_exists = user_exists
        self.default_rooms = [r.lower() for r in (default_rooms or [])]
        self._members: dict[str, set[str]] = store.all_members()
        # rooms by lower-case name, read once: a post never queries the database for its room.
        # Dropped (``_forget``) whenever this service changes a room; nothing else writes them
        self._rooms: dict[str, Room] = {}
        self._subs: dict[str | None, list[Subscriber]] = {}
        self._early: dict[str, list[Subscriber]] = {}  # also told of messages before their commit
        # msgids published early whose commit is in flight: a client that got one may at once
        # react to it, redact it or page history from it; those wait for the commit
        self._pending: dict[str, gevent.event.Event] = {}
        for name in self.default_rooms:
            if store.room(name) is None:
                store.create_room(name)

    @classmethod
    def open(
        cls, data_dir: Path, default_rooms: list[str] | None = None, user_exists: Callable[[str], bool] | None = None
    ) -> ChatService:
        return cls(open_store(data_dir), default_rooms, user_exists)

    def stop(self, grace: float = 0) -> None:
        self.store.close()

    # -- subscribers --------------------------------------------------------------------------
    def subscribe(self, callback: Subscriber, account: str | None = None, early: bool = False) -> None:
        """``early``: ``callback`` also gets each new message before it is on disk
        (``MessagePosted(durable=False)``, module docstring); it must then not read the store
        for it, and gets it again when durable (for its own echo)."""
        self._subs.setdefault(account, []).append(callback)
        if early and account is not None:
            self._early.setdefault(account, []).append(callback)

    def unsubscribe(self, callback: Subscriber, account: str | None = None) -> None:
        subs = self._subs.get(account)
        if subs and callback in subs:
            subs.remove(callback)
            if not subs:
                del self._subs[account]
        if account is not None and callback in (early := self._early.get(account, [])):
            early.remove(callback)
            if not early:
                del self._early[account]

    def publish(self, event: Event) -> None:
        targets: list[Subscriber] = list(self._subs.get(None, ()))
        for account in event.audience:
            targets.extend(self._subs.get(account, ()))
        self._call(targets, event)

    def _publish_early(self, event: MessagePosted) -> None:
        targets: list[Subscriber] = []
        early = self._early
        for account in event.audience:
            subs = early.get(account)
            if subs:
                targets.extend(subs)
        self._call(targets, event)

    @staticmethod
    def _call(targets: list[Subscriber], event: Event) -> None:
        for cb in targets:
            try:
                cb(event)
            except Exception:
                log.exception("chat subscriber %r failed on %s", cb, type(event).__name__)

    # -- accounts -----------------------------------------------------------------------------
    def user_exists(self, account: str) -> bool:
        return True if self._user_exists is None else self._user_exists(account)

    def connected(self, account: str) -> None:
        """An account starts using the chat (a login): the first time, it joins the default rooms."""
        if self.store.first_seen(account):
            for name in self.default_rooms:
                try:
                    self.join(name, account)
                except ChatError:
                    log.warning("could not join %s to default room %s", account, name)

    # -- rooms --------------------------------------------------------------------------------
    def _room(self, name: str) -> Room:
        room = self.room(name)
        if room is None:
            raise ChatError("no_such_room", f"no room named {name}")
        return room

    def room(self, name: str) -> Room | None:
        key = name.lower()
        room = self._rooms.get(key)
        if room is None:
            room = self.store.room(key)
            if room is not None:
                self._rooms[key] = room
        return room

    def visible_room(self, name: str, account: str) -> Room | None:
        """The room named ``name`` if ``account`` may know it exists: a public one, or a private
        one it is in or invited to (the ones it could join); None otherwise, as for a missing one."""
        room = self.room(name)
        if room is None or not room.private or account in self._members.get(room.name.lower(), ()):
            return room
        return room if self.store.is_invited(room.id, account) else None

    def _room_for(self, name: str, account: str) -> Room:
        """``visible_room`` or no_such_room, worded as for a room that does not exist."""
        room = self.visible_room(name, account)
        if room is None:
            raise ChatError("no_such_room", f"no room named {name}")
        return room

    def _forget(self, name: str) -> None:
        self._rooms.pop(name.lower(), None)

    def members(self, room: str) -> set[str]:
        return set(self._members.get(room.lower(), ()))

    def is_member(self, room: str, account: str) -> bool:
        return account in self._members.get(room.lower(), ())

    def rooms(self, account: str | None = None) -> list[Room]:
        """Rooms ``account`` may see (public ones and private ones it belongs to); all if None."""
        rooms = self.store.rooms()
        if account is None:
            return rooms
        return [r for r in rooms if not r.private or account in self._members.get(r.name.lower(), ())]

    def rooms_of(self, account: str) -> list[Room]:
        return self.store.rooms_of(account)

    def create_room(self, name: str, creator: str, private: bool = False) -> Room:
        name = name.lower()
        if not ROOM_NAME_RE.match(name):
            raise ChatError("bad_name", "room names are 1-50 of a-z 0-9 _ . - (starting with a letter or digit)")
        room = self.store.create_room(name, creator, private)
        if creator:  # the creator is the first member (a private room would lock them out)
            self.store.join_logged(room.id, creator, room_target(name))
            self._members.setdefault(name, set()).add(creator)
        return room

    def join(self, name: str, account: str, create: bool = True, origin: Any = None) -> tuple[Room, bool]:
        """Join a room (creating a public one if it does not exist); (room, newly joined)."""
        name = name.lower()
        room = self.room(name)
        if room is None:
            if not create:
                raise ChatError("no_such_room", f"no room named {name}")
            if not ROOM_NAME_RE.match(name):
                raise ChatError("bad_name", "room names are 1-50 of a-z 0-9 _ . - (starting with a letter or digit)")
            room = self.store.create_room(name, account)  # public; the join below makes it a member
        if room.private and account not in self._members.get(name, ()) and not self.store.is_invited(room.id, account):
            raise ChatError("invite_only", f"#{name} is private: ask a member to invite you")
        ev = self.store.join_logged(room.id, account, room_target(name))
        self._members.setdefault(name, set()).add(account)
        if ev is not None:
            audience = frozenset(self._members[name])
            self.publish(Joined(audience, name, account, origin=origin, event_id=ev.msgid, event_time=ev.time))
        return room, ev is not None

    def part(self, name: str, account: str, reason: str = "") -> None:
        name = name.lower()
        room = self._room_for(name, account)
        if account not in self._members.get(name, ()):
            raise ChatError("not_member", f"you are not in #{name}")
        audience = frozenset(self._members[name])
        ev = self.store.part_logged(room.id, account, room_target(name), reason)
        self._members[name].discard(account)
        self.publish(
            Parted(
                audience, name, account, reason, event_id=ev.msgid if ev else None, event_time=ev.time if ev else None
            )
        )

    def invite(self, name: str, account: str, by: str) -> None:
        name = name.lower()
        room = self._room_for(name, by)
        if by not in self._members.get(name, ()):
            raise ChatError("not_member", f"you are not in #{name}")
        if not self.user_exists(account):
            raise ChatError("no_such_user", f"no user {account}")
        self.store.invite(room.id, account, by)
        self.publish(Invited(frozenset(self._members[name] | {account}), name, account, by))

    def set_topic(self, name: str, topic: str, by: str) -> Room:
        name = name.lower()
        room = self._room_for(name, by)
        if by not in self._members.get(name, ()):
            raise ChatError("not_member", f"you are not in #{name}")
        return self._store_topic(room, name, topic, by, frozenset(self._members[name]))

    def _store_topic(self, room: Room, name: str, topic: str, by: str, audience: frozenset[str]) -> Room:
        """Store a room's new topic (390 characters at most) and tell ``audience``."""
        ev = self.store.set_topic(room.id, topic[:390], by, room_target(name))
        self._forget(name)
        room = self._room(name)
        self.publish(
            TopicChanged(
                audience,
                name,
                room.topic,
                by,
                room.topic_time,
                event_id=ev.msgid if ev else None,
                event_time=ev.time if ev else None,
            )
        )
        return room

    def set_private(self, name: str, private: bool, by: str, origin: Any = None) -> Room:
        """Make a room private (joined by invitation only) or public; any member may."""
        name = name.lower()
        room = self._room_for(name, by)
        if by not in self._members.get(name, ()):
            raise ChatError("not_member", f"you are not in #{name}")
        if room.private != private:
            ev = self.store.set_private(room.id, private, by, room_target(name))
            self._forget(name)
            self.publish(
                RoomAccessChanged(
                    frozenset(self._members[name]),
                    name,
                    private,
                    by,
                    origin=origin,
                    event_id=ev.msgid if ev else None,
                    event_time=ev.time if ev else None,
                )
            )
        return self._room(name)

    # -- targets ------------------------------------------------------------------------------
    def audience(self, target: str) -> frozenset[str]:
        if target.startswith("#"):
            return frozenset(self._members.get(target[1:], ()))
        return frozenset(target.split("\n"))

    def resolve(self, account: str, to: str) -> str:
        """A stored target for ``account`` writing to ``to`` ('#room' or another account);
        raises ChatError when it may not write or read there."""
        return self._resolve(account, to)[0]

    def _resolve(self, account: str, to: str) -> tuple[str, Room | None]:
        """``resolve``, with the room read on the way (None for a direct conversation)."""
        if to.startswith("#"):
            name = to[1:].lower()
            room = self.visible_room(name, account)
            if room is None:  # a private room it may not see reads as a missing one
                raise ChatError("no_such_room", f"no room named {to}")
            if account not in self._members.get(name, ()):
                raise ChatError("not_member", f"you are not in {to}")
            return room_target(name), room
        if not self.user_exists(to):
            raise ChatError("no_such_user", f"no user {to}")
        return dm_target(account, to), None

    def peers(self, account: str) -> set[str]:
        """Accounts sharing a room with ``account`` (itself included when it is in one): who
        sees its presence change (IRC away-notify, setname). From the in-memory membership."""
        out: set[str] = set()
        for members in self._members.values():
            if account in members:
                out |= members
        return out

    def targets_of(self, account: str) -> list[str]:
        """Every stored target ``account`` may read (its rooms; DMs are matched by key)."""
        return [room_target(r) for r, m in self._members.items() if account in m]

    # -- messages -----------------------------------------------------------------------------
    def post(
        self,
        account: str,
        to: str,
        text: str,
        *,
        kind: str = "PRIVMSG",
        reply_to: str | None = None,
        client_tags: dict[str, str] | None = None,
        origin: Any = None,
    ) -> Message:
        """Store a message and fan it out; returns it once it is on disk."""
        if len(text) > MAX_TEXT:
            raise ChatError("too_long", f"messages are limited to {MAX_TEXT} characters")
        target, room = self._resolve(account, to)
        audience, tags = self.audience(target), dict(client_tags or {})
        sent: list[tuple[str, gevent.event.Event]] = []  # (msgid, set once on disk) if early

        def early(pending: Message) -> None:  # its write is queued: no other post comes between
            sent.append((pending.msgid, done := gevent.event.Event()))
            self._pending[pending.msgid] = done
            self._publish_early(MessagePosted(audience, pending, tags, origin=origin, durable=False, early=True))

        try:
            msg = self.store.add_message(
                account, target, text, room_id=room.id if room else None, kind=kind, reply_to=reply_to, queued=early
            )
        finally:
            for msgid, done in sent:
                self._pending.pop(msgid, None)
                done.set()
        self.publish(MessagePosted(audience, msg, tags, origin=origin, early=bool(sent)))
        return msg

    def relay(self, account: str, to: str, text: str, *, kind: str = "PRIVMSG", origin: Any = None) -> Message:
        """Send a line to the IRC connections of ``to`` without storing it: CTCP queries and
        their replies (``\x01VERSION\x01``, ``\x01PING 123\x01``), which clients send and
        answer by themselves; stored, they showed as garbage in the web chat's history, counted
        as unread and were mailed in digests. The sender's echo-message copy follows at once."""
        if len(text) > MAX_TEXT:
            raise ChatError("too_long", f"messages are limited to {MAX_TEXT} characters")
        target, _room = self._resolve(account, to)
        msg = Message(0, new_msgid(), now_ms(), account, target, kind, text)
        audience = self.audience(target)
        self._publish_early(MessagePosted(audience, msg, {}, origin=origin, durable=False, early=True))
        self._publish_early(MessagePosted(audience, msg, {}, origin=origin, early=True))  # the echo
        return msg

    def _durable(self, ref: str | int | None) -> None:
        """Wait until a message published early (``ref`` its msgid) is on disk."""
        if isinstance(ref, str) and (done := self._pending.get(ref)) is not None:
            done.wait()

    def _own_message(self, account: str, msgid: str) -> Message:
        self._durable(msgid)
        msg = self.store.message(msgid)
        if msg is None or msg.redacted or account not in self.audience(msg.target):
            raise ChatError("no_such_message", "no such message")
        if msg.sender != account:
            raise ChatError("not_allowed", "only the sender may change a message")
        return msg

    def edit(self, account: str, msgid: str, text: str) -> Message:
        self._own_message(account, msgid)
        t = self.store.edit(msgid, text)
        msg = self.store.message(msgid)
        assert msg is not None
        self.publish(MessageEdited(self.audience(msg.target), msg, t))
        return msg

    def redact(self, account: str, msgid: str, origin: Any = None) -> None:
        msg = self._own_message(account, msgid)
        ev = self.store.redact(msgid, account)
        self.publish(
            MessageRedacted(
                self.audience(msg.target),
                msgid,
                msg.target,
                account,
                ev.time,
                origin=origin,
                event_id=ev.msgid,
                event_time=ev.time,
            )
        )

    def react(self, account: str, msgid: str, reaction: str, add: bool = True, origin: Any = None) -> None:
        self._durable(msgid)
        msg = self.store.message(msgid)
        if msg is None or msg.redacted or account not in self.audience(msg.target):
            raise ChatError("no_such_message", "no such message")
        ev = self.store.react(msgid, account, reaction[:64], add)
        self.publish(
            Reacted(
                self.audience(msg.target),
                msgid,
                msg.target,
                account,
                reaction[:64],
                add,
                ev.time,
                origin=origin,
                event_id=ev.msgid,
                event_time=ev.time,
            )
        )

    def typing(self, account: str, to: str, state: str = "active", origin: Any = None) -> None:
        target = self.resolve(account, to)
        self.publish(Typing(self.audience(target), target, account, state, origin=origin))

    def tag_message(self, account: str, to: str, client_tags: dict[str, str], origin: Any = None) -> str:
        target, room = self._resolve(account, to)
        ev = self.store.add_event("TAGMSG", account, target, room.id if room else None, json.dumps(client_tags))
        self.publish(
            TagMessage(
                self.audience(target),
                target,
                account,
                client_tags,
                origin=origin,
                event_id=ev.msgid,
                event_time=ev.time,
            )
        )
        return target

    # -- read markers -------------------------------------------------------------------------
    def mark_read(self, account: str, to: str, t: int, origin: Any = None) -> int:
        target = self.resolve(account, to)
        stored = self.store.set_read_marker(account, target, t)
        self.publish(ReadMarker(frozenset({account}), account, target, stored, origin=origin))
        return stored

    def read_marker(self, account: str, to: str) -> int | None:
        return self.store.read_marker(account, self.resolve(account, to))

    # -- history and search -------------------------------------------------------------------
    def history(
        self,
        account: str,
        to: str,
        mode: str,
        limit: int,
        ref: str | int | None = None,
        ref2: str | int | None = None,
        events: bool = False,
    ) -> list[Message]:
        """mode: latest (ref optional: only newer), before, after, around, between (ref, ref2).
        References are msgids or times in ms. Oldest first. ``events``: JOIN, PART, TOPIC,
        MODE, TAGMSG and REDACT events merged in (``Message.kind`` names them)."""
        target = self.resolve(account, to)
        self._durable(ref)
        self._durable(ref2)
        s = self.store
        try:
            if mode == "latest":
                return s.latest(target, limit, ref, events)
            if ref is None:
                raise ChatError("bad_params", f"{mode} needs a reference")
            if mode == "before":
                return s.before(target, ref, limit, events)
            if mode == "after":
                return s.after(target, ref, limit, events)
            if mode == "around":
                return s.around(target, ref, limit, events)
            if mode == "between" and ref2 is not None:
                return s.between(target, ref, ref2, limit, events)
        except StoreError as exc:
            raise ChatError("no_such_message", str(exc)) from exc
        raise ChatError("bad_params", f"unknown history mode {mode}")

    def unread_counts(self, account: str) -> dict[str, int]:
        """Unread messages (from others, after the read marker) in each of ``account``'s rooms
        and direct conversations, by stored target."""
        return self.store.unread_counts(account, self.targets_of(account) + self.store.dm_targets_of(account))

    def conversations(self, account: str, start: int, end: int, limit: int) -> list[tuple[str, int]]:
        return self.store.targets(account, start, end, limit)

    def search(self, account: str, query: str, limit: int = 50) -> list[Message]:
        return self.store.search(query, self.targets_of(account) + self.store.dm_targets_of(account), limit)

    # -- administration (the admin page, the wizard, the CLI; callers check the admin) -------
    def enroll(self, accounts: list[str]) -> list[str]:
        """Make each account that never used the chat a member of the default rooms (new users
        of the box: run at start and by the periodic job); returns those enrolled now."""
        known = self.store.known_accounts()
        done = []
        for account in accounts:
            if account not in known:
                self.connected(account)
                done.append(account)
        return done

    def manage_room(self, name: str, by: str, *, topic: str | None = None, private: bool | None = None) -> Room:
        """An administrator changes a room's topic or access without being a member."""
        name = name.lower()
        room = self._room(name)
        audience = frozenset(self._members.get(name, ()))
        if topic is not None and topic[:390] != room.topic:
            room = self._store_topic(room, name, topic, by, audience)
        if private is not None and private != room.private:
            ev = self.store.set_private(room.id, private, by, room_target(name))
            self._forget(name)
            self.publish(
                RoomAccessChanged(
                    audience, name, private, by, event_id=ev.msgid if ev else None, event_time=ev.time if ev else None
                )
            )
        return self._room(name)

    def add_member(self, name: str, account: str) -> bool:
        """An administrator adds someone to a room (private or not); True if newly a member."""
        name = name.lower()
        room = self._room(name)
        if not self.user_exists(account):
            raise ChatError("no_such_user", f"no user {account}")
        ev = self.store.join_logged(room.id, account, room_target(name))
        self._members.setdefault(name, set()).add(account)
        if ev is not None:
            self.publish(Joined(frozenset(self._members[name]), name, account, event_id=ev.msgid, event_time=ev.time))
        return ev is not None

    def delete_room(self, name: str, by: str) -> None:
        """Remove a room and its history for good (export it first to keep it); its members
        see themselves leave it."""
        name = name.lower()
        room = self._room(name)
        if name in self.default_rooms:
            raise ChatError("not_allowed", f"#{name} is a default room ([chat] default_rooms): it would come back")
        members = sorted(self._members.get(name, ()))
        audience = frozenset(members)
        self.store.delete_room(room.id)
        self._forget(name)
        self._members.pop(name, None)
        for account in members:
            self.publish(Parted(audience, name, account, f"room deleted by {by}"))


__all__ = [
    "ChatService",
    "ChatError",
    "Event",
    "MessagePosted",
    "MessageEdited",
    "MessageRedacted",
    "Reacted",
    "Joined",
    "Parted",
    "Invited",
    "TopicChanged",
    "RoomAccessChanged",
    "Typing",
    "ReadMarker",
    "TagMessage",
]
