"""``gk.web.service``: HTTP on ``http.port`` and HTTPS on ``http.https_port`` (the device certificate).

Both listeners are ``gevent.pywsgi`` servers with geventwebsocket's handler serving one WSGI app
(``gk.web.app.Web``). A WebSocket upgrade is checked before the 101 (``_Handler``): a browser
page of another origin gets 403 (cross-site WebSocket hijacking), and a mount that declares
subprotocols (IRC at ``/chat/irc``) gets the first one the client lists that it speaks. First
start writes the one-time setup code to ``DATA_DIR/setup-code.txt`` and logs it for the
console. Cost: ~3 MB for bottle + Jinja2 + compiled templates; one greenlet per connection.

Connections are bounded as the mail listeners' are (``HTTPSlots``): at most ``http.max_connections``
over both listeners, ``http.max_connections_per_ip`` from one client (an IPv6 /64), WebSockets
included; one over a limit gets ``503`` with ``Retry-After`` and is closed. Each connection has
deadlines (``_Handler``): ``http.idle_timeout`` to start its next request (keep-alive),
``http.header_timeout`` from a request's first byte to the end of its headers (a client that sends
one header byte at a time gets ``408``), ``http.io_timeout`` for each read of a body and each write
of a response; a WebSocket, once upgraded, has none (chat pages stay open for hours). Without
them every half-sent request held its socket and greenlet for ever: 300 such connections held
300 sockets, and the process's 1,024 file descriptors were the whole box's (mail included).
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import gevent
import gevent.pool
from gevent.pywsgi import WSGIServer
from geventwebsocket.handler import WebSocketHandler

from gk import claim
from gk.accounts.throttle import client_key
from gk.security import tls
from gk.web import routes, wizardsteps
from gk.web.app import Web

if TYPE_CHECKING:
    from gk.config import HTTPConfig
    from gk.context import AppContext

log = logging.getLogger("gk.web")

WSGIApp = Callable[..., Iterable[bytes]]

# greenlets each listener has beyond ``http.max_connections`` for the short 503 refusals; when they
# too are busy, new connections wait in the listen backlog
REFUSE_SLOTS = 50
REFUSE_TIMEOUT = 5.0  # seconds a refused client gets to take its 503
SEND_PIECE = 64 * 1024  # a response is written in pieces of this size, each with http.io_timeout
_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class _HeaderDeadline(TimeoutError):
    """A request's headers did not arrive within ``http.header_timeout`` (an OSError: pywsgi
    treats it as a failed read of the request)."""


class HTTPSlots:
    """Connection slots shared by the HTTP and HTTPS listeners: ``total`` at most, ``per_ip``
    from one client (``throttle.client_key``: an IPv4 address or an IPv6 /64)."""

    def __init__(self, total: int, per_ip: int):
        self.total = total
        self.per_ip = per_ip
        self.active = 0
        self.by_client: dict[str, int] = {}

    def take(self, client: str) -> str:
        """Take a slot for ``client``; '' if it got one, else why not."""
        if self.active >= self.total:
            return "too many connections; try again later"
        if self.by_client.get(client, 0) >= self.per_ip:
            return "too many connections from your address"
        self.active += 1
        self.by_client[client] = self.by_client.get(client, 0) + 1
        return ""

    def give(self, client: str) -> None:
        self.active -= 1
        left = self.by_client.pop(client) - 1
        if left:
            self.by_client[client] = left


@dataclass
class WebService:
    web: Web
    servers: list[WSGIServer]
    name: str = "web"
    listeners: list[tuple[str, str, int]] = field(default_factory=list)

    def mount(self, prefix: str, app: Any, *, csrf_exempt: bool = False) -> None:
        self.web.mount(prefix, app, csrf_exempt=csrf_exempt)

    def stop(self, grace: float) -> None:
        for srv in self.servers:
            srv.close()  # no new connections
            # open WebSockets (IRC sessions) would hold the drain for all of ``grace``: their
            # sockets are shut down so each app sees the end of its stream and returns
            for client in list(getattr(srv, "clients", {}).values()):
                with contextlib.suppress(OSError, AttributeError):
                    client.ws.handler.socket.shutdown(socket.SHUT_RDWR)
            srv.stop(timeout=grace)


@dataclass
class WebSocketPolicy:
    """Which WebSocket upgrades the listeners accept: ``origins`` besides the request's own host
    (``http.websocket_origins``), ``subprotocols`` by mount prefix (``gk.features.Mount``)."""

    origins: frozenset[str] = frozenset()
    subprotocols: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def origin_refused(self, environ: dict[str, Any]) -> str | None:
        """Why this upgrade's Origin is refused, or None. No Origin: not a browser (a browser
        always sends one), nothing to hijack. Same host (any scheme or port the Host header
        names) or a configured origin: accepted."""
        origin = environ.get("HTTP_ORIGIN", "").strip()
        if not origin:
            return None
        if origin.lower().rstrip("/") in self.origins:
            return None
        try:
            netloc = urlsplit(origin).netloc.lower()
        except ValueError:
            netloc = ""
        host = environ.get("HTTP_HOST", "").strip().lower()
        if netloc and host and netloc == host:
            return None
        return f"WebSocket from origin {origin[:100]} refused: not this server's page"

    def subprotocol(self, environ: dict[str, Any]) -> str | None:
        """The first subprotocol the client asks for that the mount speaks; the mount's own URL
        without its trailing slash (``/chat/irc``, what clients are given) is routed to it."""
        path = environ.get("PATH_INFO", "")
        for prefix, spoken in self.subprotocols.items():
            base = "/" + prefix.strip("/")
            if path == base:
                environ["PATH_INFO"] = path = base + "/"
            if path.startswith(base + "/"):
                asked = [p.strip() for p in environ.get("HTTP_SEC_WEBSOCKET_PROTOCOL", "").split(",")]
                return next((p for p in asked if p in spoken), None)
        return None


class _Handler(WebSocketHandler):
    """TCP_NODELAY on every connection: pywsgi sends the headers and the body of a response in two
    writes, and Nagle holds the body until the client ACKs the headers, which a client delays up
    to 40 ms (measured: a 1 KB DAV GET took 44 ms on a keep-alive connection, 10 ms with this, on a loaded 2-core box).

    WebSocket upgrades go through ``server.gk_websockets`` (a ``WebSocketPolicy``) first:
    geventwebsocket upgrades any path and sends the 101 before the app runs, so the Origin
    check and the subprotocol choice have to happen here."""

    _subprotocol: str | None = None
    _deadline: gevent.Timeout | None = None

    def handle(self) -> None:
        try:
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass
        slots: HTTPSlots | None = getattr(self.server, "gk_slots", None)
        if slots is None:  # a listener built without limits (none in gk serve)
            super().handle()
            return
        address = self.client_address
        ip = address[0] if isinstance(address, tuple) and address else str(address or "")
        client = client_key(ip)
        why = slots.take(client)
        if why:
            self._refuse(ip, why)
            return
        try:
            super().handle()
        finally:
            self._end_deadline()
            slots.give(client)

    def _refuse(self, ip: str, why: str) -> None:
        log.info("http: refused a connection from %s: %s", ip or "?", why)
        body = why.encode() + b"\n"
        with contextlib.suppress(OSError):
            self.socket.settimeout(REFUSE_TIMEOUT)
            self.socket.sendall(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Retry-After: 10\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )

    def _http_config(self) -> HTTPConfig | None:
        return getattr(self.server, "gk_http", None)

    def read_requestline(self) -> str:
        cfg = self._http_config()
        if cfg is None:
            return str(super().read_requestline())
        # keep-alive: the next request has to start within idle_timeout (a timeout here ends the
        # connection quietly, as a client closing it would) ...
        self.socket.settimeout(cfg.idle_timeout)
        if not self.rfile.peek(1):
            return ""  # closed by the client
        # ... and its request line and headers arrive within header_timeout of its first byte
        self._deadline = gevent.Timeout.start_new(cfg.header_timeout, _HeaderDeadline("request headers too slow"))
        try:
            return str(super().read_requestline())
        except _HeaderDeadline:
            self._deadline = None  # it fired
            with contextlib.suppress(OSError):
                self.socket.sendall(_REQUEST_TIMEOUT)
            raise  # an OSError: pywsgi ends the connection
        except BaseException:
            self._end_deadline()
            raise

    def read_request(self, raw_requestline: str) -> Any:
        try:
            return super().read_request(raw_requestline)
        finally:
            self._end_deadline()
            cfg = self._http_config()
            if cfg is not None:
                self.socket.settimeout(cfg.io_timeout)  # each body read and response write

    def handle_one_request(self) -> Any:
        try:
            return super().handle_one_request()
        finally:
            self._end_deadline()  # a request line refused before its headers were read

    def _end_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.close()
            self._deadline = None

    def _sendall(self, data: bytes | bytearray | memoryview) -> None:
        """pywsgi's write of a response, in pieces of ``SEND_PIECE``: gevent's ``sendall`` gives
        its timeout to the whole call, so a 20 MB attachment written at once to a phone on a slow
        link would be cut at ``http.io_timeout``; per piece the deadline means "no progress for
        that long" (a client that stops reading is still let go)."""
        if self._http_config() is None or len(data) <= SEND_PIECE:
            super()._sendall(data)
            return
        view = memoryview(data)
        for start in range(0, len(view), SEND_PIECE):
            super()._sendall(view[start : start + SEND_PIECE])

    def handle_error(self, t: Any, v: Any, tb: Any) -> None:
        if isinstance(v, TimeoutError) and self._http_config() is not None:
            # a client that stopped reading its response (or sending its body): one line, not
            # an error with a traceback, and no 500 after a half-sent response
            log.info(
                "http: %s %s from %s",
                v or "timed out",
                self.path,
                self.client_address[0] if self.client_address else "?",
            )
            self.close_connection = True
            return
        super().handle_error(t, v, tb)

    def _handle_client_error(self, ex: BaseException) -> Any:
        if isinstance(ex, TimeoutError):
            log.info("http: %s from %s", ex, self.client_address[0] if self.client_address else "?")
            self.close_connection = True
            return ("408", _REQUEST_TIMEOUT)
        return super()._handle_client_error(ex)

    def upgrade_websocket(self) -> Any:
        env = self.environ
        policy: WebSocketPolicy | None = getattr(self.server, "gk_websockets", None)
        if policy is None or env.get("HTTP_UPGRADE", "").lower() != "websocket":
            return super().upgrade_websocket()
        refused = policy.origin_refused(env)
        if refused:
            log.info("%s (%s)", refused, env.get("REMOTE_ADDR", "?"))
            self.start_response("403 Forbidden", [("Content-Type", "text/plain; charset=utf-8")])
            return [refused.encode() + b"\n"]
        self._subprotocol = policy.subprotocol(env)
        env["gk.websocket.subprotocol"] = self._subprotocol or ""
        return super().upgrade_websocket()

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if status.startswith("101"):
            if self._subprotocol:
                headers = [*headers, ("Sec-WebSocket-Protocol", self._subprotocol)]
            self.socket.settimeout(None)  # a WebSocket: open as long as its page (chat), no HTTP deadline
        return super().start_response(status, headers, exc_info)


class _QuietLog:
    """pywsgi's access log goes to our logger at debug level (one line per request)."""

    def write(self, line: str) -> None:
        log.debug(line.rstrip())


def _environ(ctx: AppContext) -> dict[str, str]:
    """The listeners' base WSGI environ: ``SERVER_NAME`` (a request without a Host header) is
    the box's host name. Without it pywsgi looks the bind address up in reverse DNS
    (``socket.getfqdn``) at start, which started gevent's resolver thread for that one call
    (and its modules: ~0.25 MB of an idle server's RSS)."""
    return {"SERVER_NAME": ctx.hostname}


class _HTTPSServer(WSGIServer):
    """pywsgi over TLS whose handshake failures are one INFO line (``gk.security.tls.accept``).

    gevent's own ``wrap_socket_and_handle`` lets a failed handshake escape the greenlet: each
    client that rejected the self-signed certificate, and each dashboard listener probe, was
    an ERROR with a traceback.
    """

    def __init__(self, *args: Any, ssl_context: Any, **kwargs: Any):
        super().__init__(*args, ssl_context=ssl_context, **kwargs)
        self._tls_context = ssl_context

    def wrap_socket_and_handle(self, client_socket: socket.socket, address: Any) -> Any:
        sock = tls.accept(client_socket, self._tls_context, "https", address, log)
        if sock is None:
            return None
        sock.settimeout(None)  # as pywsgi's own TLS sockets: the handler manages keep-alive
        with contextlib.closing(sock):
            return self.handle(sock, address)


def build(ctx: AppContext, wizard_steps: Sequence[wizardsteps.WizardStep] = wizardsteps.STEPS) -> Web:
    """The web app with every route table of the web UI (no listener: ``start`` adds them; the
    in-process tests call this). ``wizard_steps``: the wizard, in order (features add theirs
    with ``wizardsteps.with_step``). No page's module is imported here: each is imported by the
    first request to one of its routes (``gk.web.routes``)."""
    web = Web(ctx)
    wizardsteps.install(web, wizard_steps)
    routes.install(web)
    return web


def start(
    ctx: AppContext,
    mounts: Sequence[tuple[str, WSGIApp, bool]] = (),
    subprotocols: dict[str, tuple[str, ...]] | None = None,
    wizard_steps: Sequence[wizardsteps.WizardStep] = wizardsteps.STEPS,
) -> WebService:
    """``mounts``: (prefix, WSGI app, csrf_exempt) of the features started before (``gk.features``);
    ``subprotocols``: the WebSocket subprotocols of those prefixes that speak any;
    ``wizard_steps``: the first-boot wizard with the steps of the features that started."""
    code = claim.ensure_setup_code(ctx.data_dir)
    if code:
        log.warning("this server is not claimed yet: open the web UI from the LAN; setup code %s", code)
    web = build(ctx, wizard_steps)
    for prefix, sub_app, exempt in mounts:
        web.mount(prefix, sub_app, csrf_exempt=exempt)
        log.info("mounted %s", prefix)
    cfg = ctx.config.http
    bind = ctx.config.server.bind
    svc = WebService(web, [])
    policy = WebSocketPolicy(
        frozenset(o.strip().lower().rstrip("/") for o in cfg.websocket_origins), subprotocols or {}
    )
    slots = HTTPSlots(cfg.max_connections, cfg.max_connections_per_ip)
    if cfg.port:
        srv = WSGIServer(
            (bind, cfg.port),
            web.wsgi,
            handler_class=_Handler,
            log=_QuietLog(),
            environ=_environ(ctx),
            spawn=gevent.pool.Pool(cfg.max_connections + REFUSE_SLOTS),
        )
        srv.gk_websockets, srv.gk_slots, srv.gk_http = policy, slots, cfg
        srv.start()
        svc.servers.append(srv)
        svc.listeners.append(("http", bind, srv.server_port))
        log.info("listening http on %s:%d (web UI, wizard, autoconfig)", bind, srv.server_port)
    if cfg.https_port:
        srv = _HTTPSServer(
            (bind, cfg.https_port),
            web.wsgi,
            handler_class=_Handler,
            log=_QuietLog(),
            ssl_context=ctx.ssl_context,
            environ=_environ(ctx),
            spawn=gevent.pool.Pool(cfg.max_connections + REFUSE_SLOTS),
        )
        srv.gk_websockets, srv.gk_slots, srv.gk_http = policy, slots, cfg
        srv.start()
        svc.servers.append(srv)
        svc.listeners.append(("https", bind, srv.server_port))
        log.info("listening https on %s:%d (web UI over TLS)", bind, srv.server_port)
    return svc
