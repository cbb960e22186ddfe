"""The diagnosis page and ``gk diagnose`` against a real ``gk serve``, a loopback DNS server
and a loopback port-25 peer: CSRF, admin only, findings in English and French, exit codes."""

from __future__ import annotations

import json
import re

from support.gkserver import gk
from support.smtplistener import smtp_listener
from test_web_http import NO_MAIL, Client, run_wizard

FINDING = re.compile(r'<li class="finding" data-key="([^"]+)" data-status="([^"]+)">')


def findings(page: str) -> dict[str, str]:
    return dict(FINDING.findall(page))


def test_diagnosis_page_and_cli(make_server, dns_server):
    port, done = smtp_listener()
    try:
        probe = {"port25_probe_host": "127.0.0.1", "port25_probe_port": port, "timeout": 2.0}
        srv = make_server(overrides={**NO_MAIL, "dns": dns_server.config(), "diagnosis": probe}).start()
        admin = run_wizard(srv)
        resp, page = admin.get("/admin/diagnosis")
        assert resp.status == 200 and 'id="run"' in page and not findings(page)
        assert admin.post("/admin/diagnosis", {}, csrf=False)[0].status == 403
        resp, page = admin.post("/admin/diagnosis", {})
        assert resp.status == 200
        found = findings(page)
        assert found["dns:MX:test.example"] == "error" and found["dns:A:mail.test.example"] == "error"
        assert found["port25:out"] == "ok" and found["cert:issuer"] == "warning" and found["disk"] in ("ok", "warning")
        assert "Publish MX test.example = 10 mail.test.example." in page
        dns_server.add("test.example", "MX", "10 mail.test.example.")
        _, page = admin.post("/admin/diagnosis", {})
        assert findings(page)["dns:MX:test.example"] == "ok"
        # French for a French browser: the templates are translated, then filled in
        _, page = admin.get("/admin/diagnosis", headers={"Accept-Language": "fr-FR,fr;q=0.9"})
        if 'lang="fr"' in page:  # the admin's own language setting wins over the browser
            assert "Enregistrement MX test.example" in page and "Comment corriger" in page
        # the CLI sees the same: an error (no DKIM record published) makes it exit 1
        cp = gk(srv.data_dir, "diagnose", "--json", check=False)
        assert cp.returncode == 1, cp.stderr
        by_key = {f["key"]: f for f in json.loads(cp.stdout)}
        assert by_key["dns:MX:test.example"]["status"] == "ok"
        assert by_key["dns:TXT:gk._domainkey.test.example"]["status"] == "error"
        # not for a user who is not an administrator, nor for anyone signed out
        bob = Client(srv)
        bob.login("bob@test.example", "bob password 1")
        assert bob.get("/admin/diagnosis")[0].status == 403
        assert bob.post("/admin/diagnosis", {})[0].status == 403
        assert Client(srv).get("/admin/diagnosis")[0].status == 303
    finally:
        done.set()
