"""Not authenticated: STARTTLS, LOGIN and AUTHENTICATE (SASL PLAIN and LOGIN), each refused
before TLS. A successful login binds the session to the user's mailbox and its notifications."""

from __future__ import annotations

import base64
import binascii
import time

import gevent

from gk import events
from gk.mail.imap.connection import AUTH, LoginDeadline, Logout
from gk.mail.imap.parser import Parser
from gk.mail.imap.protocol import BadCommand, NoCommand
from gk.mail.imap.view import SelectedView


class AuthCommands(SelectedView):
    def cmd_starttls(self, tag: str, p: Parser) -> None:
        p.end()
        if self.tls:
            raise BadCommand("TLS is already active")
        self.ok(tag, "Begin TLS negotiation now")
        self.flush()
        # anything the client pipelined after STARTTLS is dropped with the old reader. The
        # handshake ends by imap.login_deadline (each of its reads has login_timeout)
        left = max(self.login_by - time.monotonic(), 0.001)
        with gevent.Timeout(left, LoginDeadline(f"not logged in within {self.cfg.login_deadline:g} seconds")):
            self.sock = self.ctx.ssl_context.wrap_socket(self.sock, server_side=True)
        self.tls = True
        self._new_reader()

    def _login_done(self, tag: str, address: str, password: str) -> None:
        result = self.ctx.auth.login(address, password, self.ip, "imap")
        if not result.ok:
            raise NoCommand(result.reason or "authentication failed", "AUTHENTICATIONFAILED")
        self.user = result.user.address
        self.mb = self.svc.store.acquire(self.user)
        self.state = AUTH
        self._apply_limits()
        events.subscribe(self.user, self._on_event)
        self.ok(tag, f"[CAPABILITY {self.caps()}] logged in")

    def cmd_login(self, tag: str, p: Parser) -> None:
        p.sp()
        user = p.text_astring("a user name")
        p.sp()
        password = p.text_astring("a password")
        p.end()
        if not self.tls:
            raise NoCommand("LOGIN is disabled before STARTTLS", "PRIVACYREQUIRED")
        self._login_done(tag, user, password)

    def cmd_authenticate(self, tag: str, p: Parser) -> None:
        p.sp()
        mech = p.atom("a SASL mechanism").upper()
        initial: bytes | None = None
        if p.try_(b" "):
            if p.peek() == ord("="):  # an empty initial response (RFC 4959)
                p.expect(b"=")
                initial = b""
            else:
                initial = p.atom("an initial response").encode()
        p.end()
        if not self.tls:
            raise NoCommand("authentication is disabled before STARTTLS", "PRIVACYREQUIRED")
        if mech == "LOGIN":
            # draft-murchison-sasl-login: what Outlook-family clients and curl pick when offered
            address = self._sasl_response(b"VXNlcm5hbWU6", initial)  # "Username:"
            password = self._sasl_response(b"UGFzc3dvcmQ6", None)  # "Password:"
            self._login_done(tag, address, password)
            return
        if mech != "PLAIN":
            raise NoCommand(f"SASL mechanism {mech} not supported; use PLAIN or LOGIN", "CANNOT")
        try:
            authz, authc, password = self._sasl_response(b"", initial).split("\0")
        except ValueError as exc:
            raise BadCommand("malformed SASL PLAIN response") from exc
        if authz and authz.lower() != authc.lower():
            raise NoCommand("acting as another user is not allowed", "AUTHORIZATIONFAILED")
        self._login_done(tag, authc, password)

    def _sasl_response(self, challenge: bytes, initial: bytes | None) -> str:
        """One SASL step: send ``+ challenge`` unless the client gave an initial response, read
        the base64 answer (``*`` cancels), return it as text."""
        if initial is None:
            self.write(b"+ " + challenge + b"\r\n")
            self.flush()
            line = self.reader.read_line()
            if line is None:
                raise Logout()
            if line.strip() == b"*":
                raise BadCommand("authentication cancelled")
            initial = line.strip()
        try:
            return base64.b64decode(initial, validate=True).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
            raise BadCommand("malformed SASL response") from exc
