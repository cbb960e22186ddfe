"""IRC over WebSocket (IRCv3 ``websocket``): the same ``Session`` as the TLS port, over a
socket-like adapter (``WebSocketTransport``) instead of a second protocol implementation.

One IRC line per WebSocket message, without CRLF (a trailing CRLF from a client is stripped).
Subprotocols: ``binary.ircv3.net`` (binary messages) and ``text.ircv3.net`` (UTF-8 text
messages; lines that are not UTF-8 are sent with U+FFFD). The web listener's handler picks the
first one the client lists that we speak (``SUBPROTOCOLS``) and refuses a foreign Origin with 403
before the upgrade (``gk.web.service``); without an agreed subprotocol the connection goes on
without the ``Sec-WebSocket-Protocol`` header, in text messages (the spec's MAY, and what older
web clients expect).

Reading is our own frame loop, not geventwebsocket's ``receive``: that one reads any length a
header announces. A message longer than an IRC line with tags (``MAX_LINE``) gets
``ERROR :Input line was too long`` and close code 1009 before its payload is read. A reader
greenlet queues the lines, so the session's timeouts (registration, PING) are a queue wait and
never cut a frame in half. Writes (the session's writer, pongs, the close) share one lock.

Cost per idle connection: the web handler's greenlet (running the session), the session's
writer and this reader; no extra socket.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import gevent
import gevent.lock
import gevent.queue
from geventwebsocket.websocket import Header

from gk.chat.irc.nbio import linger_close, nb_write
from gk.chat.irc.parser import MAX_LINE

log = logging.getLogger("gk.chat.irc")

SUBPROTOCOLS = ("binary.ircv3.net", "text.ircv3.net")
MAX_MESSAGE = MAX_LINE + 2  # a line with tags, and the CRLF some clients still send

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

# framed renderings of recent lines, text and binary (bytes hash once, so a look-up per line
# and connection is cheap); cleared when full: a few hundred KB at most
FRAME_CACHE = 1024
_FRAMED: dict[bool, dict[bytes, bytes]] = {False: {}, True: {}}

CLOSE_NORMAL = 1000
CLOSE_PROTOCOL = 1002
CLOSE_BAD_DATA = 1007
CLOSE_TOO_BIG = 1009


def _unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR with the 4-byte mask, as one big integer (geventwebsocket's loop is per byte)."""
    n = len(payload)
    if not n:
        return payload
    key = (bytes(mask) * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


class _Closed(Exception):
    def __init__(self, code: int, reason: str = ""):
        super().__init__(reason)
        self.code = code
        self.reason = reason


class WebSocketTransport:
    """What ``Session`` uses of a socket: ``recv``, ``sendall``, ``settimeout``, ``shutdown``,
    ``close``. ``recv`` returns one IRC line (with ``\\n``) per WebSocket message, b'' at the end."""

    def __init__(self, ws: Any, binary: bool):
        self.ws = ws
        self.binary = binary
        self.timeout: float | None = None
        self.closed = False
        self._lock = gevent.lock.Semaphore()
        self._lines: gevent.queue.Queue[bytes] = gevent.queue.Queue()
        self._raw = getattr(ws.handler, "socket", None)
        self._pending = b""  # frames nb_sendall could not write without blocking
        self._reader = gevent.spawn(self._read_loop)

    @property
    def raw_socket(self) -> Any:
        """The connection under the WebSocket (``linger_close`` drains it at the end)."""
        return self._raw

    # -- socket-like API ---------------------------------------------------------------------
    def settimeout(self, timeout: float | None) -> None:
        self.timeout = timeout

    def recv(self, _bufsize: int) -> bytes:
        """The next line, with every line already queued behind it (up to 100): lines a client
        sent together reach the session together, which posts them together (one group
        commit for a pasted burst, as over TLS)."""
        try:
            first = self._lines.get(timeout=self.timeout)
        except gevent.queue.Empty:
            raise TimeoutError from None
        if not first or not self._lines.qsize():
            return first
        parts = [first]
        while self._lines.qsize() and len(parts) < 100 and self._lines.peek_nowait():
            parts.append(self._lines.get_nowait())
        return b"".join(parts)

    def sendall(self, data: bytes) -> None:
        """``data``: one or more CRLF-terminated lines (the session's writer batches them): one
        WebSocket message each, written together — after what ``nb_sendall`` left unwritten."""
        frames = self._frames(data)
        if frames or self._pending:
            self._write(frames)

    def nb_sendall(self, items: list[bytes]) -> bool | None:
        """Write ``items`` (rendered lines) now without blocking (from the IRC server's hub callback): True when
        all of it went out; False when the socket took part of it (the rest is kept and the
        next ``sendall`` writes it first); None when it cannot be tried now (a write in
        progress or bytes kept): the caller's writer greenlet sends it with ``sendall``."""
        if self.closed or self._pending or self._lock.locked() or self._raw is None:
            return None
        cache = _FRAMED[self.binary]
        out: list[bytes] = []
        for item in items:  # the same rendered line goes to every connection: framed once
            framed = cache.get(item)
            if framed is None:
                if len(cache) >= FRAME_CACHE:
                    cache.clear()
                framed = cache[item] = self._frames(item)
            out.append(framed)
        frames = b"".join(out)
        n = nb_write(self._raw, frames)
        if n is None:
            return None
        if n >= len(frames):
            return True
        self._pending = frames[n:]  # TLS: n is 0 and these exact bytes must be written next
        return False

    def _frames(self, data: bytes) -> bytes:
        opcode = OP_BINARY if self.binary else OP_TEXT
        if not self.binary:
            try:
                data.decode("utf-8")  # the usual case: valid as a whole, no line re-encoded
            except UnicodeDecodeError:
                data = data.decode("utf-8", "replace").encode("utf-8")
        frames: list[bytes] = []
        for line in data.split(b"\n"):
            line = line.rstrip(b"\r")
            if not line:
                continue
            n = len(line)  # server frames are unmasked and FIN; the header as RFC 6455 5.2
            if n < 126:
                frames.append(bytes((0x80 | opcode, n)))
            elif n < 65536:
                frames.append(bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big"))
            else:
                frames.append(bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big"))
            frames.append(line)
        return b"".join(frames)

    def shutdown(self, _how: int = socket.SHUT_RDWR) -> None:
        self._close(CLOSE_NORMAL)

    def close(self) -> None:
        self._close(CLOSE_NORMAL)

    # -- frames --------------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        if self.closed:
            raise BrokenPipeError("websocket closed")
        with self._lock:
            if self._pending:  # what nb_sendall left: first, so frames stay whole and in order
                data, self._pending = self._pending + data, b""
            try:
                self.ws.raw_write(data)
            except (OSError, AttributeError, TypeError) as exc:  # raw_write is None once closed
                self.closed = True
                raise BrokenPipeError(str(exc)) from exc

    def _control(self, opcode: int, payload: bytes) -> None:
        self._write(Header.encode_header(True, opcode, b"", len(payload), 0) + payload)

    def _close(self, code: int, reason: str = "") -> None:
        if self.closed:
            return
        # never wait for the lock here: abort() runs on the greenlet of whoever overflowed a slow
        # client's send queue, while the writer may be stuck writing to that client
        if self._lock.acquire(blocking=False):
            try:
                payload = code.to_bytes(2, "big") + reason.encode()[:120]
                self.ws.raw_write(Header.encode_header(True, OP_CLOSE, b"", len(payload), 0) + payload)
            except (OSError, AttributeError, TypeError):
                pass
            finally:
                self._lock.release()
        self.closed = True
        self.ws.closed = True  # geventwebsocket must not send a second close frame
        if self._raw is not None:
            try:
                self._raw.shutdown(socket.SHUT_WR)  # the read side drains in linger_close
            except OSError:
                pass
        if gevent.getcurrent() is not self._reader:
            self._reader.kill(block=False)
        self._lines.put(b"")

    def _read(self, n: int) -> bytes:
        data = self.ws.raw_read(n) if n else b""
        if len(data) != n:
            raise _Closed(CLOSE_NORMAL)
        return bytes(data)

    def _message(self) -> bytes:
        """The payload of the next data message (control frames answered on the way)."""
        parts: list[bytes] = []
        size = 0
        opcode: int | None = None
        while True:
            try:
                header = Header.decode_header(self.ws.stream)
            except Exception as exc:  # EOF, or a control frame over 125 bytes
                raise _Closed(CLOSE_PROTOCOL if "large" in str(exc).lower() else CLOSE_NORMAL) from None
            if header.flags:
                raise _Closed(CLOSE_PROTOCOL, "reserved bits set")
            op = header.opcode
            if op >= OP_CLOSE:
                payload = self._read(header.length)
                if header.mask:
                    payload = _unmask(payload, header.mask)
                if op == OP_CLOSE:
                    raise _Closed(CLOSE_NORMAL)
                if op == OP_PING:
                    self._control(OP_PONG, payload)
                elif op != OP_PONG:
                    raise _Closed(CLOSE_PROTOCOL, "unknown opcode")
                continue
            if op in (OP_TEXT, OP_BINARY):
                if opcode is not None:
                    raise _Closed(CLOSE_PROTOCOL, "new message inside a fragmented one")
                opcode = op
            elif op != OP_CONT or opcode is None:
                raise _Closed(CLOSE_PROTOCOL, "unexpected continuation")
            size += header.length
            if size > MAX_MESSAGE:
                raise _Closed(CLOSE_TOO_BIG, "Input line was too long")
            payload = self._read(header.length)
            if header.mask:
                payload = _unmask(payload, header.mask)
            parts.append(payload)
            if header.fin:
                break
        data = b"".join(parts)
        if opcode == OP_TEXT:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                raise _Closed(CLOSE_BAD_DATA, "text message is not UTF-8") from None
        return data

    def _read_loop(self) -> None:
        try:
            while not self.closed:
                data = self._message().rstrip(b"\r\n")
                if b"\n" in data or b"\r" in data:  # one line per message: the rest would be a smuggled line
                    data = data.replace(b"\r", b" ").replace(b"\n", b" ")
                self._lines.put(data + b"\n")
        except _Closed as c:
            if c.code != CLOSE_NORMAL:
                log.info("irc websocket: closing (%d %s)", c.code, c.reason)
                try:
                    self.sendall(b"ERROR :" + c.reason.encode() + b"\r\n")
                except OSError:
                    pass
            self._close(c.code, c.reason if c.code != CLOSE_NORMAL else "")
        except OSError:
            self._close(CLOSE_NORMAL)
        finally:
            self._lines.put(b"")


def serve(irc: Any, environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The WSGI app at ``/chat/irc``: one IRC session per WebSocket (``IRCServer.serve``)."""
    ws = environ.get("wsgi.websocket")
    if ws is None:
        start_response(
            "426 Upgrade Required",
            [("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13"), ("Content-Type", "text/plain; charset=utf-8")],
        )
        return [b"IRC over WebSocket: connect with subprotocol binary.ircv3.net or text.ircv3.net\n"]
    protocol = environ.get("gk.websocket.subprotocol") or ""
    transport = WebSocketTransport(ws, binary=protocol == "binary.ircv3.net")
    address = (environ.get("REMOTE_ADDR", "?"), int(environ.get("REMOTE_PORT") or 0))
    try:
        irc.serve(transport, address)
    finally:
        transport.close()
        linger_close(transport.raw_socket)
    return []
