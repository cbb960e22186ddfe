"""The IRC listener: implicit TLS on ``chat.irc_port`` (6697; dev 2697), one greenlet per
session in a pool of ``chat.max_connections``.

Also the little state sessions share: who is connected (``attach``/``detach``, one chat
subscription per session, so every device of an account sees everything), away messages, and
logins (SASL PLAIN through ``ctx.auth``: GK passwords and app passwords, the same throttling and
lockout as IMAP and SMTP). Account names on IRC are the users' local parts (nick = account,
reserved: nobody else can take it).
"""

from __future__ import annotations

import logging
import socket
import time
from typing import TYPE_CHECKING, Any

import gevent
import gevent.pool
from gevent.server import StreamServer

from gk.accounts.throttle import client_key
from gk.chat.core import ChatService
from gk.chat.irc import numerics as N
from gk.chat.irc.nbio import linger_close
from gk.chat.irc.parser import message
from gk.security.tls import accept as accept_tls

if TYPE_CHECKING:
    from gk.chat.irc.session import Session
    from gk.context import AppContext

log = logging.getLogger("gk.chat.irc")

TLS_HANDSHAKE_TIMEOUT = 30.0
REFUSE_SLOTS = 64  # greenlets beyond chat.max_connections that only refuse (over a client's limit)
REFUSE_TIMEOUT = 10.0  # seconds a refusal may take (its TLS handshake and ERROR)


class IRCServer:
    def __init__(self, ctx: AppContext, chat: ChatService):
        self.ctx = ctx
        self.chat = chat
        self.cfg = ctx.config.chat
        self.hostname = ctx.hostname
        self.name = ctx.hostname  # the server name in prefixes
        self.started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        self.pool = gevent.pool.Pool(self.cfg.max_connections + REFUSE_SLOTS)
        self.per_ip: dict[str, int] = {}  # connections by client_key (see _take)
        self.server: StreamServer | None = None
        self.port = 0
        self.sessions: set[Session] = set()
        self.by_account: dict[str, set[Session]] = {}
        self.monitors: dict[str, set[Session]] = {}  # account → sessions watching it (MONITOR)
        self.realnames: dict[str, str] = {}  # SETNAME, per account, while the process runs
        self._dirty: list[Session] = []  # sessions with lines to write at the end of this turn
        self._flush_due = False

    # -- output ---------------------------------------------------------------------------------
    def mark_dirty(self, session: Session) -> None:
        """``session`` has lines to write: one hub callback at the end of this turn of the
        loop writes every such session's lines without blocking (``Session.try_flush``), so a
        message fanned out to 19 connections costs one callback, not 19 greenlet switches,
        and lines posted in the same turn go out in one write per connection."""
        self._dirty.append(session)
        if not self._flush_due:
            self._flush_due = True
            gevent.get_hub().loop.run_callback(self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        dirty, self._dirty = self._dirty, []
        for s in dirty:
            try:
                s.try_flush()
            except Exception:  # never let it reach the hub
                log.exception("irc: writing to %s failed", s.nick)

    # -- accounts -------------------------------------------------------------------------------
    def _address_of(self, name: str) -> str | None:
        name = name.strip().lower()
        if "@" in name:
            return name
        matches = [u.address for u in self.ctx.accounts.list_users() if u.local == name]
        return matches[0] if len(matches) == 1 else None

    def user_exists(self, name: str) -> bool:
        name = name.lower()
        return any(u.local == name for u in self.ctx.accounts.list_users())

    def login(self, authc: str, password: str, ip: str) -> str | None:
        """The chat account name (local part) for valid credentials, else None (after the
        throttle's delay)."""
        address = self._address_of(authc) or authc
        result = self.ctx.auth.login(address, password, ip, "irc")
        if not result.ok or result.user is None:
            return None
        local = result.user.local
        if sum(u.local == local for u in self.ctx.accounts.list_users()) > 1:
            # chat names are local parts: two users alice@a and alice@b would share one chat
            # identity (and its direct messages), so neither gets in until one is renamed
            log.warning("irc login refused for %s: the name %r belongs to several users", address, local)
            return None
        return local

    # -- presence -------------------------------------------------------------------------------
    # An account is online while one of its IRC connections is, and away when it has none or
    # all of them are away ("Not connected": always-on accounts, as Ergo shows them). Changes
    # go to the connections that asked: MONITOR (730/731) and away-notify (AWAY lines to the
    # connections of everyone sharing a room with it, the one that changed it excepted).
    def attach(self, session: Session) -> None:
        account = session.account
        assert account
        online, away = account in self.by_account, self.is_away(account)
        self.by_account.setdefault(account, set()).add(session)
        self.chat.subscribe(session.on_event, account, early=True)  # it renders from the event
        if not online:
            self._monitor_notify(account, True)
        if away and not self.is_away(account):
            self._away_notify(account, session)

    def detach(self, session: Session) -> None:
        for watched in list(session.monitoring):
            self.unmonitor(session, watched)
        account = session.account
        if account and session in self.by_account.get(account, ()):
            away = self.is_away(account)
            self.chat.unsubscribe(session.on_event, account)
            self.by_account[account].discard(session)
            if not self.by_account[account]:
                del self.by_account[account]
                self._monitor_notify(account, False)
            if not away and self.is_away(account):
                self._away_notify(account, session)

    def set_away(self, session: Session, text: str) -> None:
        assert session.account
        before = self._away_state(session.account)
        session.away = text[:300]
        if self._away_state(session.account) != before:
            self._away_notify(session.account, session)

    def _away_state(self, account: str) -> str | None:
        return self.away_message(account) if self.is_away(account) else None

    def _peer_sessions(self, account: str, cap: str) -> list[Session]:
        return [
            s
            for peer in self.chat.peers(account) | {account}
            for s in self.by_account.get(peer, ())
            if s.registered and cap in s.caps
        ]

    def _away_notify(self, account: str, skip: Session | None) -> None:
        text = self.away_message(account) if self.is_away(account) else ""
        line = message("AWAY", *([text] if text else []), source=f"{account}!{account}@{self.hostname}")
        for s in self._peer_sessions(account, "away-notify"):
            if s is not skip:
                s.send(line)

    # -- MONITOR and SETNAME --------------------------------------------------------------------
    def monitor(self, session: Session, account: str) -> None:
        session.monitoring.add(account)
        self.monitors.setdefault(account, set()).add(session)

    def unmonitor(self, session: Session, account: str) -> None:
        session.monitoring.discard(account)
        watchers = self.monitors.get(account)
        if watchers is not None:
            watchers.discard(session)
            if not watchers:
                del self.monitors[account]

    def _monitor_notify(self, account: str, online: bool) -> None:
        for s in list(self.monitors.get(account, ())):
            if online:
                s.num(N.RPL_MONONLINE, f"{account}!{account}@{self.hostname}")
            else:
                s.num(N.RPL_MONOFFLINE, account)

    def realname(self, account: str) -> str:
        return self.realnames.get(account, account)

    def set_realname(self, account: str, name: str) -> None:
        self.realnames[account] = name
        line = message("SETNAME", name, source=f"{account}!{account}@{self.hostname}")
        for s in self._peer_sessions(account, "setname"):
            s.send(line)

    def is_away(self, account: str) -> bool:
        sessions = self.by_account.get(account)
        return not sessions or all(s.away for s in sessions)

    def away_message(self, account: str) -> str:
        for s in self.by_account.get(account, ()):
            if s.away:
                return s.away
        return "Not connected"

    # -- listener -------------------------------------------------------------------------------
    def _take(self, address: Any) -> str:
        """A slot for a connection from ``address`` ('' = taken; else why not): at most
        ``chat.max_connections_per_ip`` from one client (``throttle.client_key``), from the
        TCP accept (the TLS handshake and registration included) or the WebSocket's start.
        Without it one address could hold all ``chat.max_connections``, the web chat's too."""
        key = client_key(address[0] if address else "")
        if self.per_ip.get(key, 0) >= self.cfg.max_connections_per_ip:
            return "Too many connections from your address"
        self.per_ip[key] = self.per_ip.get(key, 0) + 1
        return ""

    def _give(self, address: Any) -> None:
        key = client_key(address[0] if address else "")
        left = self.per_ip.pop(key, 1) - 1
        if left > 0:
            self.per_ip[key] = left

    def _handle(self, sock: socket.socket, address: Any) -> None:
        why = self._take(address)
        if why:
            log.info("irc: refused a connection from %s: %s", address[0] if address else "?", why)
            self._refuse(sock, why)
            return
        try:
            timeout = min(TLS_HANDSHAKE_TIMEOUT, self.cfg.registration_timeout)
            tls_sock = accept_tls(sock, self.ctx.ssl_context, "irc", address, log, timeout)
            if tls_sock is not None:
                self._session(tls_sock, address)
        finally:
            self._give(address)

    def _refuse(self, sock: socket.socket, why: str) -> None:
        try:
            sock.settimeout(REFUSE_TIMEOUT)
            with gevent.Timeout(REFUSE_TIMEOUT, TimeoutError("refusal too slow")):
                tls_sock = self.ctx.ssl_context.wrap_socket(sock, server_side=True)
                tls_sock.sendall(f"ERROR :{why}\r\n".encode())
                tls_sock.close()
        except OSError:
            pass
        finally:
            sock.close()

    def serve(self, sock: Any, address: Any) -> None:
        """Run one session on the WebSocket adapter ``sock`` (``gk.chat.irc.websocket``) until
        it ends, in a slot of its client's (``_take``)."""
        why = self._take(address)
        if why:
            log.info("irc websocket: refused a connection from %s: %s", address[0] if address else "?", why)
            try:
                sock.sendall(f"ERROR :{why}\r\n".encode())
                sock.close()
            except OSError:
                pass
            return
        try:
            self._session(sock, address)
        finally:
            self._give(address)

    def _session(self, sock: Any, address: Any) -> None:
        """Run one session on ``sock`` (a TLS socket, or the WebSocket adapter of
        ``gk.chat.irc.websocket``) until it ends. The WebSocket sessions run on the web
        listener's greenlets, so ``chat.max_connections`` is counted here for both."""
        if len(self.sessions) >= self.cfg.max_connections:
            try:
                sock.sendall(b"ERROR :Too many connections\r\n")
                sock.close()
            except OSError:
                pass
            return
        # the IRC session's and WebSocket transport's modules load at the first connection, not at start
        from gk.chat.irc.session import Session
        from gk.chat.irc.websocket import WebSocketTransport

        session = Session(self, sock, address)
        self.sessions.add(session)
        try:
            session.run()
        except Exception:
            log.exception("irc session crashed")
        finally:
            self.sessions.discard(session)
            self.detach(session)
            if isinstance(sock, WebSocketTransport):
                sock.close()  # its web handler drains and closes the connection under it
            else:
                linger_close(sock)

    def listen(self, port: int) -> None:
        bind = self.ctx.config.server.bind
        listener = StreamServer.get_listener((bind, port), family=socket.AF_INET6 if ":" in bind else socket.AF_INET)
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server = StreamServer(listener, self._handle, spawn=self.pool)
        self.server.start()
        self.port = self.server.server_port
        log.info("listening irc on %s:%d (implicit TLS, SASL PLAIN)", bind, self.port)

    def stop(self, grace: float) -> None:
        if self.server is not None:
            self.server.close()
        for s in list(self.sessions):
            s.closed = True
            s.send(b"ERROR :Server shutting down\r\n")
            s.abort()
        if grace > 0 and len(self.pool):
            self.pool.join(timeout=min(grace, 5))
        self.pool.kill(block=True, timeout=1)
