"""An in-process client of GK's web app: real WSGI calls into ``gk.web.service.build(ctx)`` with a
real ``AppContext`` (SQLite account store, claim store, TLS files in a temp dir), no listener,
no ``gk serve`` subprocess. It keeps cookies per scheme like a browser and reads the CSRF token
from the last page, as ``tests/integration/test_web_http.py``'s socket client does.
"""

from __future__ import annotations

import contextlib
import io
import re
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gk import claim
from gk.config import ConfigBuilder
from gk.context import AppContext, build_context
from gk.web.app import Web

# argon2 at its floor: these tests are about routing, not hashing cost
FAST_AUTH = {"argon2_time_cost": 1, "argon2_memory_kib": 8192}


def make_context(data_dir: Path, overrides: dict[str, dict[str, Any]] | None = None) -> AppContext:
    """A real context in ``data_dir`` (mail listeners and queue are not started)."""
    builder = ConfigBuilder("test").merge(
        {"server": {"hostname": "gk.test.example"}, "http": {"port": 8080, "https_port": 8443}, "auth": FAST_AUTH}
    )
    builder.merge(overrides or {})
    return build_context(builder.build(), data_dir)


def make_web(data_dir: Path, overrides: dict[str, dict[str, Any]] | None = None) -> Web:
    from gk.web import service

    return service.build(make_context(data_dir, overrides))


def complete_setup(web: Web) -> None:
    """The wizard done, as after its summary step (the claim gate then serves every page)."""
    claim.ensure_setup_code(web.data_dir)
    claim.claim(web.data_dir, "test")
    claim.complete(web.data_dir)
    web.forget_state()


ADMIN, ADMIN_PW = "owner@test.example", "correct horse battery"
USER, USER_PW = "bob@test.example", "bob password 12345"


def set_up_web(data_dir: Path) -> Web:
    """A server set up (wizard done) with an administrator ``ADMIN`` and a user ``USER``."""
    web = make_web(data_dir)
    complete_setup(web)
    web.ctx.accounts.add_user(ADMIN, ADMIN_PW, admin=True)
    web.ctx.accounts.add_user(USER, USER_PW)
    return web


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    text: str
    body: bytes = b""  # the raw bytes (a download)

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers if k.lower() == name.lower()), "")

    @property
    def location(self) -> str:
        return self.header("Location")


@dataclass
class Client:
    web: Web
    https: bool = True
    remote: str = "127.0.0.1"
    cookies: dict[str, str] = field(default_factory=dict)
    csrf: str = ""

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        path, _, query = path.partition("?")
        body = urllib.parse.urlencode(form).encode() if form is not None else b""
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "gk.test.example",
            "SERVER_PORT": "8443" if self.https else "8080",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": self.remote,
            "HTTP_HOST": "gk.test.example:" + ("8443" if self.https else "8080"),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https" if self.https else "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": io.StringIO(),
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "CONTENT_LENGTH": str(len(body)),
        }
        if form is not None:
            environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
        if self.cookies:
            environ["HTTP_COOKIE"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for name, value in (headers or {}).items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        started: list[Any] = []

        def start_response(status: str, hdrs: list[tuple[str, str]], exc_info: Any = None) -> None:
            started[:] = [status, hdrs]

        chunks: Iterable[bytes] = self.web.wsgi(environ, start_response)
        try:
            data = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        status, hdrs = started
        for name, value in hdrs:
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key] = rest.split(";", 1)[0]
                if "Max-Age=0" in value:
                    self.cookies.pop(key)
        text = data.decode("utf-8", "replace")
        m = re.search(r'name="csrf" value="([^"]+)"', text)
        if m:
            self.csrf = m.group(1)
        return Response(int(status.split()[0]), hdrs, text, data)

    def get(self, path: str, **kw: Any) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, form: dict[str, str] | None = None, csrf: bool = True) -> Response:
        return self.request("POST", path, form={**(form or {}), **({"csrf": self.csrf} if csrf else {})})

    def login(self, address: str, password: str) -> None:
        self.get("/login")
        resp = self.post("/login", {"address": address, "password": password})
        assert resp.status == 303, (resp.status, resp.text[:300])


def signed_in(web: Web, address: str, password: str) -> Client:
    """A client logged in as ``address``, holding its session's CSRF token."""
    c = Client(web)
    c.login(address, password)
    c.get("/account")  # a page with the session's CSRF token
    assert c.csrf
    return c


def web_with_dav(data_dir: Path, steps: Any = None) -> tuple[Web, Any]:
    """The web app in process over a started DAV service (registered as gk serve does), built
    with the wizard ``steps`` (the core ones by default); the caller stops the service."""
    from gk.dav import service as dav_service
    from gk.web import service, wizardsteps

    ctx = make_context(data_dir)
    svc = dav_service.start(ctx)
    assert svc is not None
    ctx.services.register("dav", svc)
    return service.build(ctx, wizardsteps.CORE_STEPS if steps is None else steps), svc


@contextlib.contextmanager
def web_with_tools(data_dir: Path) -> Iterator[Web]:
    """``set_up_web`` with the mailbox and the MCP service started (the assistant's tools page
    and its calls read mail); everything stopped after."""
    from gk.mail.mailbox import service as mailbox_service
    from gk.mcp.service import MCPService
    from gk.web import assistant_tools

    web = set_up_web(data_dir)
    mailbox = mailbox_service.start(web.ctx)
    assert mailbox is not None
    web.ctx.services.register("mailbox", mailbox)
    mcp = MCPService(web.ctx)
    web.ctx.services.provide(mcp)
    try:
        yield web
    finally:
        found = assistant_tools._settings.pop(Path(web.data_dir), None)
        if found is not None:
            found.close()
        mcp.stop(0)
        mailbox.stop(0)
