"""IRC clients for the chat tests: a raw line client over TLS (``IRC``) and over WebSocket
(``WS``, the IRCv3 ``websocket`` transport, with websocket-client from the test extra), both
reading lines and waiting for a line matching a pattern, and the registration every test
starts with (CAP 302, SASL PLAIN, CAP END, 001): ``connect`` and ``ws_connect``.

One copy of what the IRC, WebSocket, durability and chat-operations tests share; the image test
(tests/image) speaks IRC to the guest with the same ``IRC``.
"""

from __future__ import annotations

import base64
import re
import socket
import ssl
import time
from typing import Any, Protocol

PASSWORD = "correct horse battery staple"
ALICE = "alice@example.org"
BOB = "bob@example.org"
ALL_CAPS = "server-time message-tags echo-message batch account-tag extended-join draft/chathistory"

_TLS: list[ssl.SSLContext] = []


def tls() -> ssl.SSLContext:
    """A client context trusting anything: the test servers use self-signed certificates."""
    if not _TLS:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        _TLS.append(ctx)
    return _TLS[0]


def sasl(user: str, password: str) -> str:
    """The SASL PLAIN response (RFC 4616), base64 as AUTHENTICATE sends it."""
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


class LineClient:
    """What both transports share: ``line()`` (one line, None when closed) is the transport's;
    ``expect`` and ``until`` wait for a line matching a pattern, keeping every line in ``seen``."""

    seen: list[str]

    def send(self, line: str | bytes) -> None:
        raise NotImplementedError

    def line(self, timeout: float = 60) -> str | None:
        raise NotImplementedError

    def expect(self, pattern: str, timeout: float = 60) -> str:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ln = self.line(max(0.1, deadline - time.monotonic()))
            if ln is None:
                raise AssertionError(f"connection closed waiting for {pattern!r}; seen {self.seen[-20:]}")
            if rx.search(ln):
                return ln
        raise AssertionError(f"no line matching {pattern!r}; seen {self.seen[-20:]}")

    def until(self, pattern: str, timeout: float = 60) -> list[str]:
        """Every line up to and including the first one matching ``pattern``."""
        start = len(self.seen)
        self.expect(pattern, timeout)
        return self.seen[start:]

    def until_closed(self, timeout: float = 60) -> list[str]:
        start = len(self.seen)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.line(max(0.1, deadline - time.monotonic())) is None:
                return self.seen[start:]
        raise AssertionError(f"still open; seen {self.seen[-20:]}")


class IRC(LineClient):
    """A raw IRC client over TLS: send lines, read lines, wait for a line matching a pattern."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        sock = socket.create_connection((host, port), timeout=60)
        self.sock = tls().wrap_socket(sock)
        self.buf = b""
        self.seen = []

    def send(self, line: str | bytes) -> None:
        data = line if isinstance(line, bytes) else line.encode()
        self.sock.sendall(data + b"\r\n")

    def line(self, timeout: float = 60) -> str | None:
        self.sock.settimeout(timeout)
        while b"\n" not in self.buf:
            try:
                data = self.sock.recv(65536)
            except (ConnectionError, ssl.SSLError):
                data = b""
            except TimeoutError:
                raise AssertionError(f"no line in {timeout:.0f}s; seen {self.seen[-20:]}") from None
            if not data:
                return None
            self.buf += data
        raw, self.buf = self.buf.split(b"\n", 1)
        text = raw.rstrip(b"\r").decode()
        self.seen.append(text)
        return text

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class WS(LineClient):
    """An IRC client over one WebSocket (``/chat/irc``): one line per message."""

    def __init__(self, port: int, subprotocols: list[str] | None = None, origin: str | None = None, tls: bool = False):
        import websocket

        self.websocket = websocket
        self.ws = websocket.create_connection(
            f"{'wss' if tls else 'ws'}://127.0.0.1:{port}/chat/irc",
            sslopt={"cert_reqs": ssl.CERT_NONE, "check_hostname": False},
            timeout=60,
            subprotocols=subprotocols if subprotocols is not None else ["text.ircv3.net"],
            origin=origin,
            suppress_origin=origin is None,
        )
        self.seen = []

    @property
    def subprotocol(self) -> str | None:
        sub: str | None = self.ws.getsubprotocol()
        return sub

    def send(self, line: str | bytes) -> None:
        if isinstance(line, bytes):
            self.ws.send_binary(line)
        else:
            self.ws.send(line)

    def line(self, timeout: float = 60) -> str | None:
        self.ws.settimeout(timeout)
        try:
            opcode, data = self.ws.recv_data()
        except self.websocket.WebSocketConnectionClosedException:
            return None
        if opcode == self.websocket.ABNF.OPCODE_CLOSE:
            return None
        text = data.decode()
        assert "\n" not in text and "\r" not in text, text  # one line per message, no CRLF
        self.seen.append(text)
        return text

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass


class _Client(Protocol):
    def send(self, line: str | bytes) -> None: ...
    def expect(self, pattern: str, timeout: float = 60) -> str: ...


def register(c: _Client, user: str, caps: str = "", password: str = PASSWORD, nick: str = "x") -> None:
    """CAP LS 302, NICK/USER, CAP REQ sasl (+ ``caps``), SASL PLAIN, CAP END, up to 001."""
    c.send("CAP LS 302")
    c.send(f"NICK {nick}")
    c.send("USER u 0 * :Real Name")
    c.expect(r"CAP \* LS ")
    c.send("CAP REQ :" + " ".join(["sasl", *caps.split()]))
    c.expect(r"CAP .* ACK ")
    c.send("AUTHENTICATE PLAIN")
    c.expect(r"^AUTHENTICATE \+$")
    c.send("AUTHENTICATE " + sasl(user, password))
    c.expect(r" 903 ")
    c.send("CAP END")
    c.expect(r" 001 ")


def connect(
    port: int, user: str = ALICE, caps: str = "", password: str = PASSWORD, nick: str = "x", host: str = "127.0.0.1"
) -> IRC:
    """A registered TLS client of ``user``."""
    c = IRC(port, host)
    register(c, user, caps, password, nick)
    return c


def ws_connect(port: int, user: str = ALICE, caps: str = "", password: str = PASSWORD, **kw: Any) -> WS:
    """A registered WebSocket client of ``user`` (``kw``: ``WS``'s subprotocols, origin, tls)."""
    c = WS(port, **kw)
    register(c, user, caps, password)
    return c


def chat_config(**chat: Any) -> dict[str, Any]:
    """gk.toml overrides of the chat tests: cheap argon2, flood limits a test burst stays under."""
    return {
        "auth": {"argon2_time_cost": 1, "argon2_memory_kib": 8192},
        "chat": {"line_burst": 400, "lines_per_second": 200.0, **chat},
    }
