"""The SMTP client that carries queued mail to a remote MX or the smarthost.

Built on the stdlib ``smtplib`` (cooperative under gevent's monkey-patching): it speaks
EHLO/STARTTLS/AUTH correctly, and GK adds what a relaying MTA needs around it:

- connecting to a resolved address while naming the MX host (SNI and certificate checks use
  the host name, not the IP);
- STARTTLS whenever offered: first with certificate verification (system CAs plus
  ``queue.ca_file``); when the peer's certificate does not verify, the session is redone
  with an unverified context and recorded as ``tls=unverified`` — unless the policy
  requires verification (MTA-STS ``enforce``, smarthost with credentials), then the host is
  skipped with the reason; when the TLS handshake itself fails, the session is redone
  without STARTTLS (opportunistic TLS, as Postfix does) unless TLS is required;
- per-recipient RCPT results and a DATA phase that streams the spool file line by line
  (``wire.wire_lines``) in 64 KiB writes with dot-stuffing, so a large message is never held
  in memory;
- one ``Session`` reused for several messages to the same destination.

Replies: a garbled reply line is code -1 (smtplib), treated like a ``4xx``; a dropped
connection or timeout is a temporary failure of every recipient in flight.
Cost: one socket and ~100 KB of TLS state per session; no threads.
"""

from __future__ import annotations

import logging
import smtplib
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from gk.mail.outbound.wire import wire_lines

log = logging.getLogger("gk.mail.outbound")

CHUNK = 64 * 1024


class TemporaryFailure(Exception):
    """Try again later (connection refused, timeout, 4xx, TLS policy not met)."""


@dataclass
class TLSPolicy:
    ca_file: str = ""
    require_verified: bool = False  # MTA-STS enforce, or a smarthost we log in to
    require_tls: bool = False
    reason: str = ""  # why verification is required (for the log)


@dataclass
class Target:
    host: str  # the name the certificate must carry
    address: str  # the IP to connect to
    port: int


@dataclass
class RecipientResult:
    rcpt: str
    code: int
    text: str

    @property
    def outcome(self) -> str:
        if 200 <= self.code < 300:
            return "sent"
        if 500 <= self.code < 600:
            return "perm"
        return "temp"


@dataclass
class Auth:
    username: str
    password: str


def _client_context(ca_file: str, verify: bool) -> ssl.SSLContext:
    if not verify:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx = ssl.create_default_context()
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    return ctx


class _SMTP(smtplib.SMTP):
    """smtplib.SMTP that connects to a given IP while using the host name for TLS."""

    def __init__(self, address: str, hostname: str, **kwargs):  # type: ignore[no-untyped-def]
        self._address = address
        super().__init__(**kwargs)
        self._host = hostname  # smtplib uses it as server_hostname for STARTTLS

    def _get_socket(self, host, port, timeout):  # type: ignore[no-untyped-def]
        return socket.create_connection((self._address, port), timeout, self.source_address)


class _SMTPSSL(smtplib.SMTP_SSL):
    def __init__(self, address: str, hostname: str, **kwargs):  # type: ignore[no-untyped-def]
        self._address = address
        super().__init__(**kwargs)
        self._host = hostname  # smtplib uses it as server_hostname for STARTTLS

    def _get_socket(self, host, port, timeout):  # type: ignore[no-untyped-def]
        sock = socket.create_connection((self._address, port), timeout, self.source_address)
        return self.context.wrap_socket(sock, server_hostname=host)


def _reply_text(msg: bytes | str) -> str:
    if isinstance(msg, bytes):
        msg = msg.decode("utf-8", "replace")
    return " ".join(msg.split())[:400]


@dataclass
class Session:
    target: Target
    smtp: smtplib.SMTP
    tls: str  # "verified", "unverified", "implicit", "none"
    tls_detail: str = ""
    broken: bool = False
    messages: int = 0
    extensions: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.target.host}[{self.target.address}]:{self.target.port}"

    def send(self, mail_from: str, recipients: list[str], spool: Path, size: int) -> list[RecipientResult]:
        """One transaction; per-recipient results. Raises TemporaryFailure when the session breaks."""
        smtp = self.smtp
        try:
            if self.messages:
                code, msg = smtp.rset()
                if code != 250:
                    raise TemporaryFailure(f"RSET answered {code} {_reply_text(msg)}")
            self.messages += 1
            options = [f"SIZE={size}"] if smtp.has_extn("size") else []
            if smtp.has_extn("8bitmime"):
                options.append("BODY=8BITMIME")
            code, msg = smtp.mail(mail_from, options)
            if code != 250:
                return [RecipientResult(r, code, f"MAIL FROM: {code} {_reply_text(msg)}") for r in recipients]
            results: dict[str, RecipientResult] = {}
            accepted: list[str] = []
            for rcpt in recipients:
                code, msg = smtp.rcpt(rcpt)
                if code in (250, 251):
                    accepted.append(rcpt)
                else:
                    results[rcpt] = RecipientResult(rcpt, code, f"RCPT TO: {code} {_reply_text(msg)}")
            if not accepted:
                smtp.rset()
                self.messages = 0
                return [results[r] for r in recipients]
            smtp.putcmd("data")
            code, msg = smtp.getreply()
            if code != 354:
                smtp.rset()
                self.messages = 0
                for r in accepted:
                    results[r] = RecipientResult(r, code, f"DATA: {code} {_reply_text(msg)}")
                return [results[r] for r in recipients]
            self._stream(spool)
            code, msg = smtp.getreply()
            for r in accepted:
                results[r] = RecipientResult(r, code, f"{code} {_reply_text(msg)}")
            if code < 200 or code >= 600:
                self.broken = True  # garbled reply: the session state is unknown
            return [results[r] for r in recipients]
        except (smtplib.SMTPException, OSError) as exc:
            self.broken = True
            raise TemporaryFailure(f"{self.label}: connection lost: {exc or type(exc).__name__}") from exc

    def _stream(self, spool: Path) -> None:
        """Send the file as DATA: CRLF lines (``wire_lines``), leading dots doubled, then the final dot."""
        sock = self.smtp.sock
        assert sock is not None
        buf = bytearray()
        with open(spool, "rb") as f:
            for line in wire_lines(f):
                if line.startswith(b"."):
                    buf += b"."
                buf += line
                if len(buf) >= CHUNK:
                    sock.sendall(bytes(buf))
                    buf.clear()
        buf += b".\r\n"
        sock.sendall(bytes(buf))

    def close(self) -> None:
        try:
            if not self.broken:
                self.smtp.quit()
            else:
                self.smtp.close()
        except (smtplib.SMTPException, OSError):
            self.smtp.close()


def _handshake(
    target: Target,
    ehlo_name: str,
    policy: TLSPolicy,
    *,
    verify: bool,
    implicit_tls: bool,
    starttls: bool,
    connect_timeout: float,
    command_timeout: float,
) -> Session:
    ctx = _client_context(policy.ca_file, verify)
    smtp: smtplib.SMTP
    if implicit_tls:
        smtp = _SMTPSSL(target.address, target.host, local_hostname=ehlo_name, timeout=connect_timeout, context=ctx)
    else:
        smtp = _SMTP(target.address, target.host, local_hostname=ehlo_name, timeout=connect_timeout)
    try:
        code, msg = smtp.connect(target.host, target.port)
        if smtp.sock is not None:
            smtp.sock.settimeout(command_timeout)
        if code != 220:
            raise TemporaryFailure(f"greeting {code} {_reply_text(msg)}")
        code, msg = smtp.ehlo()
        if code != 250:
            code, msg = smtp.helo()
            if code != 250:
                raise TemporaryFailure(f"EHLO/HELO answered {code} {_reply_text(msg)}")
        tls = "implicit-verified" if implicit_tls and verify else "implicit-unverified" if implicit_tls else "none"
        detail = ""
        if not implicit_tls and starttls and smtp.has_extn("starttls"):
            try:
                code, msg = smtp.starttls(context=ctx)
            except ConnectionError as exc:
                # the peer dropped the connection in the handshake rather than sending an alert
                # (an OpenSSL that finds no protocol or cipher it may use resets): a failed
                # handshake all the same, which opportunistic TLS answers in plain text (connect)
                raise ssl.SSLError(f"connection lost in the TLS handshake: {exc}") from exc
            if code != 220:
                raise TemporaryFailure(f"STARTTLS answered {code} {_reply_text(msg)}")
            smtp.sock.settimeout(command_timeout)  # type: ignore[union-attr]
            tls = "verified" if verify else "unverified"
            code, msg = smtp.ehlo()
            if code != 250:
                raise TemporaryFailure(f"EHLO after STARTTLS answered {code} {_reply_text(msg)}")
        if tls != "none" and isinstance(smtp.sock, ssl.SSLSocket):
            detail = f"{smtp.sock.version()} {(smtp.sock.cipher() or ('',))[0]}"
        if tls == "none" and (policy.require_tls or policy.require_verified):
            raise TemporaryFailure(f"no TLS offered, but {policy.reason or 'policy'} requires it")
        return Session(target, smtp, tls, detail)
    except BaseException:
        smtp.close()
        raise


def connect(
    target: Target,
    ehlo_name: str,
    policy: TLSPolicy,
    *,
    tls_mode: str = "starttls",
    auth: Auth | None = None,
    connect_timeout: float = 30.0,
    command_timeout: float = 300.0,
) -> Session:
    """An open, greeted (and TLS-protected when possible) session to ``target``."""
    kwargs = dict(
        implicit_tls=tls_mode == "implicit",
        starttls=tls_mode == "starttls",
        connect_timeout=connect_timeout,
        command_timeout=command_timeout,
    )
    try:
        try:
            session = _handshake(target, ehlo_name, policy, verify=True, **kwargs)  # type: ignore[arg-type]
        except ssl.SSLCertVerificationError as exc:
            why = exc.verify_message or str(exc)
            if policy.require_verified:
                raise TemporaryFailure(
                    f"certificate of {target.host} not verified ({why}); {policy.reason} requires a valid one"
                ) from exc
            log.info("outbound %s: certificate not verified (%s); continuing with unverified TLS", target.host, why)
            session = _handshake(target, ehlo_name, policy, verify=False, **kwargs)  # type: ignore[arg-type]
            session.tls_detail = f"{session.tls_detail} ({why})"
        except ssl.SSLError as exc:
            # STARTTLS offered but no handshake possible (old protocol, no common cipher):
            # opportunistic TLS falls back to plain text, like Postfix's "may" level.
            if policy.require_tls or policy.require_verified or auth or tls_mode != "starttls":
                raise TemporaryFailure(f"TLS handshake with {target.host} failed: {exc}") from exc
            log.info("outbound %s: TLS handshake failed (%s); retrying without TLS", target.host, exc)
            kwargs["starttls"] = False
            session = _handshake(target, ehlo_name, policy, verify=True, **kwargs)  # type: ignore[arg-type]
            session.tls_detail = f"(STARTTLS failed: {exc})"
        if auth:
            if session.tls == "none" or "unverified" in session.tls:
                session.close()
                raise TemporaryFailure(f"refusing to send credentials to {target.host} without verified TLS")
            try:
                session.smtp.login(auth.username, auth.password)
            except smtplib.SMTPException as exc:
                session.broken = True
                session.close()
                raise TemporaryFailure(f"AUTH at {target.host} failed: {exc}") from exc
        return session
    except TemporaryFailure:
        raise
    except smtplib.SMTPConnectError as exc:
        raise TemporaryFailure(f"greeting {exc.smtp_code} {_reply_text(exc.smtp_error)}") from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise TemporaryFailure(f"{type(exc).__name__}: {exc}") from exc
