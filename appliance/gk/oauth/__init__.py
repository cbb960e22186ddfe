"""GK as the OAuth 2.1 authorization server of its MCP endpoint (``/mcp``), per the MCP
authorization specification (2025-11-25): RFC 9728 protected-resource metadata (``gk.mcp.auth``),
RFC 8414 authorization-server metadata, an authorization endpoint behind the web login with a
consent page (``web``), a token endpoint with mandatory PKCE S256, single-use short-lived codes,
audience-bound access tokens (RFC 8707) and rotated refresh tokens (``server``, ``store``: all
stored hashed, revocable from the account page), and clients identified by Client ID Metadata
Documents or registered dynamically (RFC 7591) (``clients``: the SSRF fence and LAN policy).

Written by hand (each module says why): no maintained Python library does the server side of
these for bottle; the whole is ~600 lines of checks over SQLite.
"""
