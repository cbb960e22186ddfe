"""Who is calling: a per-user bearer token with the ``mcp`` scope, the same tokens as the
assistant's ``/v1`` API (``gk token add ADDRESS --scope mcp``, ``gk.ai.tokens``). A missing or
invalid token is a 401 whose ``WWW-Authenticate`` names the protected-resource metadata
(RFC 9728) served at ``/.well-known/oauth-protected-resource/mcp``.
"""

from __future__ import annotations

from typing import Any

SCOPE = "mcp"
METADATA_PATH = "/.well-known/oauth-protected-resource"


def bearer(header: str) -> str:
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def base_url(environ: dict[str, Any]) -> str:
    """scheme://host[:port] of this request, as the client addressed it (the Host header)."""
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "localhost")
    return f"{scheme}://{host}"


def challenge(environ: dict[str, Any], error: str = "") -> str:
    value = f'Bearer realm="gk", resource_metadata="{base_url(environ)}{METADATA_PATH}/mcp"'
    if error:
        value += f', error="{error}"'
    return value


def resource_metadata(environ: dict[str, Any]) -> dict[str, Any]:
    """RFC 9728's document, minimal: GK issues its tokens itself (``gk token add``); no OAuth
    authorization server yet, so ``authorization_servers`` is absent."""
    return {
        "resource": base_url(environ) + "/mcp",
        "bearer_methods_supported": ["header"],
        "scopes_supported": [SCOPE],
        "resource_name": "GK",
    }
