"""The QEMU image test's wizard client (tests/image/gkwizard.py and its ``run_wizard``) against a
real ``gk serve``: the image test takes ~15 minutes to build and boot, so the way it drives the
wizard (plain HTTP first, sent on to HTTPS) is checked here, in seconds."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "image"))

import test_image_boot as image_test
from gkwizard import Browser
from support.gkserver import GK
from test_web_http import NO_MAIL, setup_code


def test_image_wizard_client_claims_over_https_and_recovers(make_server):
    srv = make_server(overrides=NO_MAIL).start()
    http_base, https_base = (
        f"http://127.0.0.1:{srv.port('http.port')}",
        f"https://127.0.0.1:{srv.port('http.https_port')}",
    )
    status, _, _ = Browser(http_base).request("/wizard/claim")
    assert status == 200  # what the image test's wait_http sees at first boot
    b = Browser(http_base, https_base)
    image_test.run_wizard(b, setup_code(srv))
    assert b.base == https_base
    assert Browser(http_base).request("/wizard/claim")[0] == 404  # the wizard is closed
    status, location, _ = Browser(http_base).submit("/login", {"address": image_test.ADMIN, "password": "wrong"})
    assert status == 401
    subprocess.run([*GK, "claim", "recover", "--data-dir", str(srv.data_dir)], check=True, capture_output=True)
    rb = Browser(http_base, https_base)
    deadline = time.monotonic() + 60  # the web process caches the claim state for 2 s
    while rb.request("/wizard/claim")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    status, location, _ = rb.submit("/wizard/claim", {"code": setup_code(srv)})
    assert status in (302, 303) and location.endswith("/wizard/password"), (status, location)
