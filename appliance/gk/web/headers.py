"""Security headers on every response, and the session cookie, added at the WSGI edge.

Done as WSGI middleware (not a bottle hook) so redirects and errors raised as exceptions,
static files and mounted sub-apps all get them. CSP: scripts only from our origin (htmx is a
vendored file; no inline script anywhere), no framing except where a route asks for its own
policy (the sandboxed mail-body frame sets ``gk.csp`` in the environ).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-src 'self'; frame-ancestors 'none'"
)
COMMON = [
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
]
COOKIE = "gk_session"
# over HTTPS: the __Host- prefix makes browsers refuse it unless Secure, Path=/ and host-only, so
# nothing sent over plain HTTP can set or overwrite it; each scheme keeps its own session
COOKIE_TLS = "__Host-gk_session"


def cookie_name(secure: bool) -> str:
    return COOKIE_TLS if secure else COOKIE


def session_cookie(sid: str, secure: bool, max_age: int | None) -> str:
    parts = [f"{cookie_name(secure)}={sid}", "Path=/", "HttpOnly", "SameSite=Lax"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


HOST_RE = re.compile(r"^[A-Za-z0-9.-]+$|^\[[0-9A-Fa-f:.]+\]$")


def https_origin(environ: dict[str, Any], https_port: int) -> str:
    """The HTTPS origin matching this plain-HTTP request's host ('' when unknown or odd)."""
    host = str(environ.get("HTTP_HOST", ""))
    host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if not https_port or not HOST_RE.match(host):
        return ""
    return f"https://{host}" if https_port == 443 else f"https://{host}:{https_port}"


class SecurityHeaders:
    def __init__(self, app: Callable[..., Iterable[bytes]], https_port: int = 0):
        self.app = app
        self.https_port = https_port

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            names = {k.lower() for k, _ in headers}
            csp = environ.get("gk.csp", CSP)
            if environ.get("wsgi.url_scheme") == "http" and "form-action 'self'" in csp:
                # a form posted over HTTP may be redirected to HTTPS: CSP form-action covers redirects
                origin = https_origin(environ, self.https_port)
                if origin:
                    csp = csp.replace("form-action 'self'", f"form-action 'self' {origin}")
            if "content-security-policy" not in names:
                headers.append(("Content-Security-Policy", csp))
            headers.extend(h for h in COMMON if h[0].lower() not in names)
            if "x-frame-options" not in names and "frame-ancestors 'none'" in csp:
                headers.append(("X-Frame-Options", "DENY"))
            if environ.get("wsgi.url_scheme") == "https":
                headers.append(("Strict-Transport-Security", "max-age=31536000"))
            if "gk.cookie" in environ:
                headers.append(("Set-Cookie", environ["gk.cookie"]))
            if "cache-control" not in names and not environ.get("PATH_INFO", "").startswith("/static/"):
                headers.append(("Cache-Control", "no-store"))
            return start_response(status, headers, exc_info)

        return self.app(environ, start)
