"""The external PyPI ``caldav-server-tester`` against a real ``gk serve``: every feature it
found fully supported in the committed baseline (``tests/dav/caldav-server-tester.gk.json``) must
still be, so a regression in the protocol layer or in GK's storage fails here. With
``GK_DAV_TESTER_UPDATE=1`` the run rewrites the baseline (and its compact JSON report) instead.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.gkserver import GKServer

from gk import claim

BASELINE = Path(__file__).resolve().parents[1] / "dav"
USER, PASSWORD = "tester@tester.example", "tester password 1"
OTHER, OTHER_PASSWORD = "other@tester.example", "other password 1"
NO_MAIL = {"smtp": {"port": 0, "submission_port": 0, "submissions_port": 0}, "imap": {"port": 0, "tls_port": 0}}
TESTER = shutil.which("caldav-server-tester", path=str(Path(sys.executable).parent))


def run_tester(url: str, fmt: str, config: Path) -> str:
    """The tester as USER, with OTHER as a second account (its RFC 6638 multi-user checks: free-busy
    of another user, invitations in their scheduling inbox)."""
    assert TESTER, "caldav-server-tester is in the test extra"
    sections = {
        name: {"caldav_url": url, "caldav_username": user, "caldav_password": password}
        for name, user, password in (("gk", USER, PASSWORD), ("other", OTHER, OTHER_PASSWORD))
    }
    config.write_text(json.dumps(sections))
    result = subprocess.run(
        [TESTER, "--config-section", "gk", "--config-section", "other", "--format", fmt],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "CALDAV_CONFIG_FILE": str(config)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture
def server(make_server):  # type: ignore[no-untyped-def]
    srv: GKServer = make_server(overrides=NO_MAIL)
    srv.write_config()
    srv.add_user(USER, PASSWORD)
    srv.add_user(OTHER, OTHER_PASSWORD)
    claim.claim(srv.data_dir, "test")
    claim.complete(srv.data_dir)
    return srv.start()


def test_no_feature_regresses_from_the_baseline(server, tmp_path):
    url = f"http://127.0.0.1:{server.port('http.port')}/dav/"
    observed: dict[str, dict[str, object]] = ast.literal_eval(run_tester(url, "hints", tmp_path / "caldav.json"))
    if os.environ.get("GK_DAV_TESTER_UPDATE"):
        (BASELINE / "caldav-server-tester.gk.json").write_text(json.dumps(observed, indent=2, sort_keys=True) + "\n")
        report = json.loads(run_tester(url, "json", tmp_path / "caldav.json"))
        report.pop("ts", None)
        report["url"] = "http://127.0.0.1:PORT/dav/"
        (BASELINE / "caldav-server-tester.report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    baseline: dict[str, dict[str, object]] = json.loads((BASELINE / "caldav-server-tester.gk.json").read_text())
    full = {name for name, info in baseline.items() if info.get("support") == "full"}
    assert len(full) >= 80  # the baseline is a real run, not an empty file
    regressed = {name: observed.get(name) for name in sorted(full) if observed.get(name, {}).get("support") != "full"}
    assert not regressed, f"features no longer fully supported: {regressed}"
    # nothing the tester saw as a server error
    assert '" 500 ' not in server.log()
