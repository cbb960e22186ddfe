"""The web chat's live timeline: one WebSocket per open chat page, at ``/chat/ws?to=<conversation>``,
spoken by htmx's ``ws`` extension: the server sends HTML fragments that htmx swaps out of band
(new messages appended to ``#timeline``, a changed message replaced by its id, the room list's
unread counts, the typing line); the client sends small JSON objects (its form values):
``{"kind": "resume", "after": "<msgid>", "first": "<msgid>", "since": "<ms>"}`` when the
socket opens, ``{"kind": "typing"}`` (passed on at most every ``TYPING_EVERY`` seconds).

Who: the web session's cookie (the socket is a GET under the same cookie as the page, a USER
route; the web listener refused a foreign Origin with 403 before the upgrade,
``gk.web.service``). A visitor is turned away by the route's policy (the socket closes with no
code); a conversation the user may not read, or leaving it: close code 1008. htmx retries
neither; it reconnects after 1006 (a dropped connection) and 1012 (the server stopping).

No gap, no duplicate. The page shows the newest messages and holds the id of the last one
(``#chat-last``, replaced by every batch sent here). On open, and again after a reload or a
dropped connection, the client sends ``resume`` with that id, and the server sends every
message after it. The subscription to the core starts before that read, and a posted message
is only a wake-up: each one makes the server read the conversation after the last message it
sent (one indexed query), so messages go out in the store's order, each once, whatever order
their events arrive in. Edits, deletions and reactions replace the message's element (idempotent);
those made while the page was away (after ``since``, among ``first``..``after``) are redrawn on
resume. A page more than ``MAX_REPLAY`` messages behind, or whose last message is gone, gets
the newest messages in place of its timeline (its scrollback reaches the ones between).
Messages shown move the read marker, written at most every ``MARK_EVERY`` seconds.

Cost: the web handler's greenlet and the frame reader's greenlet and queue per connection
(chat events wait on that same queue); nothing is cached. Measured by ``bench/webchat_rss.py``
(docs/performance.md). A client too slow to drain its queue (``MAX_QUEUE`` events) is closed
with 1013 and resumes from its last message when htmx reconnects.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import bottle
import gevent
import gevent.queue
from geventwebsocket.websocket import Header

from gk.chat.core import (
    ChatError,
    ChatService,
    Event,
    Invited,
    Joined,
    MessageEdited,
    MessagePosted,
    MessageRedacted,
    Parted,
    Reacted,
    ReadMarker,
    RoomAccessChanged,
    TopicChanged,
    Typing,
)
from gk.chat.irc.websocket import CLOSE_NORMAL, OP_TEXT, WebSocketTransport
from gk.chat.store import StoreError, now_ms
from gk.web import chat as webchat
from gk.web.app import Web

log = logging.getLogger("gk.web.chat")

CLOSE_POLICY = 1008  # not signed in, or not allowed to read this conversation
CLOSE_RESTART = 1012  # the server is stopping (or the socket ended): htmx reconnects
CLOSE_TRY_AGAIN = 1013  # too slow to drain: reconnect and resume
MAX_QUEUE = 1000
BATCH = 200  # messages one WebSocket message carries
MAX_REPLAY = 500  # messages a resume sends after the page's last; further behind, it jumps to the newest
MARK_EVERY = 1.0  # seconds between two read-marker writes of one page
TYPING_EVERY = 2.0  # seconds between two typing notices of one page passed on


class LiveSocket(WebSocketTransport):
    """The IRC WebSocket's frame reader (bounded message size, pings answered), sending one
    text message per call instead of one per line."""

    def __init__(self, ws: Any):
        super().__init__(ws, binary=False)

    @property
    def inbox(self) -> gevent.queue.Queue[Any]:
        """The queue the frame reader puts client messages on (b'' at the end): the live loop
        waits on it for chat events too, so no second greenlet or queue is needed."""
        return self._lines

    def send_text(self, text: str) -> None:
        data = text.encode("utf-8")
        self._write(Header.encode_header(True, OP_TEXT, b"", len(data), 0) + data)

    def close_with(self, code: int, reason: str = "") -> None:
        self._close(code, reason)

    def _close(self, code: int, reason: str = "") -> None:
        # a normal end seen from here is the server stopping (a client's own close needs no
        # answer it would read): 1012, so htmx reconnects and resumes, where 1000 would stop it
        super()._close(CLOSE_RESTART if code == CLOSE_NORMAL else code, reason)


class Live:
    def __init__(self, web: Web, chat: ChatService, account: str, to: str, target: str, sock: LiveSocket):
        self.web = web
        self.chat = chat
        self.account = account
        self.to = to
        self.target = target
        self.sock = sock
        self.queue = sock.inbox  # client messages (bytes) and chat events, in arrival order
        self.last: str | None = None  # msgid of the last message sent; None until the client resumed
        self.unread_from: int | None = None  # read-marker time waiting to be written
        self.marker: gevent.Greenlet[Any, None] | None = None
        self.typed = 0.0  # monotonic time of the last typing notice passed on

    def on_event(self, ev: Event) -> None:  # a chat subscriber: only queue
        if self.queue.qsize() >= MAX_QUEUE:
            self.sock.close_with(CLOSE_TRY_AGAIN, "too slow")
            return
        self.queue.put(ev)

    def run(self) -> None:
        self.chat.subscribe(self.on_event, self.account)
        try:
            while not self.sock.closed:
                item = self.queue.get()
                if isinstance(item, bytes):
                    if not item:
                        return
                    self.on_client(item)
                else:
                    self.on_chat(item)
        except OSError:
            return
        finally:
            self.chat.unsubscribe(self.on_event, self.account)
            if self.marker is not None:
                self.marker.kill(block=False)
                self.write_marker()

    # -- from the browser ---------------------------------------------------------------------
    def on_client(self, data: bytes) -> None:
        try:
            msg = json.loads(data)
        except (ValueError, RecursionError):  # RecursionError: nested too deep
            return
        if not isinstance(msg, dict):
            return
        kind = msg.get("kind")
        if kind == "resume":
            after = msg.get("after")
            self.last = after if isinstance(after, str) and after else ""
            now = now_ms()
            first, since = msg.get("first"), msg.get("since")
            if self.last and isinstance(first, str) and first and isinstance(since, str) and since.isdigit():
                self.redraw(first, self.last, int(since))
            self.flush()
            # the page learns that it is live and from when (its next resume redraws what
            # changed after that): tests and styles can tell
            self.sock.send_text(
                f'<span id="live-state" hx-swap-oob="true" data-live="{now}"></span>'
                f'<input type="hidden" id="chat-since" name="since" value="{now}" hx-swap-oob="true">'
            )
        elif kind == "typing":
            when = time.monotonic()
            if when - self.typed < TYPING_EVERY:  # the page throttles; a hostile client is held too
                return
            self.typed = when
            try:
                self.chat.typing(self.account, self.to, "active")
            except ChatError:
                pass

    # -- from the chat ------------------------------------------------------------------------
    def on_chat(self, ev: Event) -> None:
        mine = getattr(ev, "target", None) == self.target
        if isinstance(ev, MessagePosted):
            if ev.message.target == self.target:
                self.flush()
            else:
                self.send_rooms()
        elif isinstance(ev, MessageEdited):
            if ev.message.target == self.target:
                self.send_message(ev.message.msgid)
        elif isinstance(ev, (MessageRedacted, Reacted)) and mine:
            self.send_message(ev.msgid)
        elif isinstance(ev, Typing) and mine and ev.account != self.account:
            self.sock.send_text(self.web.render("chat/typing.html", who=ev.account, state=ev.state))
        elif isinstance(ev, ReadMarker) and ev.target != self.target:
            self.send_rooms()
        elif isinstance(ev, TopicChanged) and "#" + ev.room == self.target:
            self.sock.send_text(self.web.render("chat/topic.html", topic=ev.topic, oob=True))
        elif isinstance(ev, (Joined, Parted, Invited, RoomAccessChanged)):
            if isinstance(ev, Parted) and ev.account == self.account and "#" + ev.room == self.target:
                self.sock.close_with(CLOSE_POLICY, "left the room")
                return
            self.send_rooms()

    def flush(self) -> None:
        """Send every message after the last one sent (nothing before the client resumed)."""
        if self.last is None:
            return
        try:
            self.chat.resolve(self.account, self.to)
        except ChatError:  # no longer a member (parted, removed)
            self.sock.close_with(CLOSE_POLICY, "not a member")
            return
        try:
            if self.last:
                msgs = self.chat.history(self.account, self.to, "after", MAX_REPLAY + 1, self.last)
            else:
                msgs = self.chat.history(self.account, self.to, "latest", BATCH)
        except ChatError:  # the client's last message is gone (retention) or not from here
            self.jump_to_latest()
            return
        if len(msgs) > MAX_REPLAY:
            self.jump_to_latest()
            return
        for i in range(0, len(msgs), BATCH):
            batch = msgs[i : i + BATCH]
            self.last = batch[-1].msgid
            vs = webchat.views(self.web, self.chat, self.account, batch)
            self.sock.send_text(self.web.render("chat/live.html", messages=vs, last=self.last, **self._common()))
            self.mark_read(batch[-1].time)

    def jump_to_latest(self) -> None:
        """The page is too far behind (away for a long time in a busy room): it is given the
        newest messages in place of its timeline; its scrollback reaches the ones between."""
        msgs = self.chat.history(self.account, self.to, "latest", webchat.PAGE)
        if not msgs:
            return
        self.last = msgs[-1].msgid
        vs = webchat.views(self.web, self.chat, self.account, msgs)
        self.sock.send_text(
            self.web.render("chat/timeline.html", messages=vs, more=True, last=self.last, oob=True, **self._common())
        )
        self.mark_read(msgs[-1].time)

    def mark_read(self, t: int) -> None:
        """The page showed messages up to ``t``: the read marker moves there, written at most
        once per ``MARK_EVERY`` seconds (a busy room read by many pages is not a write per
        message per page)."""
        self.unread_from = max(self.unread_from or 0, t)
        if self.marker is None:
            self.marker = gevent.spawn_later(MARK_EVERY, self.write_marker)

    def write_marker(self) -> None:
        self.marker = None
        t, self.unread_from = self.unread_from, None
        if t:
            try:
                self.chat.mark_read(self.account, self.to, t, origin=self)
            except ChatError:
                pass

    def redraw(self, first: str, last: str, since: int) -> None:
        """The messages the page shows (``first`` to ``last``) that were edited, deleted or
        reacted to while it was away (after ``since``): each replaced by its id."""
        try:
            changed = self.chat.store.changed_since(self.target, first, last, since)
        except StoreError:  # an id from elsewhere: nothing of this conversation to redraw
            return
        if changed:
            vs = webchat.views(self.web, self.chat, self.account, changed)
            self.sock.send_text(
                "".join(self.web.render("chat/message_one.html", v=v, oob=True, **self._common()) for v in vs)
            )

    def send_message(self, msgid: str) -> None:
        m = self.chat.store.message(msgid)
        if m is None or m.target != self.target:
            return
        v = webchat.views(self.web, self.chat, self.account, [m])[0]
        self.sock.send_text(self.web.render("chat/message_one.html", v=v, oob=True, **self._common()))

    def send_rooms(self) -> None:
        rooms, dms = webchat.conversations(self.chat, self.account)
        self.sock.send_text(self.web.render("chat/convs.html", rooms=rooms, dms=dms, to=self.to, oob=True))

    def _common(self) -> dict[str, Any]:
        return {"account": self.account, "reactions": webchat.REACTIONS, "to": self.to}


def live(web: Web) -> object:
    """The ``/chat/ws`` route (its policy lets the request through; it checks the session here)."""
    ws = bottle.request.environ.get("wsgi.websocket")
    if ws is None:
        raise bottle.HTTPError(400, "WebSocket only")
    chat = web.ctx.services.maybe(ChatService)
    sock = LiveSocket(ws)
    try:
        user = web.user()
        to = (bottle.request.query.getunicode("to", default="") or "").strip()
        if chat is None or user is None or not to:
            sock.close_with(CLOSE_POLICY, "sign in")
            return ""
        account = webchat.chat_name(web, user)
        if account is None:
            sock.close_with(CLOSE_POLICY, "shared chat name")
            return ""
        webchat.connected(chat, account)
        try:
            target = chat.resolve(account, to)
        except ChatError:
            sock.close_with(CLOSE_POLICY, "not allowed")
            return ""
        Live(web, chat, account, to, target, sock).run()
    finally:
        sock.close()
    return ""
