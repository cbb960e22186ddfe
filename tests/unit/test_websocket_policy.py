"""``gk.web.service.WebSocketPolicy``: which upgrades the web listeners accept (Origin) and
which subprotocol a mount gets (the client's first that the mount speaks)."""

from __future__ import annotations

from gk.web.service import WebSocketPolicy

POLICY = WebSocketPolicy(
    frozenset({"https://webirc.example.net"}), {"/chat/irc": ("binary.ircv3.net", "text.ircv3.net")}
)


def env(**headers: str) -> dict[str, str]:
    e = {"PATH_INFO": "/chat/irc", "HTTP_HOST": "box.example:8443"}
    e.update({("HTTP_" + k.upper()): v for k, v in headers.items()})
    return e


def test_origin_same_host_configured_or_absent() -> None:
    assert POLICY.origin_refused(env()) is None  # no Origin: not a browser
    assert POLICY.origin_refused(env(origin="https://box.example:8443")) is None
    assert POLICY.origin_refused(env(origin="https://BOX.example:8443")) is None
    assert POLICY.origin_refused(env(origin="https://webirc.example.net/")) is None
    for bad in ("https://box.example", "https://box.example:8443.evil.test", "https://evil.test", "null", "x"):
        assert POLICY.origin_refused(env(origin=bad)), bad
    assert POLICY.origin_refused({"HTTP_ORIGIN": "https://box.example"})  # no Host: only listed origins


def test_subprotocol_in_the_clients_order_and_path() -> None:
    assert POLICY.subprotocol(env(sec_websocket_protocol="text.ircv3.net, binary.ircv3.net")) == "text.ircv3.net"
    assert POLICY.subprotocol(env(sec_websocket_protocol="foo, binary.ircv3.net")) == "binary.ircv3.net"
    assert POLICY.subprotocol(env(sec_websocket_protocol="foo")) is None
    assert POLICY.subprotocol(env()) is None
    e = env(sec_websocket_protocol="text.ircv3.net")
    POLICY.subprotocol(e)
    assert e["PATH_INFO"] == "/chat/irc/"  # routed to the mount
    other = env(sec_websocket_protocol="text.ircv3.net")
    other["PATH_INFO"] = "/chat/ircx"
    assert POLICY.subprotocol(other) is None and other["PATH_INFO"] == "/chat/ircx"
