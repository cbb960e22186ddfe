"""Who is calling: a bearer token good for ``/mcp`` — a per-user token with the ``mcp`` scope,
the same tokens as the assistant's ``/v1`` API (``gk token add ADDRESS --scope mcp``,
``gk.ai.tokens``), or an OAuth access token GK issued for this resource (``gk.oauth``: GK is
the authorization server of its own MCP endpoint). A missing or invalid token is a 401 whose
``WWW-Authenticate`` names the protected-resource metadata (RFC 9728) served at
``/.well-known/oauth-protected-resource/mcp`` (and without the suffix) and the scopes a client
should ask for (read-only access to every feature: least privilege; the consent page shows
them to the user).
"""

from __future__ import annotations

from typing import Any

from gk.oauth.server import DEFAULT_SCOPE, OAUTH_SCOPES, base_url

SCOPE = "mcp"
METADATA_PATH = "/.well-known/oauth-protected-resource"

__all__ = ["SCOPE", "METADATA_PATH", "base_url", "bearer", "challenge", "insufficient_scope", "resource_metadata"]


def bearer(header: str) -> str:
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def challenge(environ: dict[str, Any], error: str = "") -> str:
    value = f'Bearer realm="gk", resource_metadata="{base_url(environ)}{METADATA_PATH}/mcp", scope="{DEFAULT_SCOPE}"'
    if error:
        value += f', error="{error}"'
    return value


def insufficient_scope(environ: dict[str, Any], scope: str, description: str) -> str:
    """The 403 step-up challenge: the scopes the refused operation needs (space-separated)."""
    text = "".join(c for c in description if " " <= c <= "~" and c not in '"\\')[:200]  # a header value
    return (f'Bearer error="insufficient_scope", scope="{scope}", '
            f'resource_metadata="{base_url(environ)}{METADATA_PATH}/mcp", error_description="{text}"')  # fmt: skip


def resource_metadata(environ: dict[str, Any]) -> dict[str, Any]:
    """RFC 9728's document: the resource is ``/mcp`` under the host the client addressed, and
    its authorization server is this same origin (RFC 8414 metadata at
    ``/.well-known/oauth-authorization-server``)."""
    base = base_url(environ)
    return {
        "resource": base + "/mcp",
        "authorization_servers": [base],
        "bearer_methods_supported": ["header"],
        "scopes_supported": list(OAUTH_SCOPES),
        "resource_name": "GK",
    }
