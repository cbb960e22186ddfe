"""``gk.web.service``: HTTP on ``http.port`` and HTTPS on ``http.https_port`` (the device certificate).

Both listeners are ``gevent.pywsgi`` servers with geventwebsocket's handler serving one WSGI app
(``gk.web.app.Web``). A WebSocket upgrade is checked before the 101 (``_Handler``): a browser
page of another origin gets 403 (cross-site WebSocket hijacking), and a mount that declares
subprotocols (IRC at ``/chat/irc``) gets the first one the client lists that it speaks. First
start writes the one-time setup code to ``DATA_DIR/setup-code.txt`` and logs it for the
console. Cost: ~3 MB for bottle + Jinja2 + compiled templates; one greenlet per connection.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from gevent.pywsgi import WSGIServer
from geventwebsocket.handler import WebSocketHandler

from gk import claim
from gk.security import tls
from gk.web import (
    account,
    admin,
    approvals,
    assistant,
    assistant_models,
    assistant_tools,
    backup,
    calendar,
    chat,
    clientsetup,
    contacts,
    dashboard,
    diagnosis,
    maildelivery,
    nextsteps,
    roomsadmin,
    webmail,
    wizard,
)
from gk.web.app import USER, Web

if TYPE_CHECKING:
    from gk.context import AppContext

log = logging.getLogger("gk.web")

WSGIApp = Callable[..., Iterable[bytes]]


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

    def handle(self) -> None:
        try:
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass
        super().handle()

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
        if self._subprotocol and status.startswith("101"):
            headers = [*headers, ("Sec-WebSocket-Protocol", self._subprotocol)]
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


def build(ctx: AppContext, wizard_steps: Sequence[wizard.WizardStep] = wizard.STEPS) -> Web:
    """The web app with every route table of the web UI (no listener: ``start`` adds them; the
    in-process tests call this). ``wizard_steps``: the wizard, in order (features add theirs
    with ``wizard.with_step``)."""
    web = Web(ctx)
    wizard.install(web, wizard_steps)
    for module in (account, dashboard, admin, maildelivery, diagnosis, clientsetup, approvals):
        web.add_routes(module.ROUTES)
    web.add_routes(backup.ROUTES)  # the admin's backup downloads
    web.add_routes(nextsteps.ROUTES)  # the dashboard's checklist after Finish
    web.add_routes(roomsadmin.ROUTES)  # the chat's rooms (404 while the chat is off)
    web.add_registered(webmail.register, USER)  # every /mail page is a signed-in user's
    web.add_routes(calendar.ROUTES)
    web.add_routes(contacts.ROUTES)
    chat.install(web)  # the web chat (its pages answer 404 while the chat is off)
    from gk.dav import web as dav_web  # /sharing (404 while DAV is off)

    web.add_routes(dav_web.ROUTES)
    web.add_routes(assistant.ROUTES)
    web.add_routes(assistant_models.ROUTES)
    from gk.oauth import web as oauth_web  # the OAuth consent page (404 while MCP is off)

    web.add_routes(oauth_web.ROUTES)
    web.add_routes(assistant_tools.ROUTES)
    return web


def start(
    ctx: AppContext,
    mounts: Sequence[tuple[str, WSGIApp, bool]] = (),
    subprotocols: dict[str, tuple[str, ...]] | None = None,
    wizard_steps: Sequence[wizard.WizardStep] = wizard.STEPS,
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
    if cfg.port:
        srv = WSGIServer((bind, cfg.port), web.wsgi, handler_class=_Handler, log=_QuietLog(), environ=_environ(ctx))
        srv.gk_websockets = policy
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
        )
        srv.gk_websockets = policy
        srv.start()
        svc.servers.append(srv)
        svc.listeners.append(("https", bind, srv.server_port))
        log.info("listening https on %s:%d (web UI over TLS)", bind, srv.server_port)
    return svc
