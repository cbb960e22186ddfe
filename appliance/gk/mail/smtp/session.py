"""One SMTP session: aiosmtpd's ``SMTP`` protocol class with GK's changes to the mechanics.

What aiosmtpd 1.4.6 does not do and this subclass adds:

- DATA streamed to a spool file (``data_stream.DataReceiver``) instead of a list of lines in
  memory, with an idle timeout *between* chunks (``smtp.data_idle_timeout``) instead of one
  timeout for the whole transfer, and SMTP-smuggling refusal;
- PIPELINING and ENHANCEDSTATUSCODES advertised, an enhanced code on every reply
  (``replies.enhance``), a ``421 4.4.2`` before a timeout closes the session;
- AUTH PLAIN/LOGIN checked by ``ctx.auth.login`` (throttling, lockout, security events) in a
  greenlet, never inside the coroutine; no AUTH at all on port 25;
- every delivery runs in a greenlet through ``bridge.in_greenlet``; policy questions
  (``policy.SMTPPolicy``: short SQLite reads that never yield) are asked in the coroutine itself;
- connection budgets per listener kind and client (``policy.ConnectionSlots``), an overall DATA
  deadline (``smtp.data_timeout``) besides the idle one, and error replies that slow down and
  end a session that keeps failing (``policy.ErrorBudget``: RCPT probing);
- any failure while DATA arrives (a full disk) turns the rest of the data into discarded bytes up
  to the final dot, then one reply and a fresh envelope: the body is never read as commands;
- stricter protocol: no STARTTLS once in TLS, and STARTTLS forgets the login (RFC 3207 §4.2);
  AUTH PLAIN refuses an authorization identity other than the user (RFC 4616 §2); an overlong
  line in an AUTH exchange is read to its end and refused; an unbalanced ``<`` in MAIL/RCPT is
  a syntax error.

Memory per session: the protocol objects (~10 KB), the stream buffer (bounded by
``smtp.max_line_length``) and one 64 KiB read chunk during DATA.
"""

from __future__ import annotations

import asyncio
import binascii
import collections
import errno
import logging
import random
import re
import ssl
from base64 import b64decode, b64encode
from typing import TYPE_CHECKING, Any

import aiosmtpd.smtp
import gevent
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, TLSSetupException, syntax

from gk.accounts import User, normalize_address
from gk.mail.delivery import Trace, protocol_keyword
from gk.mail.smtp.bridge import in_greenlet
from gk.mail.smtp.data_stream import DataReceiver
from gk.mail.smtp.policy import ErrorBudget, ListenerKind
from gk.mail.smtp.replies import enhance
from gk.mail.smtp.spool import SpoolWriter

if TYPE_CHECKING:
    from pathlib import Path

    from gk.mail.smtp.service import SMTPService

log = logging.getLogger("gk.smtp")

READ_CHUNK = 65536
# "<local@domain>" (or "<>") followed by optional parameters; local part without quotes or specials
# replies that may wait for the next pipelined command's reply (never 354, 334, 221, 421, 220)
_HOLDABLE = frozenset({b"250", b"251", b"252", b"452", b"501", b"503", b"550", b"551", b"552", b"553", b"555"})
_SIMPLE_ADDR = re.compile(r"^\s*<((?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+)?)>\s*(.*)$", re.DOTALL)
_TIMEOUT_TEXT = "Timeout waiting for the client; closing"
_queue_ids = random.Random()  # seeded once from os.urandom
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_sanitized_log = aiosmtpd.smtp.sanitized_log


def _sanitized_log_if_enabled(func: Any, msg: Any, *args: Any, **kwargs: Any) -> None:
    """aiosmtpd's ``sanitized_log`` (two calls per command line: a list built and an AUTH
    regex run on the line) only when its logger would write the record: GK keeps ``mail.log``
    at ERROR (``gk.server``), and the skipped work was ~1.5 % of the hub's time under SMTP load
    (py-spy, bench smtp_inbound). A logger turned up still gets every record, sanitized."""
    logger = getattr(func, "__self__", None)
    level = _LEVELS.get(getattr(func, "__name__", ""))
    if isinstance(logger, logging.Logger) and level is not None and not logger.isEnabledFor(level):
        return
    _sanitized_log(func, msg, *args, **kwargs)


aiosmtpd.smtp.sanitized_log = _sanitized_log_if_enabled  # the module global _handle_client calls


def utf8_ok(text: str) -> bool:
    """Whether a command's text was valid UTF-8: aiosmtpd decodes lines with ``surrogateescape``,
    and a path holding such an escape (``RCPT TO:<\xff@…>``) failed in SQLite with a 451 and a
    traceback instead of a syntax error."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def path_brackets_ok(arg: str) -> bool:
    """Whether the path of ``MAIL FROM:``/``RCPT TO:`` (keyword stripped, parameters may follow)
    has its angle brackets in order: ``<`` opens it, the first ``>`` outside a quoted local part
    closes it, then the end or a space before the parameters. A bare address (no brackets,
    tolerated as most MTAs do) may hold none. The email package's parser mends ``<broken``
    into an address, so this is checked before it runs."""
    s = arg.lstrip()
    if not s.startswith("<"):
        head = s.split(None, 1)[0] if s.strip() else ""
        return "<" not in head and ">" not in head
    quoted = escaped = False
    for i in range(1, len(s)):
        ch = s[i]
        if escaped:
            escaped = False
        elif quoted:
            if ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            return False
        elif ch == ">":
            rest = s[i + 1 :]
            return not rest or rest[0] in " \t"
    return False


def storage_reply(exc: BaseException) -> str:
    """The reply to a message that could not be stored while it arrived."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "452 4.3.1 Insufficient system storage; try again later"
    return "451 4.3.0 Local error while storing the message; try again later"


class GKEnvelope(Envelope):
    def __init__(self) -> None:
        super().__init__()
        self.local_users: dict[str, str | None] = {}  # RCPT address -> local user (None = remote)
        self.users: dict[str, User] = {}  # local user -> its record as RCPT read it (port 25)


class _Hooks:
    """aiosmtpd handler hooks: they only ask the policy (in the coroutine: no greenlet hop) and record the answer."""

    peer = "?"  # the client's address, for log lines (set when the connection is made)

    async def handle_EHLO(
        self, server: GKSMTP, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        out = [
            r
            for r in responses
            if not r.startswith("250-AUTH") or (server.kind.is_submission and r.strip() != "250-AUTH")
        ]
        out[-1:-1] = ["250-PIPELINING", "250-ENHANCEDSTATUSCODES"]
        return out

    async def handle_MAIL(
        self, server: GKSMTP, session: Any, envelope: GKEnvelope, address: str, options: list[str]
    ) -> str:
        # policy answers come from SQLite (C calls that never yield) — no greenlet hop needed
        reply = server.service.policy.mail_from(server.kind, server.gk_user, address)
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: GKSMTP, session: Any, envelope: GKEnvelope, address: str, options: list[str]
    ) -> str:
        decision = server.service.policy.rcpt_to(server.kind, server.gk_user, address, len(envelope.rcpt_tos))
        if decision.accepted:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(options)
            envelope.local_users[address] = decision.local_user
            if decision.user is not None:
                envelope.users[decision.user.address] = decision.user
        return decision.reply

    async def handle_exception(self, error: Exception) -> str:
        cause = error.__cause__ if isinstance(error, TLSSetupException) else error
        if isinstance(cause, ssl.SSLError):  # a client rejecting our certificate on STARTTLS
            log.info("smtp: TLS handshake with %s failed: %s", self.peer, cause.reason or cause)
            return "454 4.7.0 TLS not available"
        log.exception("SMTP session error", exc_info=error)
        return "451 4.3.0 Internal error; try again later"


class GKSMTP(SMTP):
    # narrower than aiosmtpd's: a stream connection's transport, the envelope of _create_envelope
    transport: asyncio.Transport | None
    envelope: GKEnvelope | None

    def __init__(self, service: SMTPService, kind: ListenerKind, loop: asyncio.AbstractEventLoop):
        cfg = service.cfg
        self.service = service
        self.kind = kind
        self.gk_user: Any = None
        self.busy = False
        self._deadline = 0.0  # loop time at which the session times out (see _reset_timeout)
        self._greeting_pending = True  # the greeting carries no enhanced code (RFC 2034 §3)
        self._raw_replies = False  # nor do the replies to EHLO/HELO
        self._replies: list[bytes] = []  # replies held back while pipelined commands wait
        self._slot_ip: str | None = None  # the client whose connection slot this session holds
        self._refusal: str | None = None  # the 421 for a connection over its budget
        self._timeout_text = _TIMEOUT_TEXT
        self.errors = ErrorBudget.from_config(cfg)
        self.junk = 0  # NOOP, RSET, VRFY, HELP since the last delivered message (_junk_command)
        self._parsed: tuple[str, tuple[str | None, str | None]] = ("", ("", ""))  # _getaddr's last
        self.line_length_limit = cfg.max_line_length
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
        implicit = kind is ListenerKind.SUBMISSIONS
        super().__init__(
            _Hooks(),
            data_size_limit=cfg.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=service.hostname,
            ident="GK ESMTP",
            tls_context=None if implicit else service.ssl_context,
            timeout=cfg.command_timeout,
            auth_require_tls=(not implicit) and cfg.require_tls_for_auth,
            auth_exclude_mechanism=[] if kind.is_submission else ["PLAIN", "LOGIN"],
            authenticator=lambda *a: AuthResult(success=False),
            loop=loop,
        )

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd parses every address with the email package's full RFC 5322 parser (~0.1 ms);
        the plain ``<local@domain>`` form is parsed here directly, anything else goes to it."""
        last_arg, last = self._parsed
        if arg == last_arg and arg:  # GK's MAIL/RCPT check parsed it; aiosmtpd's asks again
            return last
        m = _SIMPLE_ADDR.match(arg)
        if m:
            parsed: tuple[str | None, str | None] = (m.group(1) or "<>"), m.group(2)  # aiosmtpd's null sender is "<>"
        else:
            parsed = super()._getaddr(arg)
        self._parsed = (arg, parsed)
        return parsed

    def _create_envelope(self) -> GKEnvelope:
        return GKEnvelope()

    # -- connection bookkeeping ----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None
        super().connection_made(transport)
        if not first:
            # STARTTLS: aiosmtpd made a new session (HELO, AUTH) and envelope; GK's login goes too
            # (RFC 3207 §4.2: nothing learned before TLS counts after it)
            self.gk_user = None
            self._replies.clear()
        if first:
            self.service.sessions.add(self)
            self._refusal = self.service.slots.acquire(self.kind, self.peer_ip)
            if self._refusal is None:
                self._slot_ip = self.peer_ip
            peer = transport.get_extra_info("peername")
            self.event_handler.peer = str(peer[0]) if peer else "?"
            if hasattr(transport, "max_size"):
                # asyncio reads up to 256 KiB per recv: glibc serves that with mmap + munmap on
                # every read; 64 KiB (READ_CHUNK) comes from the heap
                transport.max_size = READ_CHUNK  # type: ignore[attr-defined]

    def connection_lost(self, error: Exception | None) -> None:
        self.service.sessions.discard(self)
        if self._slot_ip is not None:
            self.service.slots.release(self.kind, self._slot_ip)
            self._slot_ip = None
        super().connection_lost(error)

    async def _handle_client(self) -> None:
        if self._refusal is not None:
            self._greeting_pending = False
            log.info("refused connection from %s on %s: %s", self.peer_ip, self.kind.value, self._refusal)
            await self.push(self._refusal)
            if self.transport is not None:
                self.transport.close()
            return
        await super()._handle_client()

    def _reset_timeout(self, duration: float | None = None) -> None:
        """aiosmtpd cancels and re-creates a timer on every command and DATA chunk (a heap push
        each; the cancelled ones pile up in the loop's heap): here one timer stays armed and only
        the deadline moves; the timer re-arms itself when it fires early."""
        self._deadline = self.loop.time() + (duration or self._timeout_duration)
        handle = self._timeout_handle
        if handle is None or handle.cancelled() or handle.when() > self._deadline:
            if handle is not None:
                handle.cancel()
            self._timeout_handle = self.loop.call_at(self._deadline, self._timeout_due)

    def _timeout_due(self) -> None:
        if self.loop.time() < self._deadline:
            self._timeout_handle = self.loop.call_at(self._deadline, self._timeout_due)
        else:
            self._timeout_cb()

    def _timeout_cb(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(f"421 4.4.2 {self.hostname} {self._timeout_text}\r\n".encode())
        super()._timeout_cb()

    def goodbye(self, reply: str = "421 4.3.2 Service shutting down; try again later") -> None:
        """Close an idle session (server stopping)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(reply.encode() + b"\r\n")
            self.transport.close()

    # -- replies --------------------------------------------------------------------------
    async def push(self, status: str | bytes) -> None:
        if isinstance(status, str):
            if self._greeting_pending:
                self._greeting_pending = False
            elif not self._raw_replies:
                status = enhance(status)
            status = status.encode("utf-8" if self.enable_SMTPUTF8 else "ascii", "replace")
        verdict = self.errors.record(status)
        if verdict.delay:
            await asyncio.sleep(verdict.delay)
        self._replies.append(status + b"\r\n")
        if verdict.disconnect:
            await self._close_after_errors()
            return
        # RFC 2920: while pipelined commands wait in the buffer, their replies go out together
        if status[:3] in _HOLDABLE and b"\n" in self._reader._buffer:  # type: ignore[attr-defined]
            return
        out = b"".join(self._replies)
        self._replies.clear()
        self._writer.write(out)
        await self._writer.drain()

    async def _close_after_errors(self) -> None:
        log.info("closing session from %s on %s: %d errors", self.peer_ip, self.kind.value, self.errors.errors)
        self._replies.append(enhance(ErrorBudget.TOO_MANY).encode() + b"\r\n")
        out = b"".join(self._replies)
        self._replies.clear()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(out)
            self.transport.close()
        # like QUIT: the command loop ends at its next await, pipelined commands stay unread
        if self._handler_coroutine is not None:
            self._handler_coroutine.cancel()

    # -- junk commands (Postfix's smtpd_junk_command_limit) ----------------------------------
    # A client that only keeps its session open (a NOOP just inside command_timeout, for hours)
    # holds one of port 25's slots for nothing. Past ``junk_command_limit`` such commands since
    # the last message delivered, each counts as an error: delayed past soft_error_limit, the
    # session closed at hard_error_limit (421 4.7.0), as Postfix does by default.
    async def _junk_command(self) -> bool:
        """Count a junk command; True if the session was closed for it."""
        self.junk += 1
        if self.junk <= self.service.cfg.junk_command_limit:
            return False
        verdict = self.errors.count()
        if verdict.delay:
            await asyncio.sleep(verdict.delay)
        if verdict.disconnect:
            await self._close_after_errors()
            return True
        return False

    @syntax("NOOP [ignored]")  # HELP lists it as aiosmtpd does
    async def smtp_NOOP(self, arg: str) -> None:
        if not await self._junk_command():
            await super().smtp_NOOP(arg)

    @syntax("RSET")  # HELP lists it as aiosmtpd does
    async def smtp_RSET(self, arg: str) -> None:
        if not await self._junk_command():
            await super().smtp_RSET(arg)

    @syntax("VRFY <address>")  # HELP lists it as aiosmtpd does
    async def smtp_VRFY(self, arg: str) -> None:
        if not await self._junk_command():
            await super().smtp_VRFY(arg)

    @syntax("HELP [command]")  # HELP lists it as aiosmtpd does
    async def smtp_HELP(self, arg: str) -> None:
        if not await self._junk_command():
            await super().smtp_HELP(arg)

    async def smtp_EHLO(self, hostname: str) -> None:
        # aiosmtpd adds to the MAIL line limit at every EHLO: start from the base each time
        self.command_size_limits.clear()
        self._raw_replies = True
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self._raw_replies = False

    async def smtp_HELO(self, hostname: str) -> None:
        self._raw_replies = True
        try:
            await super().smtp_HELO(hostname)
        finally:
            self._raw_replies = False

    async def smtp_STARTTLS(self, arg: str) -> None:
        if self._tls_protocol is not None or self.kind is ListenerKind.SUBMISSIONS:
            await self.push("503 5.5.1 TLS is already active")  # RFC 3207 §4.2: no second STARTTLS
            return
        await super().smtp_STARTTLS(arg)

    # -- MAIL, RCPT -----------------------------------------------------------------------
    async def smtp_MAIL(self, arg: str | None) -> None:
        if arg is not None and self.session is not None and self.session.host_name:
            path = self._strip_command_keyword("FROM:", arg)
            if path is not None and (not utf8_ok(path) or not path_brackets_ok(path) or self._getaddr(path)[0] is None):
                await self.push("501 5.1.7 Bad sender address syntax")
                return
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str | None) -> None:
        if arg is not None and self.session is not None and self.session.host_name and self.envelope is not None:
            path = self._strip_command_keyword("TO:", arg) if self.envelope.mail_from else None
            if path is not None and (not utf8_ok(path) or not path_brackets_ok(path) or self._getaddr(path)[0] is None):
                await self.push("501 5.1.3 Bad recipient address syntax")
                return
        await super().smtp_RCPT(arg)

    # -- AUTH -----------------------------------------------------------------------------
    async def smtp_AUTH(self, arg: str) -> None:
        if not self.kind.is_submission:
            await self.push("502 5.5.1 AUTH is not offered on this port; use the submission port")
            return
        await super().smtp_AUTH(arg)

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
        if len(args) == 1:
            blob = await self.challenge_auth("")
            if not isinstance(blob, bytes):
                return AuthResult(success=False, handled=True)
        else:
            try:
                blob = b64decode(args[1].encode(), validate=True)
            except (binascii.Error, ValueError):
                await self.push("501 5.5.2 Cannot decode base64")
                return AuthResult(success=False, handled=True)
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            await self.push("501 5.5.2 Cannot split AUTH PLAIN value")
            return AuthResult(success=False, handled=True)
        authzid, authcid = (p.decode("utf-8", "replace") for p in parts[:2])
        if authzid and normalize_address(authzid) != normalize_address(authcid):
            # RFC 4616 §2: the server fails an identity it cannot authorize (IMAP refuses it too);
            # no password is checked, so this tells a guesser nothing
            log.info("AUTH PLAIN from %s: authorization identity differs from the user", self.peer_ip)
            return AuthResult(success=False, handled=False, message="535 5.7.8 Acting as another user is not allowed")
        return await self._login(parts[1], parts[2])

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:
        if len(args) == 1:
            login = await self.challenge_auth(self.AuthLoginUsernameChallenge)
            if not isinstance(login, bytes):
                return AuthResult(success=False, handled=True)
        else:
            try:
                login = b64decode(args[1].encode(), validate=True)
            except (binascii.Error, ValueError):
                await self.push("501 5.5.2 Cannot decode base64")
                return AuthResult(success=False, handled=True)
        password = await self.challenge_auth(self.AuthLoginPasswordChallenge)
        if not isinstance(password, bytes):
            return AuthResult(success=False, handled=True)
        return await self._login(login, password)

    async def challenge_auth(
        self, challenge: str | bytes, encode_to_b64: bool = True, log_client_response: bool = False
    ) -> Any:
        """aiosmtpd's, with the answer line read to its end whatever its length: its
        ``readline`` raised on a line over the limit (``451`` and a traceback) and left the
        rest of the line to be read as commands."""
        raw = challenge.encode() if isinstance(challenge, str) else challenge
        await self.push(b"334 " + (b64encode(raw) if encode_to_b64 else raw))
        line = await self._read_line()
        if line is None:
            await self.push(f"500 5.5.6 Line too long: the limit is {self.line_length_limit} bytes")
            return MISSING
        blob = line.strip()
        if blob == b"*":
            await self.push("501 5.7.0 Auth aborted")
            return MISSING
        try:
            return b64decode(blob, validate=True)
        except (binascii.Error, ValueError):
            await self.push("501 5.5.2 Cannot decode base64")
            return MISSING

    async def _read_line(self) -> bytes | None:
        """The next line, or None after reading and dropping a line over the limit."""
        try:
            return await self._reader.readuntil()
        except asyncio.IncompleteReadError as exc:
            raise ConnectionResetError("client closed the connection") from exc
        except asyncio.LimitOverrunError as exc:
            consumed = exc.consumed
        while True:
            await self._reader.readexactly(consumed)
            try:
                await self._reader.readuntil()
                return None
            except asyncio.IncompleteReadError as exc:
                raise ConnectionResetError("client closed the connection") from exc
            except asyncio.LimitOverrunError as exc:
                consumed = exc.consumed

    async def _login(self, login: bytes, password: bytes) -> AuthResult:
        try:
            address, secret = login.decode("utf-8"), password.decode("utf-8")
        except UnicodeDecodeError:
            address, secret = login.decode("utf-8", "replace"), ""
        ctx = self.service.ctx
        result = await in_greenlet(ctx.auth.login, address, secret, self.peer_ip, self.kind.value)
        if result.ok:
            self.gk_user = result.user
            return AuthResult(success=True, auth_data=LoginPassword(login, b""))
        if result.locked:
            return AuthResult(success=False, handled=False, message="454 4.7.0 Too many failed logins; try again later")
        return AuthResult(success=False, handled=False, message="535 5.7.8 Authentication credentials invalid")

    # -- DATA -----------------------------------------------------------------------------
    @property
    def peer_ip(self) -> str:
        peer = self.session.peer if self.session else None
        return str(peer[0]) if isinstance(peer, tuple) and peer else ""

    def tls_description(self) -> str:
        ssl_obj = self.transport.get_extra_info("ssl_object") if self.transport else None
        if ssl_obj is None:
            return ""
        cipher = ssl_obj.cipher() or ("", "", 0)
        return f"{ssl_obj.version()} {cipher[0]} {cipher[2]} bits"

    def trace(self) -> Trace:
        assert self.session is not None
        tls = self.tls_description()
        return Trace(
            helo=self.session.host_name or "",
            peer_ip=self.peer_ip,
            protocol=protocol_keyword(self.session.extended_smtp, bool(tls), self.gk_user is not None),
            tls=tls,
            auth_user=self.gk_user.address if self.gk_user is not None else "",
            queue_id=f"{_queue_ids.getrandbits(48):012X}",  # a name in logs, no secret: no system call
        )

    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        assert self.envelope is not None and self.session is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 5.5.1 Need RCPT command first")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        spool = SpoolWriter(self.service.new_spool_path)
        receiver = DataReceiver(spool, max_size=self.service.cfg.max_message_size, max_line=self.line_length_limit)
        self.busy = True
        handed_over = False
        try:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            try:
                await self._receive(spool, receiver)
            except (ConnectionError, asyncio.CancelledError):
                raise
            except Exception as exc:
                # where the data ends is unknown now: close rather than read the rest as commands
                log.exception("SMTP session from %s: error during DATA", self.peer_ip)
                if self.transport is not None and not self.transport.is_closing():
                    self.transport.write(b"421 4.3.0 Internal error while receiving the message; closing\r\n")
                    self.transport.close()
                raise ConnectionResetError("session closed after an error during DATA") from exc
            self._reset_timeout()
            reply = receiver.error
            if reply is None:
                try:
                    message: Path | bytes | None = spool.finish_in_memory()
                    if not message:
                        message = await in_greenlet(spool.finish, shield=True)
                except Exception as exc:  # OSError: disk full while writing the last part
                    log.warning("could not store the message from %s: %s", self.peer_ip, exc)
                    reply = storage_reply(exc)
                else:
                    envelope = self.envelope
                    handed_over = True
                    reply = await in_greenlet(
                        self.service.accept,
                        self.kind,
                        self.gk_user,
                        self.trace(),
                        "" if envelope.mail_from in (None, "<>") else envelope.mail_from,
                        dict(envelope.local_users),
                        message,
                        receiver.size,
                        dict(envelope.users),
                        shield=True,
                    )
            else:
                log.info("refused DATA from %s: %s", self.peer_ip, reply)
        finally:
            self.busy = False
            if not handed_over:
                gevent.spawn(spool.discard)
        assert reply is not None  # refused, or set by the store or the delivery
        self._set_post_data_state()
        if reply.startswith("2"):
            self.errors.delivered()
            self.junk = 0
        await self.push(reply)

    async def _receive(self, spool: SpoolWriter, receiver: DataReceiver) -> None:
        """Read DATA up to the final dot into ``receiver``. A spool write that fails (full
        disk) only stops the storing: the rest is still read, to the final dot, and dropped,
        and the receiver's error gives the reply. Times out after ``data_idle_timeout`` of
        silence or ``data_timeout`` in all, whichever comes first (421 4.4.2, closed)."""
        cfg = self.service.cfg
        idle = cfg.data_idle_timeout
        deadline = self.loop.time() + cfg.data_timeout
        try:
            while True:
                remaining = deadline - self.loop.time()
                if remaining < idle:
                    self._timeout_text = f"DATA not finished within {cfg.data_timeout:g} seconds; closing"
                if remaining <= 0:
                    self._timeout_cb()
                    raise ConnectionResetError("DATA deadline passed")
                self._reset_timeout(min(idle, remaining))
                chunk = await self._reader.read(READ_CHUNK)
                if not chunk:
                    raise ConnectionResetError("client closed the connection during DATA")
                done = receiver.feed(chunk)
                if spool.needs_flush and not receiver.refused:
                    # the server's own disk work is no client silence: the idle timer waits for it
                    if self._timeout_handle is not None:
                        self._timeout_handle.cancel()
                    try:
                        await in_greenlet(spool.flush, shield=True)
                    except Exception as exc:  # OSError: disk full, I/O error
                        log.warning("could not spool DATA from %s: %s; dropping the rest", self.peer_ip, exc)
                        receiver.fail(storage_reply(exc))
                if done:
                    break
        finally:
            self._timeout_text = _TIMEOUT_TEXT
        if receiver.leftover:
            # pipelined commands after the final dot go back to the command reader
            self._reader._buffer[0:0] = receiver.leftover  # type: ignore[attr-defined]
