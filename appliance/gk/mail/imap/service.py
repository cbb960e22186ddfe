"""``start(ctx)``: the IMAP listeners (143 STARTTLS, 993 implicit TLS) on gevent StreamServers.

Also registers the mailbox store (``ctx.services["mailbox"]``) if nobody did yet. Sessions are
greenlets in a ``gevent.pool.Pool`` of ``imap.max_connections``; ``stop(grace)`` closes the
listeners, then waits up to ``grace`` seconds before killing what is left.

Implicit TLS (993) is negotiated in the session greenlet, not by ``StreamServer``: the handshake
gets a deadline (a silent TCP connection would otherwise hold a pool slot for ever) and a failed
handshake (a client rejecting our self-signed certificate, a port scan) is one log line instead
of a traceback (``gk.security.tls.accept``; a connection closed before any byte, as the dashboard's
listener probe, is a debug line).
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import gevent
import gevent.pool
from gevent.server import StreamServer

from gk.mail.imap.session import Session
from gk.mail.mailbox import get_store
from gk.security.tls import accept as accept_tls

log = logging.getLogger("gk.imap")

TLS_HANDSHAKE_TIMEOUT = 30.0  # seconds; capped by imap.idle_timeout


class IMAPService:
    name = "imap"

    def __init__(self, ctx: Any):
        self.ctx = ctx
        self.store = get_store(ctx)
        self.spool_dir = Path(ctx.data_dir) / "tmp" / "imap"
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self.pool = gevent.pool.Pool(ctx.config.imap.max_connections)
        self.servers: list[StreamServer] = []
        self.listeners: list[tuple[str, str, int]] = []
        self.sessions: set[Session] = set()

    def _handler(self, tls: bool):  # type: ignore[no-untyped-def]
        def handle(sock: socket.socket, address: tuple[str, int]) -> None:
            if tls:
                timeout = min(TLS_HANDSHAKE_TIMEOUT, self.ctx.config.imap.idle_timeout)
                tls_sock = accept_tls(sock, self.ctx.ssl_context, "imaps", address, log, timeout)
                if tls_sock is None:
                    return
                sock = tls_sock
            session = Session(self, sock, address, tls)
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


def start(ctx: Any) -> IMAPService:
    svc = IMAPService(ctx)
    cfg = ctx.config.imap
    if cfg.port:
        svc.listen("imap", cfg.port, False, "STARTTLS, LOGIN after TLS")
    if cfg.tls_port:
        svc.listen("imaps", cfg.tls_port, True, "implicit TLS")
    ctx.services[svc.name] = svc
    return svc
