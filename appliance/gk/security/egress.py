"""Requests the box makes to a host a user named: only to public addresses, pinned.

A URL a user types (an assistant tool server, an OAuth client's metadata document) must not
make the box reach its own loopback or LAN and read the answer back (server-side request
forgery). ``vetted_address`` resolves the name once and refuses it unless every address is
public (``ipaddress.is_global``); ``PinnedHTTP``/``PinnedHTTPS`` then connect to that very
address, with the name kept for the Host header, SNI and the certificate check, so a second
resolution (DNS rebinding) cannot send the request elsewhere. One module for both callers
(``gk.mcp.client``, ``gk.oauth.clients``): the check was written twice before.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl


class EgressRefused(Exception):
    """The host cannot be resolved, or one of its addresses is not public. ``kind``: the same
    code as ``gk.mcp.client.MCPClientError``'s, for the page that explains it."""

    kind = "unresolvable"


class NotPublic(EgressRefused):
    """One of the host's addresses is not public (the LAN, the box itself): its user may be told
    so, in their language (``gk.web.assistant_tools``), rather than of a name that does not resolve."""

    kind = "not_public"


def vetted_address(host: str, port: int, refusal: str, allow_lan: bool = False) -> str:
    """The address to connect to for ``host``: every address it resolves to must be public
    unless ``allow_lan``. ``refusal`` is the message for a non-public one, with ``{host}`` and
    ``{address}`` in it (it says who may reach the LAN instead)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise EgressRefused(f"cannot resolve {host}: {exc}") from None
    addresses = sorted({str(info[4][0]) for info in infos})
    if not addresses:
        raise EgressRefused(f"cannot resolve {host}")
    if not allow_lan:
        for address in addresses:
            if not ipaddress.ip_address(address.split("%", 1)[0]).is_global:
                raise NotPublic(refusal.format(host=host, address=address))
    return addresses[0]


class PinnedHTTP(http.client.HTTPConnection):
    """HTTP to a vetted address, the Host header still the server's name."""

    def __init__(self, host: str, port: int | None, timeout: float, address: str):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a vetted address, with the server's name for SNI and the certificate check."""

    def __init__(
        self, host: str, port: int | None, timeout: float, address: str, context: ssl.SSLContext | None = None
    ):
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]
