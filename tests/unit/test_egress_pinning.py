"""gk.security.egress: the one check behind requests to hosts a user named (SSRF)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from gk.security.egress import EgressRefused, PinnedHTTP, vetted_address

REFUSAL = "{host} is at {address}: not for you"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "10.1.2.3", "192.168.1.1", "169.254.169.254", "::1"])
def test_a_host_on_the_box_or_the_lan_is_refused_with_the_callers_message(host: str) -> None:
    with pytest.raises(EgressRefused, match=r"is at .*: not for you"):
        vetted_address(host, 80, REFUSAL)


def test_an_administrator_may_reach_the_lan_and_a_public_address_passes() -> None:
    assert vetted_address("127.0.0.1", 80, REFUSAL, allow_lan=True) == "127.0.0.1"
    assert vetted_address("192.168.1.1", 80, REFUSAL, allow_lan=True) == "192.168.1.1"
    assert vetted_address("8.8.8.8", 443, REFUSAL) == "8.8.8.8"  # a literal: no lookup, no network


def test_a_name_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(EgressRefused, match="cannot resolve"):
        vetted_address("no-such-host.invalid", 80, REFUSAL)


@pytest.fixture
def local_http() -> Iterator[tuple[int, list[str]]]:
    hosts: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hosts.append(self.headers.get("Host", ""))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield srv.server_address[1], hosts
    finally:
        srv.shutdown()
        srv.server_close()


def test_the_connection_goes_to_the_vetted_address_whatever_the_name_resolves_to(
    local_http: tuple[int, list[str]],
) -> None:
    port, hosts = local_http
    # the name would not resolve at all: only the pinned address is ever connected to
    conn = PinnedHTTP("tools.example.invalid", port, 5.0, "127.0.0.1")
    try:
        conn.request("GET", "/")
        assert conn.getresponse().status == 204
    finally:
        conn.close()
    assert hosts == [f"tools.example.invalid:{port}"]
