"""``start(ctx)``: the IMAP listeners (143 STARTTLS, 993 implicit TLS) on gevent StreamServers.

Serves the mailbox store the ``mailbox`` feature started (``get_store``). Sessions are
greenlets in a ``gevent.pool.Pool``; ``stop(grace)`` closes the listeners, then waits up to
``grace`` seconds before killing what is left.

Connection slots: at most ``imap.max_connections`` sessions, ``imap.max_connections_per_ip``
from one address. A client over either limit is still accepted and told ``* BYE [UNAVAILABLE]``
(after the TLS handshake on 993), then closed: a full server answers rather than leaving new
clients hanging without a greeting. The pool has ``REFUSE_SLOTS`` more greenlets than sessions
for those short refusals; when they too are busy, new connections wait in the listen backlog.

Implicit TLS (993) is negotiated in the session greenlet, not by ``StreamServer``: the handshake
gets a deadline (a silent TCP connection would otherwise hold a pool slot for ever) and a failed
handshake (a client rejecting our self-signed certificate, a port scan) is one log line instead
of a traceback (``gk.security.tls.accept``; a connection closed before any byte, as the dashboard's
listener probe, is a debug line).
"""

from __future__ import annotations

import importlib
import logging
import socket
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gevent
import gevent.lock
import gevent.pool
from gevent.server import StreamServer

from gk import pools
from gk.mail.mailbox import get_store
from gk.security.tls import accept as accept_tls

if TYPE_CHECKING:
    from gk.context import AppContext
    from gk.mail.imap.session import Session

log = logging.getLogger("gk.imap")

TLS_HANDSHAKE_TIMEOUT = 30.0  # seconds; capped by imap.login_timeout
SESSION_MODULE = "gk.mail.imap.session"
_IMPORTING = gevent.lock.Semaphore()
_session: Any = None  # the Session class once its module is imported whole


def _import_session() -> Any:
    return importlib.import_module(SESSION_MODULE).Session


def session_class() -> Any:
    """``Session``, its module (the IMAP commands') imported at the first connection, not at
    start (docs/performance.md), in the CPU pool: imported on the hub it held every other
    connection for 45-95 ms in bench hub_lag (its stall stacks); one import at a time. The
    class is kept once the import has finished: ``sys.modules`` holds the module from the
    import's start, and a second connection that took it from there found no ``Session`` yet."""
    global _session
    if _session is None:
        with _IMPORTING:
            if _session is None:
                _session = pools.run_cpu(_import_session)
    return _session


REFUSE_SLOTS = 64  # greenlets beyond imap.max_connections that only say BYE and close
REFUSE_TIMEOUT = 10.0  # seconds a refusal may take (its TLS handshake and BYE)


class IMAPService:
    name = "imap"

    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        self.store = get_store(ctx)
        self.spool_dir = Path(ctx.data_dir) / "tmp" / "imap"
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self.pool = gevent.pool.Pool(ctx.config.imap.max_connections + REFUSE_SLOTS)
        self.servers: list[StreamServer] = []
        self.listeners: list[tuple[str, str, int]] = []
        self.sessions: set[Session] = set()
        self.active = 0  # connections holding a session slot (TLS handshake included)
        self.per_ip: dict[str, int] = {}

    def _refusal(self, ip: str) -> str:
        """Why a new connection from ``ip`` gets no session ('' = it gets one)."""
        cfg = self.ctx.config.imap
        if self.active >= cfg.max_connections:
            return "too many connections; try again later"
        if self.per_ip.get(ip, 0) >= cfg.max_connections_per_ip:
            return "too many connections from your address"
        return ""

    def _refuse(self, sock: socket.socket, ip: str, tls: bool, why: str) -> None:
        log.info("imap: refused a connection from %s: %s", ip or "?", why)
        try:
            sock.settimeout(REFUSE_TIMEOUT)
            if tls:
                sock = self.ctx.ssl_context.wrap_socket(sock, server_side=True)
            sock.sendall(f"* BYE [UNAVAILABLE] {why}\r\n".encode())
        except (OSError, ssl.SSLError):
            pass
        finally:
            sock.close()

    def _handler(self, tls: bool):  # type: ignore[no-untyped-def]
        def handle(sock: socket.socket, address: tuple[str, int]) -> None:
            ip = address[0] if address else ""
            why = self._refusal(ip)
            if why:
                self._refuse(sock, ip, tls, why)
                return
            self.active += 1
            self.per_ip[ip] = self.per_ip.get(ip, 0) + 1
            try:
                serve(sock, address)
            finally:
                self.active -= 1
                left = self.per_ip.pop(ip) - 1
                if left:
                    self.per_ip[ip] = left

        def serve(sock: socket.socket, address: tuple[str, int]) -> None:
            if tls:
                timeout = min(TLS_HANDSHAKE_TIMEOUT, self.ctx.config.imap.login_timeout)
                tls_sock = accept_tls(sock, self.ctx.ssl_context, "imaps", address, log, timeout)
                if tls_sock is None:
                    return
                sock = tls_sock
            session = session_class()(self, sock, address, tls)
            self.sessions.add(session)
            try:
                session.run()
            except Exception:
                log.exception("imap session crashed")
            finally:
                self.sessions.discard(session)
                session.close()

        return handle

    def listen(self, label: str, port: int, tls: bool, note: str) -> None:
        bind = self.ctx.config.server.bind
        kwargs: dict[str, Any] = {"spawn": self.pool}
        listener = StreamServer.get_listener((bind, port), family=socket.AF_INET6 if ":" in bind else socket.AF_INET)
        # accepted sockets inherit TCP_NODELAY: TLS handshake flights and replies go out at once
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        server = StreamServer(listener, self._handler(tls), **kwargs)
        server.start()
        actual = server.server_port
        self.servers.append(server)
        self.listeners.append((label, bind, actual))
        log.info("listening %s on %s:%d (%s)", label, bind, actual, note)

    def stop(self, grace: float) -> None:
        for s in self.servers:
            s.close()
        for session in list(self.sessions):
            session.shutdown()
        if grace > 0 and len(self.pool):
            self.pool.join(timeout=grace)
        self.pool.kill(block=True, timeout=1)


def start(ctx: AppContext) -> IMAPService:
    svc = IMAPService(ctx)
    cfg = ctx.config.imap
    if cfg.port:
        svc.listen("imap", cfg.port, False, "STARTTLS, LOGIN after TLS")
    if cfg.tls_port:
        svc.listen("imaps", cfg.tls_port, True, "implicit TLS")
    return svc
