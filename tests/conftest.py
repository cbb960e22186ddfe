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


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory):
    """The tiny random-weight GGUF model (support/tinygguf.py), written once per test session."""
    pytest.importorskip("gguf", reason="the `ai` extra is not installed (make setup installs it)")
    from support import tinygguf

    return tinygguf.write(tmp_path_factory.mktemp("models") / "tiny.gguf")


@pytest.fixture
def dns_server():
    """A real DNS server on a loopback port (see support/dnsserver.py)."""
    from support.dnsserver import LoopbackDNS

    server = LoopbackDNS().start()
    yield server
    server.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    """A failing test's report ends with the log tail of every ``gk serve`` started so far that
    is still running or died: CI shows why a server refused or misbehaved, not only that it did."""
    from support.gkserver import STARTED

    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for srv in STARTED[-6:]:
        if srv.proc is None:
            continue
        state = "running" if srv.proc.poll() is None else f"exited {srv.proc.returncode}"
        tail = "\n".join(srv.log().splitlines()[-40:])
        report.sections.append((f"gk serve {srv.data_dir} ({state}, ports {srv.ports})", tail))
