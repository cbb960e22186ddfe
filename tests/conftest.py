import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support.gkserver import GKServer


@pytest.fixture
def make_server(tmp_path):
    """Factory: ``make_server(overrides=...)`` returns a not-yet-started GKServer."""
    servers: list[GKServer] = []

    def factory(name: str = "gk", overrides: dict | None = None) -> GKServer:
        srv = GKServer(tmp_path / name, overrides or {})
        servers.append(srv)
        return srv

    yield factory
    for srv in servers:
        srv.stop()


@pytest.fixture
def dns_server():
    """A real DNS server on a loopback port (see support/dnsserver.py)."""
    from support.dnsserver import LoopbackDNS

    server = LoopbackDNS().start()
    yield server
    server.stop()
