"""``/api/status`` (the admin dashboard's data) reports every listener as up without connecting
to it: a connect-and-close probe made each implicit-TLS port log a failed TLS handshake (HTTPS a
full greenlet traceback, IMAPS an INFO line) on every call (issue 9, §5)."""

from __future__ import annotations

import json
import ssl
import time
import urllib.request

from support.gkserver import GKServer
from test_web_http import run_wizard

LABELS = {"http", "https", "smtp", "smtp-submission", "smtp-submissions", "imap", "imaps"}


def test_api_status_shows_listeners_up_and_logs_nothing(make_server):  # type: ignore[no-untyped-def]
    srv: GKServer = make_server().start()  # every listener on, the TLS ones (443, 465, 993) included
    c = run_wizard(srv)
    offset = len(srv.log())
    for _ in range(3):
        resp, body = c.get("/api/status")
        assert resp.status == 200, body[:300]
        up = {entry["label"]: entry["up"] for entry in json.loads(body)["listeners"]}
        assert LABELS <= set(up) and all(up.values()), up
    # A complete HTTPS request after the calls: a failed handshake the probes caused would have
    # been handled (and logged) by the hub before this one is answered.
    tls = ssl.create_default_context()
    tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
    with urllib.request.urlopen(f"https://127.0.0.1:{srv.port('http.https_port')}/login", context=tls, timeout=30):
        pass
    time.sleep(1)
    logged = srv.log()[offset:]
    assert "Traceback" not in logged, logged
    assert "handshake" not in logged.lower(), logged
