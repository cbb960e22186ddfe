"""A raw IMAP line client for the tests that send what no IMAP library would (malformed commands,
bad literals, garbage, pipelined lines): the bytes go out as given, the answer is read line by
line up to the tagged reply (or a continuation request), every read under a deadline, so a
server that stops answering fails the test with what it did say instead of hanging it.

``support.imap.Raw`` is the other raw client: it numbers its own tags and logs in, for tests
that check a well-formed command's untagged responses exactly.
"""

from __future__ import annotations

import socket
import time
from typing import Protocol

from support.imap import tls_client_context

TIMEOUT = 30.0  # seconds: for the connection, the greeting and each command's whole answer


class _Server(Protocol):
    def port(self, name: str) -> int: ...


def _b(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else data


class RawIMAP:
    """A session over implicit TLS to ``srv``'s IMAPS port, greeted, not logged in."""

    def __init__(self, srv: _Server, timeout: float = TIMEOUT):
        self.timeout = timeout
        sock = socket.create_connection(("127.0.0.1", srv.port("imap.tls_port")), timeout=timeout)
        self.sock = tls_client_context().wrap_socket(sock)
        self.f = self.sock.makefile("rwb")
        greeting = self.f.readline()
        assert greeting.startswith(b"* OK"), greeting

    def send(self, data: bytes | str) -> None:
        """``data`` as given (with its own CRLFs)."""
        self.f.write(_b(data))
        self.f.flush()

    def line(self, timeout: float | None = None) -> bytes:
        """One line (b"" once the server has closed), within ``timeout`` seconds."""
        limit = self.timeout if timeout is None else timeout
        self.sock.settimeout(limit)
        try:
            return self.f.readline()
        except TimeoutError:
            raise AssertionError(f"no line in {limit:.0f}s") from None

    def until(self, tag: bytes | str, timeout: float | None = None) -> list[bytes]:
        """The lines up to the tagged reply of ``tag`` or a continuation request (``+ ``),
        within ``timeout`` seconds in all (the client's own by default)."""
        t = _b(tag)
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        out: list[bytes] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no reply tagged {t!r} in {limit:.0f}s; read {out[-5:]!r}")
            try:
                line = self.line(left)
            except AssertionError:
                raise AssertionError(f"no reply tagged {t!r} in {limit:.0f}s; read {out[-5:]!r}") from None
            assert line, f"connection closed after {out!r}"
            out.append(line)
            if line.startswith(t + b" ") or line.startswith(b"+ "):
                return out

    def cmd(self, line: bytes | str, timeout: float | None = None) -> list[bytes]:
        """Send ``line`` (a tagged command, CRLF added) and read up to its tagged reply."""
        raw = _b(line)
        self.send(raw + b"\r\n")
        return self.until(raw.split(b" ", 1)[0], timeout)

    def status(self, line: bytes | str) -> bytes:
        """The status word (OK, NO, BAD) of ``line``'s tagged reply."""
        return self.cmd(line)[-1].split(b" ")[1]

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
