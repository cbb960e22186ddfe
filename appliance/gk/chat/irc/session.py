"""One IRC connection: registration (CAP 302, SASL PLAIN, NICK/USER), then commands, each in
its own ``cmd_<NAME>`` method; chat events from ``ChatService`` become IRC lines here.

Reading: a bounded line reader (``MAX_LINE`` bytes without a newline → 417 and the line is
skipped), a token bucket per connection (``chat.lines_per_second``, ``chat.line_burst``;
exhausted → ``ERROR :Excess flood`` and disconnect). Writing: events are buffered (never
written on the poster's greenlet); one hub callback per turn of the loop writes every buffered
connection without blocking (``IRCServer.mark_dirty``, ``try_flush``), and a connection's writer
greenlet takes over only when its socket would block; a client that lets its buffer fill
(``SENDQ`` lines) is disconnected instead of stalling the room.

Cost per idle connection: two greenlets, a TLS socket and a small dict of state.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
import socket
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import gevent
import gevent.event

from gk.chat import core
from gk.chat.core import ChatError
from gk.chat.files import filehost_url
from gk.chat.irc import numerics as N
from gk.chat.irc.nbio import nb_write
from gk.chat.irc.parser import MAX_LINE, Line, LineTooLong, ParseError, format_tags, message, parse
from gk.chat.store import Message, Room

if TYPE_CHECKING:
    from gk.chat.irc.service import IRCServer

log = logging.getLogger("gk.chat.irc")

SENDQ = 4096  # lines queued for one client before it is dropped as too slow
HISTORY_MAX = 1000

CAPS: dict[str, str] = {
    "sasl": "PLAIN",
    "server-time": "",
    "message-tags": "",
    "echo-message": "",
    "batch": "",
    "account-tag": "",
    "extended-join": "",
    "multi-prefix": "",
    "draft/chathistory": "",
    # CHATHISTORY replays JOIN, PART, TOPIC, MODE, TAGMSG (reactions, client tags) and REDACT
    # too, each with the msgid and time it was sent live with (QUIT, KICK and NICK never
    # happen: accounts are always present, members are managed in the web UI, nicks are fixed)
    "draft/event-playback": "",
    "draft/read-marker": "",
    "draft/message-redaction": "",
    "labeled-response": "",
    "invite-notify": "",
    # accounts never change during a connection (SASL before registration, no logout), so
    # account-notify is honoured by never having an ACCOUNT change to send; likewise chghost
    # (user and host are the account and the server's name, fixed) and cap-notify (the list
    # above never changes while the server runs)
    "account-notify": "",
    "chghost": "",
    "cap-notify": "",
    "away-notify": "",
    "setname": "",
    "userhost-in-names": "",
    "draft/multiline": "max-bytes=4096,max-lines=100",
}
MULTILINE_BYTES, MULTILINE_LINES = 4096, 100
MONITOR_MAX = 100  # accounts one connection may MONITOR (ISUPPORT MONITOR)

PRE_REGISTRATION = {"CAP", "AUTHENTICATE", "NICK", "USER", "PASS", "PING", "PONG", "QUIT"}


def irc_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_time(value: str) -> int:
    """``2019-01-04T14:33:26.123Z`` → ms since the epoch (ValueError if not a timestamp)."""
    v = value.strip()
    if v.endswith("Z"):
        v = v[:-1] + "+00:00"
    dt = datetime.fromisoformat(v)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


class Quit(Exception):
    """End the session (after sending ERROR with this text)."""


class Session:
    def __init__(self, server: IRCServer, sock: socket.socket, address: Any):
        self.server = server
        self.chat: core.ChatService = server.chat
        self.cfg = server.cfg
        self.sock = sock
        self.ip = address[0] if address else "?"
        self.host = server.hostname
        self.caps: set[str] = set()
        self._caps_key = self._tag_caps()  # what changes how a message line is written (CAP REQ)
        self._echo = False
        self.negotiating = False
        self.nick = "*"
        self.user_given = False
        self.realname = ""
        self.account: str | None = None
        self.registered = False
        self.closed = False
        self.away = ""  # AWAY message of this connection ('' = here)
        self.joined: set[str] = set()  # rooms this connection was shown joining
        self.monitoring: set[str] = set()  # accounts it watches (MONITOR, kept by the server)
        self._multiline: dict[str, _Multiline] = {}  # draft/multiline batches being received
        # labeled-response: lines this session's own greenlet sends while a labeled command runs
        self._capture: list[bytes] | None = None
        self._reader: Any = None
        # output: lines wait in ``_outbuf``; the server writes them at the end of the hub's turn
        # without blocking (``try_flush``), and what the socket does not take then is left to
        # this session's writer greenlet (``_writer``), which owns the buffer until it is empty
        self._outbuf: list[bytes] = []
        self._wake = gevent.event.Event()
        self._writer_owns = False  # the writer greenlet is sending or about to
        self._stuck = False  # the transport keeps unwritten bytes the writer must push
        self._eof = False  # no more output after the buffer: the writer ends
        self.tokens = float(self.cfg.line_burst)
        self.last = time.monotonic()
        self.register_by = self.last + self.cfg.registration_timeout  # (run sets it again)
        self._sasl: list[str] | None = None  # base64 chunks of an AUTHENTICATE in progress
        self._batch = 0

    # -- output -------------------------------------------------------------------------------
    @property
    def prefix(self) -> str:
        return f"{self.nick}!{self.nick}@{self.host}"

    def hostmask(self, account: str) -> str:
        return f"{account}!{account}@{self.host}"

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        if self._capture is not None and gevent.getcurrent() is self._reader:
            self._capture.append(data)
            return
        buf = self._outbuf
        if len(buf) >= SENDQ:
            log.info("irc: %s@%s dropped: send queue full", self.nick, self.ip)
            self.closed = True
            self._finish()
            self.abort()
            return
        buf.append(data)
        if len(buf) == 1 and not self._writer_owns:
            self.server.mark_dirty(self)

    def _finish(self) -> None:
        """No more output once the buffer is written: the writer sends the rest and ends."""
        self._eof = True
        self._wake.set()

    def try_flush(self) -> None:
        """Write the buffer now without blocking (the server calls it from a hub callback, once
        per turn of the loop for every session that got lines: no greenlet switch per
        recipient). What the socket does not take goes to the writer greenlet, first in line
        (a TLS write that would block must be retried with the same bytes first)."""
        if self._writer_owns or self._eof or not self._outbuf:
            return
        items, self._outbuf = self._outbuf, []
        try:
            nb = getattr(self.sock, "nb_sendall", None)
            if nb is not None:  # the WebSocket transport: frames and keeps what is left itself
                done = nb(items)
                if done is None:
                    self._outbuf[:0] = items
                elif not done:
                    self._stuck = True
                else:
                    return
            else:
                data = items[0] if len(items) == 1 else b"".join(items)
                n = nb_write(self.sock, data)
                if n is not None and n >= len(data):
                    return
                self._outbuf.insert(0, data[n or 0 :])
        except (OSError, ssl.SSLError):
            self.closed = True
            self._finish()
            return
        self._writer_owns = True
        self._wake.set()

    def reply(self, command: str, *params: str, tags: dict[str, str] | None = None) -> None:
        self.send(message(command, *params, source=self.server.name, tags=tags))

    def num(self, code: str, *params: str) -> None:
        self.reply(code, self.nick, *params)

    def _writer(self) -> None:
        """The slow path: writes what ``try_flush`` could not, blocking as long as it takes."""
        while True:
            if not self._outbuf and not self._stuck:
                self._writer_owns = False
                if self._eof:
                    return
                self._wake.clear()
                self._wake.wait()
                continue
            self._writer_owns = True
            data = b"".join(self._outbuf)
            self._outbuf = []
            self._stuck = False
            if not self._sendall(data):
                return

    def _sendall(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
            return True
        except (OSError, ssl.SSLError):
            self.closed = True
            return False

    def abort(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- input --------------------------------------------------------------------------------
    def _lines(self) -> Any:
        buf = b""
        skipping = False
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                if len(buf) > MAX_LINE:
                    if not skipping:
                        self.num(N.ERR_INPUTTOOLONG, "Input line was too long")
                    skipping = True
                    buf = b""
                if not self.registered:
                    # the registration deadline bounds each read: a client dripping a line a
                    # byte at a time (each byte a new silence timeout) never completes one to be
                    # checked against it, and held its connection for ever
                    left = self.register_by - time.monotonic()
                    if left <= 0:
                        yield None
                        continue
                    self.sock.settimeout(left)
                try:
                    data = self.sock.recv(16384)
                except TimeoutError:
                    yield None
                    continue
                except (OSError, ssl.SSLError):
                    return
                if not data:
                    return
                buf += data
                continue
            raw, buf = buf[:nl], buf[nl + 1 :]
            if skipping:
                skipping = False
                continue
            if len(raw) > MAX_LINE:
                self.num(N.ERR_INPUTTOOLONG, "Input line was too long")
                continue
            yield raw.rstrip(b"\r"), b"\n" in buf  # (line, another complete line is waiting)

    def _flooded(self) -> bool:
        now = time.monotonic()
        rate = self.cfg.lines_per_second
        self.tokens = min(float(self.cfg.line_burst), self.tokens + (now - self.last) * rate)
        self.last = now
        self.tokens -= 1
        return self.tokens < 0

    def run(self) -> None:
        writer = gevent.spawn(self._writer)
        self._reader = gevent.getcurrent()
        self.sock.settimeout(self.cfg.registration_timeout)
        self.register_by = time.monotonic() + self.cfg.registration_timeout
        pinged = False
        reason = "Closing link"
        try:
            run: list[bytes] = []  # pipelined messages, posted together (see _post_run)
            for item in self._lines():
                if item is None:  # timeout
                    if not self.registered:
                        raise Quit("Registration timed out")
                    if pinged:
                        raise Quit("Ping timeout")
                    self.send(message("PING", self.server.name))
                    pinged = True
                    continue
                pinged = False
                if not self.registered and time.monotonic() > self.register_by:
                    raise Quit("Registration timed out")  # a client trickling lines never to log in
                raw, more = item
                if raw.strip():
                    if self._flooded():
                        raise Quit("Excess flood")
                    if self.registered and _plain_post(raw):
                        run.append(raw)
                    else:
                        if run:
                            run = self._post_run(run)
                        self.handle(raw)
                if run and (not more or len(run) >= 100):
                    run = self._post_run(run)
                if self.closed:
                    break
        except Quit as q:
            reason = str(q)
        finally:
            self.send(message("ERROR", reason))
            self.closed = True
            self._finish()
            writer.join(timeout=5)
            self._unsubscribe()

    def _post_run(self, run: list[bytes]) -> list[bytes]:
        """Post messages a client pipelined, concurrently, so they share group commits.

        Each post stores its message in the order spawned (nothing yields before the store
        queues the write) and echoes after the commit, in that same order; a client pasting
        100 lines costs a few fsyncs, not 100. Returns a new empty run."""
        rest = [gevent.spawn(self.handle, raw) for raw in run[1:]]
        try:
            self.handle(run[0])  # here: its write is queued before the others start
        finally:
            if rest:
                gevent.joinall(rest, raise_error=True)
        return []

    def handle(self, raw: bytes) -> None:
        try:
            line = parse(raw)
        except LineTooLong:
            self.num(N.ERR_INPUTTOOLONG, "Input line was too long")
            return
        except ParseError as exc:
            log.debug("irc: malformed line from %s: %s", self.ip, exc)
            self.num(N.ERR_UNKNOWNCOMMAND, "*", f"Malformed line: {exc}")
            return
        ref = line.tags.get("batch")
        if ref is not None and ref in self._multiline:
            self._multiline_part(ref, line)
            return
        label = line.tags.get("label") if "labeled-response" in self.caps else None
        if label:
            self._capture = []
            try:
                self._dispatch(line)
            finally:
                lines, self._capture = self._capture, None
                self._labeled(label[:64], lines)
        else:
            self._dispatch(line)

    def _labeled(self, label: str, lines: list[bytes]) -> None:
        """The replies of a labeled command: none → ACK, one → tagged, more → one batch."""
        if not lines:
            self.reply("ACK", tags={"label": label})
        elif len(lines) == 1:
            self.send(_add_tags(lines[0], {"label": label}))
        else:
            self._batch += 1
            ref = f"L{self._batch}"
            self.reply("BATCH", "+" + ref, "labeled-response", tags={"label": label})
            for ln in lines:
                self.send(ln if _has_batch(ln) else _add_tags(ln, {"batch": ref}))
            self.send(message("BATCH", "-" + ref, source=self.server.name))

    def _dispatch(self, line: Line) -> None:
        cmd = line.command
        handler: Callable[[Line], None] | None = getattr(self, "cmd_" + cmd, None)
        if handler is None:
            self.num(N.ERR_UNKNOWNCOMMAND, cmd, "Unknown command")
            return
        if not self.registered and cmd not in PRE_REGISTRATION:
            self.num(N.ERR_NOTREGISTERED, "You have not registered")
            return
        try:
            handler(line)
        except NeedMore:
            self.num(N.ERR_NEEDMOREPARAMS, cmd, "Not enough parameters")

    # -- registration -------------------------------------------------------------------------
    def cmd_CAP(self, line: Line) -> None:
        sub = line.param(0).upper()
        if sub == "LS":
            if not self.registered:
                self.negotiating = True
            v302 = line.param(1).isdigit() and int(line.param(1)) >= 302
            items = [k + ("=" + v if v and v302 else "") for k, v in CAPS.items()]
            self.reply("CAP", self.nick, "LS", " ".join(items))
        elif sub == "LIST":
            self.reply("CAP", self.nick, "LIST", " ".join(sorted(self.caps)))
        elif sub == "REQ":
            if not self.registered:
                self.negotiating = True
            wanted = line.param(1).split()
            names = [w.lstrip("-") for w in wanted]
            if not wanted or any(n not in CAPS for n in names):
                self.reply("CAP", self.nick, "NAK", line.param(1))
                return
            for w in wanted:
                if w.startswith("-"):
                    self.caps.discard(w[1:])
                else:
                    self.caps.add(w)
            self._caps_key = self._tag_caps()
            self._echo = "echo-message" in self.caps
            self.reply("CAP", self.nick, "ACK", line.param(1))
        elif sub == "END":
            if not self.registered:
                self.negotiating = False
                self._try_register()
        else:
            self.num(N.ERR_INVALIDCAPCMD, sub or "*", "Invalid CAP command")

    def cmd_AUTHENTICATE(self, line: Line) -> None:
        arg = line.param(0)
        if not arg:
            raise NeedMore
        if self.account:
            self.num(N.ERR_SASLALREADY, "You have already authenticated using SASL")
            return
        if arg == "*":
            self._sasl = None
            self.num(N.ERR_SASLABORTED, "SASL authentication aborted")
            return
        if self._sasl is None:
            if arg.upper() != "PLAIN":
                self.num(N.RPL_SASLMECHS, "PLAIN", "are available SASL mechanisms")
                self.num(N.ERR_SASLFAIL, "SASL authentication failed")
                return
            self._sasl = []
            self.send(message("AUTHENTICATE", "+"))
            return
        if len(arg) > 400 or len(self._sasl) > 10:
            self._sasl = None
            self.num(N.ERR_SASLTOOLONG, "SASL message too long")
            return
        if arg != "+":
            self._sasl.append(arg)
        if len(arg) == 400:
            return  # more chunks follow
        data, self._sasl = "".join(self._sasl), None
        try:
            authz, authc, password = base64.b64decode(data, validate=True).decode("utf-8").split("\0")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            self.num(N.ERR_SASLFAIL, "SASL authentication failed: malformed PLAIN response")
            return
        account = self.server.login(authc, password, self.ip)
        if account is None or (authz and authz.lower() not in (authc.lower(), account)):
            self.num(N.ERR_SASLFAIL, "SASL authentication failed")
            return
        self.account = account
        self.num(N.RPL_LOGGEDIN, self.hostmask(account), account, f"You are now logged in as {account}")
        self.num(N.RPL_SASLSUCCESS, "SASL authentication successful")

    def cmd_PASS(self, line: Line) -> None:
        if self.registered:
            self.num(N.ERR_ALREADYREGISTERED, "You may not reregister")

    def cmd_NICK(self, line: Line) -> None:
        nick = line.param(0)
        if not nick:
            self.num(N.ERR_NONICKNAMEGIVEN, "No nickname given")
            return
        if not self.registered:
            if nick.startswith(("#", ":", "$")) or " " in nick or len(nick) > 64:
                self.num(N.ERR_ERRONEUSNICKNAME, nick, "Erroneous nickname")
                return
            self.nick = nick
            self._try_register()
            return
        if nick.lower() != self.nick.lower():
            self.num(N.ERR_ERRONEUSNICKNAME, nick, "Nicknames are fixed to your account name")

    def cmd_USER(self, line: Line) -> None:
        if self.registered:
            self.num(N.ERR_ALREADYREGISTERED, "You may not reregister")
            return
        if len(line.params) < 4:
            raise NeedMore
        self.user_given = True
        self.realname = line.params[3][:100]
        self._try_register()

    def _try_register(self) -> None:
        if self.registered or self.negotiating or self.nick == "*" or not self.user_given:
            return
        if not self.account:
            raise Quit("You must log in with SASL (PLAIN, your GK address and password or an app password)")
        # first use joins the default rooms (a write: it yields). Then, with no yield until the
        # last JOIN is queued, subscribe and send the welcome: no event is missed between the
        # welcome and the subscription, and none lands in the middle of the welcome
        self.chat.connected(self.account)
        old = self.nick
        self.nick = self.account
        self.server.attach(self)
        if old != self.nick:
            self.send(message("NICK", self.nick, source=f"{old}!{old}@{self.host}"))
        self.registered = True
        self.sock.settimeout(self.cfg.ping_interval)
        srv = self.server.name
        self.num(N.RPL_WELCOME, f"Welcome to the GK chat, {self.nick}")
        self.num(N.RPL_YOURHOST, f"Your host is {srv}, running GK")
        self.num(N.RPL_CREATED, "This server was started " + self.server.started)
        self.reply(N.RPL_MYINFO, self.nick, srv, "gk", "i", "int")
        tokens = [
            "CASEMAPPING=ascii",
            "CHANTYPES=#",
            "CHANMODES=,,,int",
            "PREFIX=(o)@",
            "NETWORK=GK",
            f"NICKLEN={64}",
            "CHANNELLEN=51",
            "TOPICLEN=390",
            f"CHATHISTORY={HISTORY_MAX}",
            "MSGREFTYPES=msgid,timestamp",
            "UTF8ONLY",
            f"MONITOR={MONITOR_MAX}",
        ]
        filehost = filehost_url(self.server.ctx)  # uploads: gk.web.chatfiles
        if filehost:  # the draft's name, and soju's, which gamja, senpai and Goguma look for
            tokens += [f"draft/FILEHOST={filehost}", f"soju.im/FILEHOST={filehost}"]
        for i in range(0, len(tokens), 12):  # at most 15 parameters a line (RFC 1459 2.3)
            self.num(N.RPL_ISUPPORT, *tokens[i : i + 12], "are supported by this server")
        self.num(N.ERR_NOMOTD, "MOTD File is missing")
        for room in self.chat.rooms_of(self.account):
            self._send_join(room.name, self.account)

    # -- event fan-out ------------------------------------------------------------------------
    def _unsubscribe(self) -> None:
        self.server.detach(self)

    def on_event(self, ev: core.Event) -> None:
        """Translate a chat event into lines for this client (queued, never written here)."""
        if self.closed or not self.registered:
            return
        mine = ev.origin is self
        if type(ev) is core.MessagePosted:  # the hot path: one per message and connection
            # others' messages as soon as they are queued for disk when they are published
            # then (early), else once on disk; the sender's own echo, its acknowledgement,
            # only once it is on disk
            if mine:
                if not ev.durable or not self._echo:
                    return
            elif ev.durable and ev.early:
                return
            m = ev.message
            # a room's line reads the same for every connection with the same capabilities
            # (no per-recipient key object); a DM's target is the other side, per connection
            key: Any = self._caps_key if m.target[0] == "#" else (self._target_name(m.target, m.sender), self._caps_key)
            line = ev.rendered.get(key)
            if line is None:
                line = ev.rendered[key] = self._privmsg(m, ev.client_tags)
            self.send(line)
        elif isinstance(ev, core.Joined):
            if ev.account == self.account:
                self._send_join(ev.room, ev.account, ev.event_id, ev.event_time)
            else:
                self.send(self._join_line(ev.room, ev.account, ev.event_id, ev.event_time))
        elif isinstance(ev, core.Parted):
            if ev.account == self.account:
                self.joined.discard(ev.room)
            tags = self._server_tags(ev.event_time, ev.account, ev.event_id)
            self.send(
                message("PART", "#" + ev.room, ev.reason or "Leaving", source=self.hostmask(ev.account), tags=tags)
            )
        elif isinstance(ev, core.TopicChanged):
            tags = self._server_tags(ev.event_time, ev.by, ev.event_id)
            self.send(message("TOPIC", "#" + ev.room, ev.topic, source=self.hostmask(ev.by), tags=tags))
        elif isinstance(ev, core.RoomAccessChanged):
            tags = self._server_tags(ev.event_time, ev.by, ev.event_id)
            mode = "+i" if ev.private else "-i"
            self.send(message("MODE", "#" + ev.room, mode, source=self.hostmask(ev.by), tags=tags))
        elif isinstance(ev, core.Invited):
            if ev.account == self.account or ("invite-notify" in self.caps and not mine):
                self.send(message("INVITE", ev.account, "#" + ev.room, source=self.hostmask(ev.by)))
        elif isinstance(ev, core.Typing | core.TagMessage | core.Reacted):
            self._tagmsg(ev, mine)
        elif isinstance(ev, core.MessageRedacted):
            if "draft/message-redaction" in self.caps and (not mine or "echo-message" in self.caps):
                tags = self._server_tags(ev.event_time, ev.by, ev.event_id)
                name = self._target_name(ev.target, ev.by)
                self.send(message("REDACT", name, ev.msgid, source=self.hostmask(ev.by), tags=tags))
        elif isinstance(ev, core.ReadMarker):
            if "draft/read-marker" in self.caps:
                name = self._target_name(ev.target, ev.account)
                self.send(message("MARKREAD", name, "timestamp=" + irc_time(ev.time), source=self.server.name))

    def _tagmsg(self, ev: Any, mine: bool) -> None:
        if "message-tags" not in self.caps or (mine and "echo-message" not in self.caps):
            return
        if isinstance(ev, core.Typing):
            if mine:
                return
            tags, target, sender = {"+typing": ev.state}, ev.target, ev.account
        elif isinstance(ev, core.Reacted):
            key = "+draft/react" if ev.added else "+draft/unreact"
            tags, target, sender = {key: ev.reaction, "+draft/reply": ev.msgid}, ev.target, ev.account
        else:
            tags, target, sender = dict(ev.client_tags), ev.target, ev.account
        tags.update(self._server_tags(ev.event_time, sender, ev.event_id))
        self.send(message("TAGMSG", self._target_name(target, sender), source=self.hostmask(sender), tags=tags))

    def _tag_caps(self) -> tuple[bool, bool, bool, bool]:
        """The capabilities that change how a message line is written."""
        c = self.caps
        return ("server-time" in c, "message-tags" in c, "account-tag" in c, "draft/multiline" in c)

    def _server_tags(self, ms: int | None, sender: str, msgid: str | None) -> dict[str, str]:
        tags: dict[str, str] = {}
        if "server-time" in self.caps:
            tags["time"] = irc_time(ms if ms is not None else int(time.time() * 1000))
        if msgid and "message-tags" in self.caps:
            tags["msgid"] = msgid
        if "account-tag" in self.caps:
            tags["account"] = sender
        return tags

    def _target_name(self, target: str, sender: str) -> str:
        """How a stored target reads for this client: '#room', or the other side of a DM."""
        if target.startswith("#"):
            return target
        a, _, b = target.partition("\n")
        if sender != self.account:
            return self.nick
        return b if a == self.account else a

    def _privmsg(self, m: Message, client_tags: dict[str, str] | None = None, batch: str | None = None) -> bytes:
        tags = self._server_tags(m.time, m.sender, m.msgid)
        if "message-tags" in self.caps:
            if client_tags:
                tags.update(client_tags)
            if m.reply_to:
                tags["+draft/reply"] = m.reply_to
        if batch:
            tags["batch"] = batch
        text = m.text.replace("\r\n", "\n").replace("\r", "\n")
        target, source = self._target_name(m.target, m.sender), self.hostmask(m.sender)
        if "\n" not in text:
            return message(m.kind, target, text or " ", source=source, tags=tags)
        lines = text.split("\n")
        if "draft/multiline" in self.caps:  # one batch: the message's tags on its opening line
            ref = "ml" + m.msgid  # the same for every connection: the rendering is shared
            out = [message("BATCH", "+" + ref, "draft/multiline", target, source=source, tags=tags)]
            out += [message(m.kind, target, ln, source=source, tags={"batch": ref}) for ln in lines]
            out.append(message("BATCH", "-" + ref, source=source, tags={"batch": batch} if batch else None))
            return b"".join(out)
        # without it: one line each (the msgid on the first), blank lines left out
        out = []
        for ln in (ln for ln in lines if ln.strip()):
            out.append(message(m.kind, target, ln, source=source, tags=tags))
            tags = {k: v for k, v in tags.items() if k != "msgid"}
        return b"".join(out) or message(m.kind, target, " ", source=source, tags=tags)

    def _join_line(self, room: str, account: str, msgid: str | None = None, ms: int | None = None) -> bytes:
        params = ["#" + room]
        if "extended-join" in self.caps:
            params += [account, self.server.realname(account)]
        return message("JOIN", *params, source=self.hostmask(account), tags=self._server_tags(ms, account, msgid))

    def _history_line(self, m: Message, batch: str | None) -> bytes | None:
        """A message or an event of history as this client reads it; None for an event it
        must not be sent (REDACT without draft/message-redaction, TAGMSG without message-tags).
        Events carry the msgid and time they were sent live with."""
        if m.kind in ("PRIVMSG", "NOTICE"):
            return self._privmsg(m, batch=batch)
        tags = self._server_tags(m.time, m.sender, m.msgid)
        target, source = self._target_name(m.target, m.sender), self.hostmask(m.sender)
        params = [target]
        if m.kind == "JOIN":
            if "extended-join" in self.caps:
                params += [m.sender, self.server.realname(m.sender)]
        elif m.kind == "PART":
            params.append(m.text or "Leaving")
        elif m.kind in ("TOPIC", "MODE"):
            params.append(m.text)
        elif m.kind == "REDACT":
            if "draft/message-redaction" not in self.caps:
                return None
            params.append(m.text)
        elif m.kind == "TAGMSG":
            if "message-tags" not in self.caps:
                return None
            client: dict[str, str] = json.loads(m.text)
            tags = {**client, **tags}  # client tags first, as the live TAGMSG
        else:
            return None
        if batch:
            tags["batch"] = batch
        return message(m.kind, *params, source=source, tags=tags)

    def _send_join(self, room: str, account: str, msgid: str | None = None, ms: int | None = None) -> None:
        self.joined.add(room)
        self.send(self._join_line(room, account, msgid, ms))
        if "draft/read-marker" in self.caps:  # the spec: after the JOIN, before RPL_ENDOFNAMES
            # (Goguma reads it there: without it, what was read on another device shows unread)
            t = self.chat.read_marker(account, "#" + room)
            self.reply("MARKREAD", "#" + room, "timestamp=" + irc_time(t) if t else "*")
        self._topic(room)
        self._names(room)

    # -- channel commands ---------------------------------------------------------------------
    def _room_name(self, chan: str) -> str | None:
        return chan[1:].lower() if chan.startswith("#") else None

    def _visible(self, chan: str) -> Room | None:
        """The room ``chan`` names if this account may know it exists (``ChatService.visible_room``):
        a private room it is neither in nor invited to is answered exactly as a missing one."""
        name = self._room_name(chan)
        assert self.account
        return self.chat.visible_room(name, self.account) if name else None

    def cmd_JOIN(self, line: Line) -> None:
        if not line.params:
            raise NeedMore
        assert self.account
        for chan in line.params[0].split(","):
            name = self._room_name(chan)
            if name is None or not core.ROOM_NAME_RE.match(name):
                self.num(N.ERR_BADCHANMASK, chan, "Bad channel name (use #a-z0-9_.-)")
                continue
            try:
                _, new = self.chat.join(name, self.account, origin=self)
            except ChatError as exc:
                code = N.ERR_INVITEONLYCHAN if exc.code == "invite_only" else N.ERR_NOSUCHCHANNEL
                self.num(code, chan, str(exc))
                continue
            if not new and name not in self.joined:
                # a member already (another device, the web): this connection sees the join once;
                # a JOIN of a room it shows already is ignored, as other servers do
                self._send_join(name, self.account)

    def cmd_PART(self, line: Line) -> None:
        if not line.params:
            raise NeedMore
        assert self.account
        for chan in line.params[0].split(","):
            name = self._room_name(chan)
            try:
                if name is None:
                    raise ChatError("no_such_room", "No such channel")
                self.chat.part(name, self.account, line.param(1))
            except ChatError as exc:
                code = N.ERR_NOTONCHANNEL if exc.code == "not_member" else N.ERR_NOSUCHCHANNEL
                self.num(code, chan, "No such channel" if code == N.ERR_NOSUCHCHANNEL else str(exc))

    def _topic(self, room: str) -> None:
        r = self.chat.room(room)
        if r is None:
            return
        if r.topic:
            self.num(N.RPL_TOPIC, "#" + r.name, r.topic)
            self.num(N.RPL_TOPICWHOTIME, "#" + r.name, r.topic_by or "*", str(r.topic_time // 1000))
        else:
            self.num(N.RPL_NOTOPIC, "#" + r.name, "No topic is set")

    def cmd_TOPIC(self, line: Line) -> None:
        if not line.params:
            raise NeedMore
        assert self.account
        chan = line.params[0]
        room = self._visible(chan)
        if room is None:
            self.num(N.ERR_NOSUCHCHANNEL, chan, "No such channel")
            return
        if len(line.params) < 2:
            self._topic(room.name)
            return
        try:
            self.chat.set_topic(room.name, line.params[1], self.account)
        except ChatError as exc:
            self.num(N.ERR_NOTONCHANNEL, chan, str(exc))

    def _names(self, room: str) -> None:
        members = sorted(self.chat.members(room))
        chan = "#" + room
        line: list[str] = []
        full = "userhost-in-names" in self.caps
        for m in members:
            line.append(self.hostmask(m) if full else m)
            if len(line) >= 40:
                self.num(N.RPL_NAMREPLY, "=", chan, " ".join(line))
                line = []
        if line:
            self.num(N.RPL_NAMREPLY, "=", chan, " ".join(line))
        self.num(N.RPL_ENDOFNAMES, chan, "End of /NAMES list")

    def cmd_NAMES(self, line: Line) -> None:
        if not line.params:
            self.num(N.RPL_ENDOFNAMES, "*", "End of /NAMES list")
            return
        assert self.account
        for chan in line.params[0].split(","):
            room = self._visible(chan)
            if room is not None:
                self._names(room.name)
            else:
                self.num(N.RPL_ENDOFNAMES, chan, "End of /NAMES list")

    def cmd_LIST(self, line: Line) -> None:
        assert self.account
        self.num(N.RPL_LISTSTART, "Channel", "Users  Name")
        for r in self.chat.rooms(self.account):
            self.num(N.RPL_LIST, "#" + r.name, str(len(self.chat.members(r.name))), r.topic)
        self.num(N.RPL_LISTEND, "End of /LIST")

    def _who_line(self, chan: str, account: str) -> None:
        here = "G" if self.server.is_away(account) else "H"
        realname = self.server.realname(account)
        self.num(N.RPL_WHOREPLY, chan, account, self.host, self.server.name, account, here, "0 " + realname)

    def cmd_WHO(self, line: Line) -> None:
        if not line.params:
            raise NeedMore
        assert self.account
        mask = line.params[0]
        name = self._room_name(mask)
        if name is not None:
            room = self._visible(mask)
            if room is not None:
                for m in sorted(self.chat.members(name)):
                    self._who_line(mask, m)
        elif self.server.user_exists(mask):
            self._who_line("*", mask.lower())
        self.num(N.RPL_ENDOFWHO, mask, "End of WHO list")

    def cmd_WHOIS(self, line: Line) -> None:
        if not line.params:
            self.num(N.ERR_NONICKNAMEGIVEN, "No nickname given")
            return
        nick = line.params[-1].lower()
        if not self.server.user_exists(nick):
            self.num(N.ERR_NOSUCHNICK, nick, "No such nick")
            self.num(N.RPL_ENDOFWHOIS, nick, "End of /WHOIS list")
            return
        self.num(N.RPL_WHOISUSER, nick, nick, self.host, "*", self.server.realname(nick))
        self.num(N.RPL_WHOISSERVER, nick, self.server.name, "GK")
        self.num(N.RPL_WHOISACCOUNT, nick, nick, "is logged in as")
        if self.server.is_away(nick):
            self.num(N.RPL_AWAY, nick, self.server.away_message(nick))
        self.num(N.RPL_ENDOFWHOIS, nick, "End of /WHOIS list")

    def cmd_AWAY(self, line: Line) -> None:
        text = line.param(0)
        self.server.set_away(self, text)
        if text:
            self.num(N.RPL_NOWAWAY, "You have been marked as being away")
        else:
            self.num(N.RPL_UNAWAY, "You are no longer marked as being away")

    def cmd_MODE(self, line: Line) -> None:
        if not line.params:
            raise NeedMore
        target = line.params[0]
        name = self._room_name(target)
        if name is None:
            if target.lower() != self.nick.lower():
                self.num(N.ERR_USERSDONTMATCH, "Can't change mode for other users")
                return
            self.num(N.RPL_UMODEIS, "+i")
            return
        room = self._visible(target)
        if room is None:
            self.num(N.ERR_NOSUCHCHANNEL, target, "No such channel")
            return
        if len(line.params) == 1:
            self.num(N.RPL_CHANNELMODEIS, "#" + room.name, "+nt" + ("i" if room.private else ""))
            self.num(N.RPL_CREATIONTIME, "#" + room.name, str(room.created // 1000))
        elif line.params[1].lstrip("+") == "b":
            self.num(N.RPL_ENDOFBANLIST, "#" + room.name, "End of channel ban list")
        elif line.params[1] in ("+i", "-i"):
            assert self.account
            try:
                self.chat.set_private(room.name, line.params[1] == "+i", self.account, origin=self)
            except ChatError as exc:
                self.num(N.ERR_NOTONCHANNEL, "#" + room.name, str(exc))
        else:
            self.num(N.ERR_CHANOPRIVSNEEDED, "#" + room.name, "Room settings are changed in the web UI")

    def cmd_INVITE(self, line: Line) -> None:
        if len(line.params) < 2:
            raise NeedMore
        assert self.account
        nick, chan = line.params[0].lower(), line.params[1]
        name = self._room_name(chan)
        try:
            if name is None:
                raise ChatError("no_such_room", "No such channel")
            self.chat.invite(name, nick, self.account)
        except ChatError as exc:
            code = {"no_such_user": N.ERR_NOSUCHNICK, "not_member": N.ERR_NOTONCHANNEL}.get(
                exc.code, N.ERR_NOSUCHCHANNEL
            )
            self.num(
                code,
                nick if code == N.ERR_NOSUCHNICK else chan,
                "No such channel" if code == N.ERR_NOSUCHCHANNEL else str(exc),
            )
            return
        self.num(N.RPL_INVITING, nick, chan)

    def cmd_KICK(self, line: Line) -> None:
        if len(line.params) < 2:
            raise NeedMore
        room = self._visible(line.params[0])
        if room is None:
            self.num(N.ERR_NOSUCHCHANNEL, line.params[0], "No such channel")
            return
        # rooms have no operators: members are managed by an administrator in the web UI
        self.num(N.ERR_CHANOPRIVSNEEDED, "#" + room.name, "Members are managed in the web UI (Administration)")

    def cmd_MONITOR(self, line: Line) -> None:
        """IRCv3 MONITOR: + - C L S; online = connected over IRC (any device)."""
        if not line.params:
            raise NeedMore
        op = line.params[0].upper()
        names = [n.lower() for n in line.param(1).split(",") if n] if len(line.params) > 1 else []
        if op in ("+", "-") and not names:
            raise NeedMore
        if op == "+":
            room = MONITOR_MAX - len(self.monitoring)
            if len(set(names) - self.monitoring) > room:
                self.num(N.ERR_MONLISTFULL, str(MONITOR_MAX), ",".join(names), "Monitor list is full")
                names = names[: max(room, 0)]
            for n in names:
                self.server.monitor(self, n)
            self._monitor_status(names)
        elif op == "-":
            for n in names:
                self.server.unmonitor(self, n)
        elif op == "C":
            for n in list(self.monitoring):
                self.server.unmonitor(self, n)
        elif op == "L":
            if self.monitoring:
                self.num(N.RPL_MONLIST, ",".join(sorted(self.monitoring)))
            self.num(N.RPL_ENDOFMONLIST, "End of MONITOR list")
        elif op == "S":
            self._monitor_status(sorted(self.monitoring))
        else:
            self.num(N.ERR_UNKNOWNCOMMAND, "MONITOR", f"Unknown MONITOR subcommand {op}")

    def _monitor_status(self, names: list[str]) -> None:
        online = [self.hostmask(n) for n in names if n in self.server.by_account]
        offline = [n for n in names if n not in self.server.by_account]
        if online:
            self.num(N.RPL_MONONLINE, ",".join(online))
        if offline:
            self.num(N.RPL_MONOFFLINE, ",".join(offline))

    # -- what classic clients ask now and then (irssi's and WeeChat's notify lists poll ISON
    # when MONITOR is not used, /version, /time, /motd, /lusers): answered, not 421
    def cmd_ISON(self, line: Line) -> None:
        if not line.params:
            raise NeedMore
        names = " ".join(line.params).split()[:100]
        self.num(N.RPL_ISON, " ".join(n for n in names if n.lower() in self.server.by_account))

    def cmd_USERHOST(self, line: Line) -> None:
        if not line.params:
            raise NeedMore
        out = []
        for nick in line.params[:5]:
            name = nick.lower()
            if name in self.server.by_account:
                away = "-" if self.server.is_away(name) else "+"
                out.append(f"{name}={away}{name}@{self.host}")
        self.num(N.RPL_USERHOST, " ".join(out))

    def cmd_VERSION(self, line: Line) -> None:
        self.num(N.RPL_VERSION, "GK.", self.server.name, "IRCv3 chat of the GK appliance")

    def cmd_TIME(self, line: Line) -> None:
        now = datetime.now(UTC)
        self.num(N.RPL_TIME, self.server.name, now.strftime("%A %B %d %Y -- %H:%M:%S +00:00"))

    def cmd_MOTD(self, line: Line) -> None:
        self.num(N.ERR_NOMOTD, "MOTD File is missing")

    def cmd_LUSERS(self, line: Line) -> None:
        users = len(self.server.by_account)
        self.num(N.RPL_LUSERCLIENT, f"There are {users} users and 0 invisible on 1 servers")
        self.num(N.RPL_LUSERME, f"I have {users} clients and 0 servers")

    def cmd_SETNAME(self, line: Line) -> None:
        if not line.params:
            raise NeedMore
        assert self.account
        name = line.params[-1].strip()
        if not name or len(name) > 100:
            self.reply("FAIL", "SETNAME", "INVALID_REALNAME", "Real names are 1-100 characters")
            return
        self.server.set_realname(self.account, name)

    # -- messages -----------------------------------------------------------------------------
    def _to(self, target: str) -> str:
        return target if target.startswith("#") else target.lower()

    def _post(self, line: Line, kind: str) -> None:
        assert self.account
        quiet = kind == "NOTICE"  # RFC 2812: no automatic reply to a NOTICE
        if not line.params:
            if not quiet:
                self.num(N.ERR_NORECIPIENT, f"No recipient given ({kind})")
            return
        if len(line.params) < 2 or line.params[1] == "":
            if not quiet:
                self.num(N.ERR_NOTEXTTOSEND, "No text to send")
            return
        text = line.params[1]
        tags = line.client_tags if "message-tags" in self.caps else {}
        reply_to = tags.pop("+draft/reply", None)
        # a CTCP query or reply (VERSION, PING, TIME...; not ACTION, which is /me): live only
        ctcp = text.startswith("\x01") and not text.startswith("\x01ACTION")
        for target in line.params[0].split(",")[:4]:
            try:
                if ctcp:
                    self.chat.relay(self.account, self._to(target), text, kind=kind, origin=self)
                    continue
                self.chat.post(
                    self.account, self._to(target), text, kind=kind, reply_to=reply_to, client_tags=tags, origin=self
                )
            except ChatError as exc:
                if quiet:
                    continue
                if exc.code == "no_such_user":
                    self.num(N.ERR_NOSUCHNICK, target, "No such nick")
                elif exc.code == "no_such_room":
                    self.num(N.ERR_NOSUCHCHANNEL, target, "No such channel")
                else:
                    self.num(N.ERR_CANNOTSENDTOCHAN, target, str(exc))

    # -- draft/multiline: BATCH +ref draft/multiline <target>, PRIVMSGs tagged batch=ref (with
    # draft/multiline-concat to join without a newline), BATCH -ref: one message with newlines
    def cmd_BATCH(self, line: Line) -> None:
        if "draft/multiline" not in self.caps:
            self.num(N.ERR_UNKNOWNCOMMAND, "BATCH", "Unknown command")
            return
        if not line.params or len(line.params[0]) < 2 or line.params[0][0] not in "+-":
            raise NeedMore
        ref = line.params[0][1:]
        if line.params[0][0] == "+":
            if len(line.params) < 3 or line.params[1] != "draft/multiline":
                self.reply("FAIL", "BATCH", "MULTILINE_INVALID", "Only draft/multiline batches are accepted")
                return
            if len(self._multiline) >= 2 or ref in self._multiline:
                self.reply("FAIL", "BATCH", "MULTILINE_INVALID", "Too many open batches")
                return
            self._multiline[ref] = _Multiline(line.params[2], line.client_tags)
            return
        ml = self._multiline.pop(ref, None)
        if ml is None:
            self.reply("FAIL", "BATCH", "MULTILINE_INVALID", "No such batch")
            return
        if ml.error:
            self.reply("FAIL", "BATCH", *ml.error)
            return
        text = "".join(("" if i == 0 or concat else "\n") + part for i, (part, concat) in enumerate(ml.parts))
        if not text.strip():
            self.reply("FAIL", "BATCH", "MULTILINE_INVALID", "An empty message")
            return
        tags = dict(ml.tags) if "message-tags" in self.caps else {}
        self._post(Line(ml.kind, [ml.target, text], tags), ml.kind)

    def _multiline_part(self, ref: str, line: Line) -> None:
        ml = self._multiline[ref]
        if ml.error:
            return
        if line.command not in ("PRIVMSG", "NOTICE") or len(line.params) < 2:
            ml.error = ("MULTILINE_INVALID", "Only PRIVMSG or NOTICE lines belong in a multiline batch")
        elif line.params[0].lower() != ml.target.lower() or (ml.parts and line.command != ml.kind):
            ml.error = ("MULTILINE_INVALID_TARGET", ml.target, line.params[0], "Lines to another target")
        else:
            ml.kind = line.command
            ml.size += len(line.params[1].encode())
            ml.parts.append((line.params[1], "draft/multiline-concat" in line.tags))
            if ml.size > MULTILINE_BYTES:
                ml.error = ("MULTILINE_MAX_BYTES", str(MULTILINE_BYTES), "Multiline batch too long")
            elif len(ml.parts) > MULTILINE_LINES:
                ml.error = ("MULTILINE_MAX_LINES", str(MULTILINE_LINES), "Too many lines in a multiline batch")

    def cmd_PRIVMSG(self, line: Line) -> None:
        self._post(line, "PRIVMSG")

    def cmd_NOTICE(self, line: Line) -> None:
        self._post(line, "NOTICE")

    def cmd_TAGMSG(self, line: Line) -> None:
        if not line.params:
            raise NeedMore
        assert self.account
        if "message-tags" not in self.caps:
            return
        target = self._to(line.params[0])
        tags = line.client_tags
        try:
            if "+typing" in tags:
                self.chat.typing(self.account, target, tags["+typing"], origin=self)
            elif ("+draft/react" in tags or "+draft/unreact" in tags) and "+draft/reply" in tags:
                add = "+draft/react" in tags
                reaction = tags.get("+draft/react") or tags.get("+draft/unreact") or ""
                self.chat.react(self.account, tags["+draft/reply"], reaction, add, origin=self)
            elif tags:
                self.chat.tag_message(self.account, target, tags, origin=self)
        except ChatError as exc:
            if exc.code == "no_such_message":
                self.reply("FAIL", "TAGMSG", "UNKNOWN_MSGID", tags.get("+draft/reply", "*"), str(exc))
            elif exc.code == "no_such_user":
                self.num(N.ERR_NOSUCHNICK, line.params[0], "No such nick")
            elif exc.code == "no_such_room":
                self.num(N.ERR_NOSUCHCHANNEL, line.params[0], "No such channel")
            else:
                self.num(N.ERR_CANNOTSENDTOCHAN, line.params[0], str(exc))

    def cmd_REDACT(self, line: Line) -> None:
        if len(line.params) < 2:
            raise NeedMore
        assert self.account
        try:
            self.chat.resolve(self.account, self._to(line.params[0]))
            self.chat.redact(self.account, line.params[1], origin=self)
        except ChatError as exc:
            code = "REDACT_FORBIDDEN" if exc.code == "not_allowed" else "UNKNOWN_MSGID"
            self.reply("FAIL", "REDACT", code, line.params[0], line.params[1], str(exc))

    def cmd_MARKREAD(self, line: Line) -> None:
        if not line.params:
            raise NeedMore
        assert self.account
        target = self._to(line.params[0])
        try:
            if len(line.params) < 2:
                t = self.chat.read_marker(self.account, target)
                value = "timestamp=" + irc_time(t) if t else "*"
                self.reply("MARKREAD", line.params[0], value)
                return
            ref = line.params[1]
            if not ref.startswith("timestamp="):
                raise ValueError
            self.chat.mark_read(self.account, target, parse_time(ref[10:]), origin=self)
        except ValueError:
            self.reply("FAIL", "MARKREAD", "INVALID_PARAMS", line.params[0], "Expected timestamp=...")
        except ChatError as exc:
            self.reply("FAIL", "MARKREAD", "INVALID_TARGET", line.params[0], str(exc))

    # -- history ------------------------------------------------------------------------------
    def _ref(self, value: str) -> str | int | None:
        if value == "*":
            return None
        kind, _, v = value.partition("=")
        if kind == "msgid" and v:
            return v
        if kind == "timestamp":
            return parse_time(v)
        raise ValueError(value)

    def cmd_CHATHISTORY(self, line: Line) -> None:
        assert self.account
        sub = line.param(0).upper()
        try:
            if sub == "TARGETS":
                if len(line.params) < 4:
                    raise ValueError
                a, b = self._ref(line.params[1]), self._ref(line.params[2])
                if not isinstance(a, int) or not isinstance(b, int):
                    raise ValueError
                self._history_targets(a, b, int(line.params[3]))
                return
            if sub not in ("LATEST", "BEFORE", "AFTER", "AROUND", "BETWEEN"):
                self.reply("FAIL", "CHATHISTORY", "INVALID_PARAMS", sub or "*", "Unknown subcommand")
                return
            n = 5 if sub == "BETWEEN" else 4
            if len(line.params) < n:
                raise ValueError
            target = line.params[1]
            limit = int(line.params[n - 1])
            if limit < 0:
                raise ValueError
            ref = self._ref(line.params[2])
            ref2 = self._ref(line.params[3]) if sub == "BETWEEN" else None
            if sub != "LATEST" and ref is None:
                raise ValueError
        except ValueError:
            self.reply("FAIL", "CHATHISTORY", "INVALID_PARAMS", sub or "*", "Invalid parameters")
            return
        events = "draft/event-playback" in self.caps
        try:
            msgs = self.chat.history(
                self.account, self._to(target), sub.lower(), min(limit, HISTORY_MAX), ref, ref2, events=events
            )
        except ChatError as exc:
            if exc.code == "no_such_message":
                self.reply("FAIL", "CHATHISTORY", "INVALID_MSGREFTYPE", sub, target, str(exc))
            else:
                self.reply("FAIL", "CHATHISTORY", "INVALID_TARGET", sub, target, "No such target")
            return
        batch = self._open_batch("chathistory", target)
        for m in msgs:
            out = self._history_line(m, batch)
            if out is not None:
                self.send(out)
        self._close_batch(batch)

    def _history_targets(self, a: int, b: int, limit: int) -> None:
        assert self.account
        batch = self._open_batch("draft/chathistory-targets")
        for target, t in self.chat.conversations(self.account, a, b, min(limit, HISTORY_MAX)):
            tags = {"batch": batch} if batch else {}
            name = target if target.startswith("#") else self._target_name(target, self.account)
            self.send(message("CHATHISTORY", "TARGETS", name, "timestamp=" + irc_time(t), tags=tags))
        self._close_batch(batch)

    def _open_batch(self, kind: str, *params: str) -> str | None:
        if "batch" not in self.caps:
            return None
        self._batch += 1
        ref = f"{secrets.token_hex(3)}{self._batch}"
        self.reply("BATCH", "+" + ref, kind, *params)
        return ref

    def _close_batch(self, ref: str | None) -> None:
        if ref:
            self.send(message("BATCH", "-" + ref, source=self.server.name))

    # -- connection ---------------------------------------------------------------------------
    def cmd_PING(self, line: Line) -> None:
        if not line.params:
            self.num(N.ERR_NOORIGIN, "No origin specified")
            return
        self.reply("PONG", self.server.name, line.params[0])

    def cmd_PONG(self, line: Line) -> None:
        pass

    def cmd_QUIT(self, line: Line) -> None:
        raise Quit("Quit: " + line.param(0) if line.param(0) else "Closing link")


def _plain_post(raw: bytes) -> bool:
    """A PRIVMSG or NOTICE without a label (those may be posted concurrently, see _post_run)."""
    if raw.startswith(b"@"):
        sp = raw.find(b" ")
        if sp < 0 or b"label=" in raw[:sp] or b"batch=" in raw[:sp]:
            return False
        raw = raw[sp + 1 :].lstrip(b" ")
    head = raw[:8].upper()
    return head.startswith((b"PRIVMSG ", b"NOTICE "))


def _add_tags(line: bytes, tags: dict[str, str]) -> bytes:
    extra = format_tags(tags).encode()
    if line.startswith(b"@"):
        return b"@" + extra + b";" + line[1:]
    return b"@" + extra + b" " + line


def _has_batch(line: bytes) -> bool:
    if not line.startswith(b"@"):
        return False
    head = line[1 : line.find(b" ")]
    return any(t.startswith(b"batch=") for t in head.split(b";"))


class _Multiline:
    """A draft/multiline batch being received: its target, client tags and lines so far."""

    def __init__(self, target: str, tags: dict[str, str]):
        self.target = target
        self.tags = tags
        self.kind = "PRIVMSG"
        self.parts: list[tuple[str, bool]] = []  # (text, joined to the previous without a newline)
        self.size = 0
        self.error: tuple[str, ...] | None = None


class NeedMore(Exception):
    """A command got too few parameters (461 ERR_NEEDMOREPARAMS)."""
