"""Security headers on every response, and the session cookie, added at the WSGI edge.

Done as WSGI middleware (not a bottle hook) so redirects and errors raised as exceptions,
static files and mounted sub-apps all get them. CSP: scripts only from our origin (htmx is a
vendored file; no inline script anywhere), no framing except where a route asks for its own
policy (the sandboxed mail-body frame sets ``gk.csp`` in the environ).
"""

from __future__ import annotations

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


def session_cookie(sid: str, secure: bool, max_age: int | None) -> str:
    parts = [f"{COOKIE}={sid}", "Path=/", "HttpOnly", "SameSite=Lax"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


class SecurityHeaders:
    def __init__(self, app: Callable[..., Iterable[bytes]]):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            names = {k.lower() for k, _ in headers}
            csp = environ.get("gk.csp", CSP)
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
