"""The SMTP service of ``gk serve``: listeners on 25 (MX), 587 (STARTTLS) and 465 (implicit TLS).

aiosmtpd runs on the gevent hub: an ``asyncio_gevent`` event loop runs in its own greenlet and
the listeners are created on it with ``asyncio.run_coroutine_threadsafe`` (the gevent→asyncio
direction DESIGN.md measured). Accepted messages are handled in greenlets (``accept``):
inbound mail gets SPF/DKIM/DMARC checks and local delivery (mail claiming one of the box's own
domains in From fails DMARC under p=reject unless SPF or DKIM aligned with it passed, published
record or not: ``gk.mail.authcheck.dmarc.own_domain``); submitted mail goes through
``gk.mail.submission.submit``.

``stop(grace)`` closes the listeners, says ``421`` to idle sessions, lets sessions inside DATA
or delivery finish for up to ``grace`` seconds, then closes the rest (their spool files are
removed; nothing half-written ever reaches ``new/``).

Cost: the asyncio loop and three listening sockets; ~10 KB per open session; DATA streams to
``DATA_DIR/spool/smtp-in/`` so memory does not grow with message size.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import socket
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gevent
import gevent.monkey
import gevent.select

from gk import pools
from gk.accounts import User
from gk.context import AppContext
from gk.mail import submission
from gk.mail.authcheck import InboundChecker
from gk.mail.delivery import Target, Trace, get_delivery, quota, received
from gk.mail.dnsresolver import make_resolver
from gk.mail.mailbox import unique_name
from gk.mail.smtp import forward, spool, srs
from gk.mail.smtp.policy import ConnectionSlots, ListenerKind, SMTPPolicy

if TYPE_CHECKING:
    from gk.mail.smtp.session import GKSMTP

log = logging.getLogger("gk.smtp")

_QUIET_ERRORS = (ssl.SSLError, ConnectionError, TimeoutError)
SESSION_MODULE = "gk.mail.smtp.session"
BACKLOG = 128


_RawSocket: type[socket.socket] = gevent.monkey.get_original("socket", "socket")


class _RawListener(_RawSocket):  # type: ignore[misc,valid-type]
    """A listening socket whose accepted connections are standard sockets too (the standard
    ``accept`` builds them with the module's ``socket`` class, which is gevent's once patched)."""

    def accept(self) -> tuple[socket.socket, object]:
        fd, addr = self._accept()  # type: ignore[attr-defined]
        return _RawSocket(self.family, self.type, self.proto, fileno=fd), addr


def listening_sockets(host: str, port: int) -> list[socket.socket]:
    """Bound sockets for ``host``:``port`` the way ``loop.create_server(host, port)`` makes them
    (one per address the name resolves to, SO_REUSEADDR, IPv6-only for IPv6), but of the
    standard library's own socket class, not gevent's: asyncio's transports call ``recv`` and
    ``send`` on the sockets of the connections these accept, and gevent's wrapper (which
    asyncio's non-blocking calls never need: the loop's selector waits) cost ~1.3 µs a call,
    ~2 % of the hub's time under SMTP load (py-spy, bench smtp_inbound)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    out: list[socket.socket] = []
    try:
        for af, kind, proto, _, addr in dict.fromkeys(infos):
            sock: socket.socket = _RawListener(af, kind, proto)
            out.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if af == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(addr)
            except OSError as err:
                raise OSError(
                    err.errno, f"error while attempting to bind on address {addr!r}: {err.strerror}"
                ) from None
    except BaseException:
        for made in out:
            made.close()
        raise
    return out


class SMTPService:
    name = "smtp"

    @property
    def hostname(self) -> str:
        """The greeting's and Received's name: the context's, which follows a change in the settings."""
        return self.ctx.hostname

    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        self.cfg = ctx.config.smtp
        self.ssl_context = ctx.ssl_context
        self.policy = SMTPPolicy(ctx, self.cfg.max_recipients)
        self.delivery = get_delivery(ctx)
        self.checker = InboundChecker(
            make_resolver(ctx.config.dns, cache_size=2048),
            # the name delivery strips forged copies of and readers trust (gk.mail.authcheck.sender)
            ctx.authserv_id,
            check_spf=self.cfg.check_spf,
            check_dkim=self.cfg.check_dkim,
            check_dmarc=self.cfg.check_dmarc,
            dkim_max_size=self.cfg.dkim_max_verify_size,
            # port 25 mail whose From names one of the box's own domains must authenticate
            # (gk.mail.authcheck.dmarc.own_domain): only submission (587/465) carries theirs
            is_local_domain=ctx.accounts.is_local_domain,
        )
        self.spool_dir = ctx.data_dir / "spool" / "smtp-in"
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        for leftover in self.spool_dir.iterdir():  # never acknowledged: a crash interrupted them
            leftover.unlink(missing_ok=True)
        self.sessions: set[GKSMTP] = set()
        self.slots = ConnectionSlots.from_config(self.cfg)  # MX and submission budgets, per client
        self.accepting = 0  # deliveries in progress (they finish even if their client left)
        self.listeners: list[tuple[str, str, int]] = []
        self.loop: asyncio.AbstractEventLoop = asyncio.new_event_loop()
        self.loop.set_exception_handler(self._loop_error)
        self._loop_greenlet = gevent.spawn(self.loop.run_forever)
        self._servers: list[asyncio.base_events.Server] = []
        # listening sockets not yet handed to the loop, and the greenlet that hands them over
        self._unserved: list[tuple[Callable[[], GKSMTP], socket.socket, ssl.SSLContext | None]] = []
        self._waiter: gevent.Greenlet | None = None
        self._counter = 0

    # -- life cycle -------------------------------------------------------------------------
    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, _QUIET_ERRORS):
            log.debug("smtp connection error: %s", exc)
        else:
            log.warning("smtp event loop: %s", context.get("message"), exc_info=exc)

    def listen(self) -> None:
        bind = self.ctx.config.server.bind
        plan = [
            (ListenerKind.INBOUND, "smtp", self.cfg.port, None, "STARTTLS, no AUTH, local domains only"),
            (ListenerKind.SUBMISSION, "smtp-submission", self.cfg.submission_port, None, "STARTTLS, AUTH after TLS"),
            (
                ListenerKind.SUBMISSIONS,
                "smtp-submissions",
                self.cfg.submissions_port,
                self.ssl_context,
                "implicit TLS, AUTH",
            ),
        ]
        for kind, label, port, tls, note in plan:
            if not port:
                continue

            def factory(kind: ListenerKind = kind) -> GKSMTP:
                from gk.mail.smtp.session import GKSMTP  # imported before any listener serves

                return GKSMTP(self, kind, self.loop)

            for sock in listening_sockets(bind, port):
                sock.listen(BACKLOG)  # connections wait in the kernel until the loop serves it
                self._unserved.append((factory, sock, tls))
            self.listeners.append((label, bind, port))
            log.info("listening %s on %s:%d (%s)", label, bind, port, note)
        if self._unserved:
            self._waiter = gevent.spawn(self._serve_from_first_connection)

    def _serve_from_first_connection(self) -> None:
        """aiosmtpd (with attrs) and the session module load at the first connection, not at
        start: ~1.4 MB of RSS an idle box does not carry (docs/performance.md). Imported on the
        hub by the loop's protocol factory, they held every other connection for ~45 ms; here the
        listeners are handed to the loop only once a connection waits on one of them and the
        import has run in the CPU pool (the connection waits in the listen backlog meanwhile)."""
        socks = [sock for _, sock, _ in self._unserved]
        if SESSION_MODULE not in sys.modules:
            gevent.select.select(socks, [], [])
            pools.run_cpu(importlib.import_module, SESSION_MODULE)
        unserved, self._unserved = self._unserved, []
        for factory, sock, tls in unserved:
            coro = self.loop.create_server(factory, sock=sock, ssl=tls, backlog=BACKLOG)
            self._servers.append(asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30))

    def stop(self, grace: float) -> None:
        if self._waiter is not None:
            self._waiter.kill()
        for _, sock, _ in self._unserved:  # no connection came: never handed to the loop
            sock.close()
        self._unserved = []
        try:
            asyncio.run_coroutine_threadsafe(self._drain(grace), self.loop).result(timeout=grace + 10)
        except Exception:
            log.exception("smtp: error while draining sessions")
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._loop_greenlet.join(timeout=5)

    async def _drain(self, grace: float) -> None:
        for server in self._servers:
            server.close()
        deadline = time.monotonic() + grace
        while True:
            for sess in list(self.sessions):
                if not sess.busy:
                    sess.goodbye()
            if (not any(s.busy for s in self.sessions) and self.accepting == 0) or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.05)
        for sess in list(self.sessions):
            sess.goodbye("421 4.3.2 Service shutting down")
        await asyncio.sleep(0)

    # -- messages ---------------------------------------------------------------------------
    def new_spool_path(self) -> Path:
        self._counter += 1
        return self.spool_dir / f"{unique_name()}.{self._counter}"

    def accept(
        self,
        kind: ListenerKind,
        user: User | None,
        trace: Trace,
        mail_from: str,
        recipients: dict[str, str | None],
        message: Path | bytes,
        size: int,
        users: dict[str, User] | None = None,
    ) -> str:
        """Deliver or queue one received message (runs in a greenlet); returns the SMTP reply.
        ``users``: the recipients' records as RCPT read them (local user -> User), so DATA
        reads none of them again (quota, forwards)."""
        known = users or {}
        self.accepting += 1
        try:
            for address, owner in recipients.items():
                if owner is None:
                    continue
                record = known.get(owner)
                quota_mb = record.quota_mb if record is not None else None
                if quota.exceeded(self.ctx, owner, size, quota_mb=quota_mb):
                    return quota.FULL_DATA.format(address=address)
            if kind.is_submission:
                if user is None:
                    return "530 5.7.0 Authentication required"
                result = submission.submit(self.ctx, user, message, list(recipients), mail_from, trace=trace)
                log.info(
                    "accepted %s from %s (user %s) for %d local, %d remote recipient(s), %d bytes",
                    trace.queue_id,
                    trace.peer_ip,
                    user.address,
                    len(result.delivered),
                    len(result.queued),
                    size,
                )
                return f"250 2.0.0 OK: queued as {trace.queue_id}"
            return self._accept_inbound(trace, mail_from, recipients, message, size, known)
        except submission.SubmissionError as exc:
            return exc.reply
        except Exception:
            log.exception("delivery of %s failed", trace.queue_id)
            return "451 4.3.0 Local delivery failed; try again later"
        finally:
            self.accepting -= 1
            spool.remove(message)

    def _accept_inbound(
        self,
        trace: Trace,
        mail_from: str,
        recipients: dict[str, str | None],
        message: Path | bytes,
        size: int,
        users: dict[str, User],
    ) -> str:
        outcome = self.checker.check(message, size, trace.peer_ip, trace.helo, mail_from)
        folder = "INBOX"
        failed = outcome.dmarc_policy_failed
        if failed:
            domain = outcome.dmarc.from_domain if outcome.dmarc else ""
            if failed == "reject" and self.cfg.dmarc_reject_action == "reject":
                log.info("rejected %s from %s: DMARC p=reject of %s failed", trace.queue_id, trace.peer_ip, domain)
                return f"550 5.7.1 Message rejected: it fails the DMARC policy of {domain}"
            folder = "Junk"
        targets = [Target(rcpt, user, folder) for rcpt, user in recipients.items() if user]
        bounces = [rcpt for rcpt, user in recipients.items() if not user and srs.is_srs(rcpt)]
        if bounces:  # to the SRS address of a forward: back to the original sender
            unsent = forward.send_back(self.ctx, bounces, message, outcome.header + received(trace, self.hostname))
            if unsent:
                return "451 4.3.0 The bounce could not be queued; try again later"
        if not targets and bounces:
            return f"250 2.0.0 OK: sent back as {trace.queue_id}"
        if not targets:
            return "554 5.5.1 No valid recipients"
        common = outcome.header + received(trace, self.hostname, targets[0].rcpt if len(targets) == 1 else None)
        targets, outside = forward.plan(self.ctx, targets, users)
        if outside:  # queued first: a forward that cannot be queued keeps its copy here
            unsent = forward.send(self.ctx, outside, message, common, mail_from)
            kept = {t.user for t in targets}
            targets += [Target(u, u, folder) for u in unsent if u not in kept]
        if targets:
            self.delivery.deliver(message, targets, common, mail_from)
        log.info(
            "delivered %s from %s <%s> to %d recipient(s) in %s, %d bytes",
            trace.queue_id,
            trace.peer_ip,
            mail_from,
            len(targets),
            folder,
            size,
        )
        return f"250 2.0.0 OK: delivered as {trace.queue_id}"


def start(ctx: AppContext) -> SMTPService:
    service = SMTPService(ctx)
    try:
        service.listen()
    except BaseException:
        service.stop(0)
        raise
    return service
