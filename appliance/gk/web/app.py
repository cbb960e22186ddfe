"""The root bottle app: request gating (wizard, LAN, HTTPS, CSRF), sessions and rendering.

``Web`` holds what every route module needs. The web UI's routes are data: tables of
``Route(method, path, handler, policy)`` (``gk.web.routes``) given to ``web.add_routes``; a
handler is a module-level function called as ``handler(web, **url_args)``, named in the table
as ``lazy("module:function")``: a page's module is imported by the first request to one of its
routes, not at start (an idle box never opened on the web carries none of them), and
``tests/unit/test_web_routes.py`` resolves every name so a typo fails there, not on a click.
The policy says who may call the route (``Access``: anyone, the claim gate, a signed-in user, an
administrator) and whether its unsafe methods need the CSRF token; it is applied here, in
``_before``, and nowhere else. Other features mount their own bottle apps with
``web.mount(prefix, app)`` (DAV, chat, AI).

Per request, before any route: (1) HTTP is redirected to HTTPS once the wizard turned that
on; (2) the claim gate: until the wizard is complete every page except static files redirects
to it and only LAN clients are served; after completion the wizard answers 404 unless owner
recovery reopened its claim and password steps (``recovery_paths``); (3) every
POST/PUT/PATCH/DELETE must carry the session's CSRF token (form field ``csrf`` or header
``X-CSRF-Token``), else 403 and nothing changes, unless the route's policy (or a mount's
``csrf_exempt``) says otherwise; (4) the wizard is served over HTTPS only (HTTP gets the
page ``wizard.over_http`` renders); (5) the route's ``Access``: a visitor on a user's page is
sent to the login page, a user on an administrator's page gets 403.

Cost: one Jinja2 environment with compiled templates cached (~2 MB, plus 3.3 MB for importing
jinja2), created on the first page rendered so a box whose web UI is not open does not pay for
it; the claim state kept in memory by ``claim.gate`` (re-read only after a commit to the claim
database, from any process), no other per-request memory beyond the request itself.
"""

from __future__ import annotations

import enum
import hmac
import importlib
import importlib.util
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast
from urllib.parse import urlsplit

import bottle
import gevent.lock

from gk import claim, pools, settings
from gk.accounts import User
from gk.locale import N_
from gk.web import i18n
from gk.web.headers import SecurityHeaders, cookie_name, session_cookie
from gk.web.netpolicy import is_lan, parse_networks
from gk.web.sessions import Session, SessionStore

if TYPE_CHECKING:
    from gk.context import AppContext

HERE = Path(__file__).resolve().parent
HTMX = "htmx-2.0.11.min.js"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
DEFAULT_PORTS = {"http": "80", "https": "443"}


def foreign_origin(environ: dict[str, Any]) -> str | None:
    """The request's ``Origin`` when a browser sent one that is not this box's own origin (the
    request's scheme with the host and port its ``Host`` header names), else None. No Origin
    (an older browser, a same-origin GET turned POST by some, a non-browser client): None, the
    CSRF token alone decides. ``Origin: null`` (a sandboxed frame, a privacy redirect) is foreign."""
    origin = (environ.get("HTTP_ORIGIN") or "").strip()
    if not origin:
        return None
    scheme = environ.get("wsgi.url_scheme", "http")
    host = (environ.get("HTTP_HOST") or "").strip().lower()

    def norm(scheme: str, netloc: str) -> str:
        if netloc.endswith(":" + DEFAULT_PORTS.get(scheme, "")):
            netloc = netloc.rsplit(":", 1)[0]
        return f"{scheme}://{netloc}"

    try:
        parts = urlsplit(origin.lower())
        theirs = norm(parts.scheme, parts.netloc)
    except ValueError:
        return origin
    if not host or not parts.netloc or theirs != norm(scheme, host):
        return origin
    return None


def check_origin(environ: dict[str, Any]) -> None:
    """403 for a state-changing request from another site's page (defence in depth beside the
    CSRF token and ``SameSite=Lax``: docs/security.md)."""
    if foreign_origin(environ) is not None:
        raise bottle.HTTPError(403, N_("Refused: this request came from another site's page (Origin mismatch)."))


RECOVERY_PATHS = ("/wizard", "/wizard/", "/wizard/claim", "/wizard/claim/button", "/wizard/password")
# reachable while the wizard is not complete, besides the wizard itself
LANG_COOKIE = "gk_lang"  # the language chosen before signing in (no account to keep it yet)
OPEN_PATHS = ("/static/", "/.well-known/acme-challenge/")

# the error page's heading per status (app.Web._error)
ERROR_HEADINGS = {
    400: N_("Bad request"),
    403: N_("Access denied"),
    404: N_("Page not found"),
    405: N_("Method not allowed"),
    413: N_("Too large"),
    503: N_("Not available"),
}

bottle.BaseRequest.MEMFILE_MAX = 256 * 1024  # larger bodies spool to a temp file, not RAM

T = TypeVar("T")


class Access(enum.Enum):
    """Who may call a route (checked by ``Web._before`` before the handler runs)."""

    ANYONE = "anyone"  # anonymous visitors too (the login page, autoconfig, static files)
    SETUP = "setup"  # the claim gate: the wizard, LAN-only until complete, then only owner recovery
    USER = "user"  # a signed-in user; a visitor is sent to /login?next=<path>
    ADMIN = "admin"  # a signed-in administrator; a visitor is sent to the login page, a user gets 403


@dataclass(frozen=True)
class Policy:
    access: Access
    csrf: bool = True  # POST/PUT/PATCH/DELETE must carry the session's CSRF token (else 403)


ANYONE = Policy(Access.ANYONE)
SETUP = Policy(Access.SETUP)
USER = Policy(Access.USER)
ADMIN = Policy(Access.ADMIN)


@dataclass(frozen=True)
class Route:
    """One line of a route table: ``handler(web, **url_args)`` answers ``method`` (one, or a tuple)
    on ``path`` (a bottle rule, e.g. ``/admin/users/<address>/delete``) under ``policy``."""

    method: str | tuple[str, ...]
    path: str
    handler: Callable[..., Any]
    policy: Policy


_IMPORTING = gevent.lock.Semaphore()


class LazyHandler:
    """A route handler named ``"module:function"``, imported on its first call (then kept).

    Made at start, it checks that the module exists (``find_spec``: a stat, no import); the
    function's name is checked by ``resolve``, which the route tests call for every handler.
    The first call imports the module in the CPU pool, as the first compile of a template
    (``Web.template``): the largest page module (the calendar, with the DAV web API and its event
    builder) takes ~25-40 ms here, several times that on a board, which on the hub would hold
    every mail and chat session; in a pool thread the hub gets the GIL back within a switch
    interval. Imports are serialised (``_IMPORTING``): two requests for a page not loaded yet
    make one import, the second waits for it."""

    __slots__ = ("target", "_fn")
    made: ClassVar[list[LazyHandler]] = []  # every one, for the test that resolves them all

    def __init__(self, target: str):
        module, sep, name = target.partition(":")
        if not sep or not module or not name.isidentifier():
            raise ValueError(f"a lazy handler is 'module:function', not {target!r}")
        if importlib.util.find_spec(module) is None:
            raise ModuleNotFoundError(f"route handler {target!r}: no module {module!r}")
        self.target = target
        self._fn: Callable[..., Any] | None = None
        LazyHandler.made.append(self)

    def resolve(self) -> Callable[..., Any]:
        if self._fn is None:
            module, _, name = self.target.partition(":")
            fn = getattr(importlib.import_module(module), name, None)
            if not callable(fn):
                raise AttributeError(f"route handler {self.target!r}: no function {name!r} in {module}")
            self._fn = fn
        return self._fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        fn = self._fn
        if fn is None:
            with _IMPORTING:  # one page import at a time; the other greenlets wait here, the hub runs
                fn = self._fn or pools.run_cpu(self.resolve)
        return fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"lazy({self.target!r})"


def lazy(target: str) -> Callable[..., Any]:
    """The handler ``"module:function"``, imported on its first call (``LazyHandler``)."""
    return LazyHandler(target)


class Web:
    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        self.data_dir: Path = ctx.data_dir
        self.sessions = SessionStore(ctx.data_dir / "web.sqlite3", ctx.config.http.session_days)
        self.lan = parse_networks(ctx.config.http.lan_networks)
        self.app = bottle.Bottle(catchall=True)
        self.csrf_exempt: list[str] = []
        # the policy of every route added with add_routes (mounted sub-apps have none)
        self.policies: dict[bottle.Route, Policy] = {}
        # per-app state of route modules (the wizard's button waiters, its steps), by type
        self._parts: dict[type, object] = {}
        # the page a plain-HTTP request to the wizard gets while HTTPS is on (set by the wizard)
        self.setup_over_http: Callable[[Web], str] | None = None
        # the wizard's paths still served while owner recovery is open (set by the wizard)
        self.recovery_paths: tuple[str, ...] = RECOVERY_PATHS
        self.app.add_hook("before_request", self._before)
        self.add_routes([Route("GET", "/static/<path:path>", _static, ANYONE)])
        for status in ERROR_HEADINGS:
            self.app.error(status)(self._error)
        self.wsgi = SecurityHeaders(self.app, ctx.config.http.https_port)
        self._compiled: set[str] = set()  # templates already compiled (in jinja2's cache)

    @cached_property
    def jinja(self) -> Any:
        """The template environment (autoescaping on), built on first use: importing jinja2 costs
        3.3 MB of RSS that an idle box with nobody on the web UI need not carry."""
        import jinja2

        return jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=jinja2.select_autoescape(["html", "xml"], default_for_string=True, default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def template(self, name: str) -> Any:
        """The compiled template ``name``; the first time (the jinja2 import and the compile) in
        the CPU pool, not on the hub.

        Both are pure Python: here the import took ~60 ms and a page's compile 10-50 ms (several
        times that on a board), which on the hub held every mail and chat session during the
        first view of each page after a start (``bench hub_lag``'s stall stacks,
        ``GK_HUB_STALL_MS``). In a pool thread the hub gets the GIL back within a switch
        interval; later calls find the template in jinja2's cache."""
        if name not in self._compiled:
            self._compiled.update(pools.run_cpu(self._compile, name))
        return self.jinja.get_template(name)

    def _compile(self, name: str) -> set[str]:
        """Compile ``name`` and the templates it extends, includes or imports (jinja2 compiles
        those only when the render reaches them); the names compiled."""
        from jinja2 import meta

        env = self.jinja
        done: set[str] = set()
        todo = [name]
        while todo:
            current = todo.pop()
            if current in done or current in self._compiled:
                continue
            env.get_template(current)
            done.add(current)
            source = env.loader.get_source(env, current)[0]
            todo.extend(ref for ref in meta.find_referenced_templates(env.parse(source)) if ref)
        return done

    # -- routes --------------------------------------------------------------------------
    def add_routes(self, routes: Iterable[Route]) -> None:
        """Serve a route table; each route's policy is enforced by ``_before``."""
        for r in routes:
            methods = [r.method] if isinstance(r.method, str) else list(r.method)
            for method in methods:
                self._add(method, r.path, r.handler, r.policy)

    def _add(self, method: str, path: str, handler: Callable[..., Any], policy: Policy) -> None:
        def callback(**args: Any) -> Any:
            return handler(self, **args)

        name = handler.target.partition(":")[2] if isinstance(handler, LazyHandler) else None
        callback.__name__ = callback.__qualname__ = name or str(getattr(handler, "__name__", "handler"))
        route = bottle.Route(self.app, path, method, callback)
        self.app.add_route(route)
        self.policies[route] = policy

    def add_registered(self, register: Callable[[Web], None], policy: Policy) -> None:
        """A module still registering its routes itself (``register(web)``, e.g. ``webmail``):
        every route it adds gets ``policy``."""
        before = len(self.app.routes)
        register(self)
        for route in self.app.routes[before:]:
            self.policies[route] = policy

    def policy_of(self, environ: dict[str, Any]) -> Policy | None:
        """The policy of the route this request goes to (None: no route, or a mounted app's)."""
        try:
            route, _ = self.app.router.match(environ)
        except bottle.HTTPError:
            return None
        return self.policies.get(route)

    def attach(self, part: object) -> None:
        """Keep a route module's per-app state (one object per type)."""
        self._parts[type(part)] = part

    def attached(self, kind: type[T]) -> T:
        return cast(T, self._parts[kind])

    # -- state ---------------------------------------------------------------------------
    def claim_state(self) -> tuple[str, bool]:
        """(claim state, recovery open): ``claim.gate`` sees every commit to the claim database,
        this process's or another's (the button service, ``gk claim recover``), on the next call."""
        return claim.gate(self.data_dir)

    def forget_state(self) -> None:
        """Nothing to forget any more (``claim.gate`` follows the database); kept for callers."""

    def client_ip(self) -> str:
        return str(bottle.request.environ.get("REMOTE_ADDR", ""))

    def client_is_lan(self) -> bool:
        return is_lan(self.client_ip(), self.lan)

    def is_https(self) -> bool:
        return bottle.request.environ.get("wsgi.url_scheme") == "https"

    # -- sessions ------------------------------------------------------------------------
    def scheme(self) -> str:
        return "https" if self.is_https() else "http"

    def session(self, create: bool = True) -> Session | None:
        """This request's session. A session is valid only on the scheme it was issued on: an id
        that crossed the network in clear text (the wizard's first page, a login over HTTP) must
        not open anything over HTTPS, so HTTPS reads its own cookie and checks the stored scheme."""
        env = bottle.request.environ
        if "gk.session" in env:
            sess = env["gk.session"]
        else:
            sess = self.sessions.get(bottle.request.get_cookie(cookie_name(self.is_https())) or "")
            if sess is not None and sess.data.get("scheme") != self.scheme():
                sess = None
        if sess is None and create:
            sess = self.sessions.create(data={"scheme": self.scheme()})
            self._send_cookie(sess)
        env["gk.session"] = sess
        return sess

    def _send_cookie(self, sess: Session, max_age: int | None = None) -> None:
        bottle.request.environ["gk.cookie"] = session_cookie(sess.sid, self.is_https(), max_age)

    def log_in(self, user: User) -> Session:
        """A new session id for ``user`` (no fixation): the old one is dropped, its data kept."""
        old = self.session()
        sess = self.sessions.login(old, user.address)
        bottle.request.environ["gk.session"] = sess
        bottle.request.environ.pop("gk.user", None)
        self._send_cookie(sess, int(self.sessions.login_seconds))
        return sess

    def rotate_session(self) -> Session:
        """A new id for this session (same user and data), after it gained a privilege: the
        wizard's claim, the administrator's creation."""
        old = self.session()
        assert old is not None
        if old.address:
            user = self.ctx.accounts.get_user(old.address)
            if user is not None:
                return self.log_in(user)
        sess = self.sessions.login(old, "")
        bottle.request.environ["gk.session"] = sess
        self._send_cookie(sess)
        return sess

    def log_out(self) -> None:
        sess = self.session(create=False)
        if sess:
            self.sessions.delete(sess.sid)
        bottle.request.environ["gk.cookie"] = session_cookie("", self.is_https(), 0)
        bottle.request.environ["gk.session"] = None

    def user(self) -> User | None:
        env = bottle.request.environ
        if "gk.user" not in env:
            sess = self.session(create=False)
            env["gk.user"] = self.ctx.accounts.get_user(sess.address) if sess and sess.address else None
        return env["gk.user"]

    def require_user(self) -> User:
        user = self.user()
        if user is None:
            raise bottle.redirect("/login?next=" + bottle.request.path)
        return user

    def require_admin(self) -> User:
        user = self.require_user()
        if not user.is_admin:
            raise bottle.HTTPError(403, N_("This page is for administrators only."))
        return user

    def signed_in(self) -> User:
        """The signed-in user of a USER or ADMIN route (its policy already turned visitors away)."""
        user = self.user()
        if user is None:  # a handler under another policy: refuse as its policy would have
            raise bottle.redirect("/login?next=" + bottle.request.path)
        return user

    # -- rendering -----------------------------------------------------------------------
    def lang(self) -> str:
        """The page's language: ``?lang=`` (the switch on the claim, login and wizard pages; kept
        in a cookie), else the signed-in user's setting, else that cookie, else the browser's."""
        chosen = bottle.request.query.get("lang", "")
        if chosen in i18n.LANGUAGES:
            secure = bottle.request.urlparts.scheme == "https"
            bottle.response.set_cookie(
                LANG_COOKIE, chosen, path="/", max_age=365 * 86400, samesite="Lax", httponly=True, secure=secure
            )
            return chosen
        user = self.user()
        cookie = bottle.request.get_cookie(LANG_COOKIE, "")
        preferred = user.language if user and user.language in i18n.LANGUAGES else cookie
        return i18n.negotiate(bottle.request.get_header("Accept-Language", ""), preferred)

    def gettext(self, text: str, **kw: object) -> str:
        """``text`` in this request's language, ``{placeholders}`` filled from ``kw``."""
        return i18n.translator(self.lang())(text, **kw)

    def error_text(self, exc: Exception) -> str:
        """A refusal's message in this request's language: exceptions that carry a catalog
        ``template`` and its ``params`` (``AccountError``, ``TimeZoneError``) are translated."""
        template = getattr(exc, "template", None)
        if not isinstance(template, str):
            return str(exc)
        return self.gettext(template, **getattr(exc, "params", {}))

    def render(self, template: str, **kw: Any) -> str:
        sess = self.session()
        assert sess is not None
        lang = self.lang()
        st, _ = self.claim_state()
        return self.template(template).render(
            _=i18n.translator(lang),
            folder_name=lambda name: i18n.folder_name(name, lang),
            format_datetime=lambda when, seconds=True: i18n.format_datetime(when, lang, seconds),
            lang=lang,
            ui_languages=i18n.LANGUAGES,
            csrf=sess.csrf,
            user=self.user(),
            htmx=HTMX,
            wizard_done=st == claim.COMPLETE,
            path=bottle.request.path,
            **kw,
        )

    def mount(self, prefix: str, app: bottle.Bottle, *, csrf_exempt: bool = False) -> None:
        """Mount another feature's bottle app (DAV, chat, AI). The wizard gate and security headers
        apply to it; ``csrf_exempt`` is for APIs authenticated per request (HTTP Basic, bearer
        tokens) rather than by the session cookie, e.g. CalDAV clients sending PUT/DELETE."""
        bare = not prefix.endswith("/")  # "/mcp": the path itself too (an MCP endpoint is one URL)
        prefix = "/" + prefix.strip("/") + "/"
        self.app.mount(prefix.rstrip("/") if bare else prefix, app)
        if csrf_exempt:
            self.csrf_exempt.append(prefix)

    # -- hooks ---------------------------------------------------------------------------
    def _error(self, err: bottle.HTTPError) -> str:
        """The 403/404/405 page in the viewer's language: a heading for the status, and the
        message given with the error when the catalog knows it (raise sites mark theirs with
        ``N_``); another's (bottle's "Not found: '/x'", a library's) shows only in English."""
        bottle.response.content_type = "text/html; charset=utf-8"
        try:
            lang = self.lang()
            message = str(err.body or "")
            shown = i18n.translator(lang)(message) if i18n.known(lang, message) else ""
            return self.render(
                "error.html", status=err.status_code, heading=ERROR_HEADINGS.get(err.status_code, ""), message=shown
            )
        except Exception:
            return f"{err.status_code}"

    def _before(self) -> None:
        req = bottle.request
        path = req.path
        st, recovery = self.claim_state()
        if (
            not self.is_https()
            and st == claim.COMPLETE
            and self.ctx.config.http.https_port
            and settings.of(self.data_dir).https_redirect()
            and not path.startswith(
                ("/.well-known/autoconfig/", "/mail/config-v1.1.xml", "/.well-known/acme-challenge/")
            )
        ):
            host = (req.get_header("Host") or self.ctx.hostname).rsplit(":", 1)[0]
            port = self.ctx.config.http.https_port
            netloc = host if port == 443 else f"{host}:{port}"
            query = ("?" + req.query_string) if req.query_string else ""
            raise bottle.redirect(f"https://{netloc}{path}{query}", 301 if req.method in ("GET", "HEAD") else 308)
        if path.startswith(OPEN_PATHS):
            return
        if st != claim.COMPLETE:
            if not self.client_is_lan():
                raise bottle.HTTPError(403, N_("Setup is only available from the local network."))
            if not path.startswith("/wizard"):
                raise bottle.redirect("/wizard")
        elif path.startswith("/wizard"):
            if not (recovery and path in self.recovery_paths):
                raise bottle.HTTPError(404, N_("Not found"))
            if not self.client_is_lan():
                raise bottle.HTTPError(403, N_("Owner recovery is only available from the local network."))
        policy = self.policy_of(req.environ)
        csrf = policy.csrf if policy is not None else not (path + "/").startswith(tuple(self.csrf_exempt))
        if req.method in UNSAFE and csrf:
            check_origin(req.environ)
            sess = self.session(create=False)
            token = req.forms.get("csrf") or req.get_header("X-CSRF-Token") or ""
            if sess is None or not hmac.compare_digest(sess.csrf.encode(), token.encode()):
                raise bottle.HTTPError(403, N_("Missing or invalid CSRF token; reload the page and try again."))
        if path.startswith("/wizard") and not self.is_https() and self.ctx.config.http.https_port:
            # the wizard over plain HTTP (HTTPS on) is only a page that sends the owner to HTTPS:
            # the setup code and the administrator password never cross the network in clear
            # text, and a POST over HTTP changes nothing (403)
            if self.setup_over_http is not None:
                body = self.setup_over_http(self)
                raise bottle.HTTPResponse(body, status=200 if req.method in ("GET", "HEAD") else 403)
        if policy is None:
            return
        if policy.access is Access.USER:
            self.require_user()
        elif policy.access is Access.ADMIN:
            self.require_admin()


def _static(web: Web, path: str) -> bottle.HTTPResponse:
    resp = bottle.static_file(path, root=str(HERE / "static"))
    resp.set_header("Cache-Control", "public, max-age=86400")
    return resp
