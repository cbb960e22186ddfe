# ruff: noqa: F811  (pytest fixtures imported from support.peermta / support.testca)
"""MTA-STS (RFC 8461): a domain in ``enforce`` mode gets mail only over verified TLS to a listed MX.

The policy is served over real HTTPS (a certificate from the test CA) on loopback; the TXT
record, MX and A records come from the loopback DNS server.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from support.gkserver import free_port
from support.outbound import ALICE, dsns, inject, message, queue_list, start_gk, wait_deferred
from support.peermta import peers  # noqa: F401
from support.testca import ca  # noqa: F401

POLICY_SERVER = r"""
import http.server, ssl, sys
from pathlib import Path
address, port, cert, key, root = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], Path(sys.argv[5])
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        f = root / (self.headers.get("Host", "").split(":")[0] + ".txt")
        if self.path != "/.well-known/mta-sts.txt" or not f.is_file():
            self.send_error(404); return
        body = f.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
srv = http.server.HTTPServer((address, port), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("ready", flush=True)
srv.serve_forever()
"""


@pytest.fixture
def policy_server(tmp_path, ca):
    root = tmp_path / "policies"
    root.mkdir()
    cert, key = ca.issue("mta-sts.sts-ok.example", also=("mta-sts.sts-bad.example", "mta-sts.sts-other.example"))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", POLICY_SERVER, "127.0.0.6", str(port), str(cert), str(key), str(root)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout and "ready" in proc.stdout.readline()
    yield port, root
    proc.terminate()
    proc.wait(10)


def policy(root, domain: str, mx: str) -> None:  # type: ignore[no-untyped-def]
    (root / f"mta-sts.{domain}.txt").write_text(
        f"version: STSv1\r\nmode: enforce\r\nmx: {mx}\r\nmax_age: 86400\r\n", encoding="ascii"
    )


def test_enforce_policy_delivers_only_over_verified_tls_to_listed_mx(make_server, dns_server, peers, ca, policy_server):
    sts_port, root = policy_server
    good_cert, good_key = ca.issue("mx.sts-ok.example")
    good = peers("127.0.0.2", cert=good_cert, key=good_key)
    bad_cert, bad_key = ca.issue("mx.sts-bad.example", self_signed=True)
    bad = peers("127.0.0.3", cert=bad_cert, key=bad_key)
    for domain, mx_host, ip in (
        ("sts-ok.example", "mx.sts-ok.example", "127.0.0.2"),
        ("sts-bad.example", "mx.sts-bad.example", "127.0.0.3"),
        ("sts-other.example", "mx.sts-other.example", "127.0.0.2"),
    ):
        dns_server.add(domain, "MX", f"10 {mx_host}.").add(mx_host, "A", ip)
        dns_server.add(f"_mta-sts.{domain}", "TXT", "v=STSv1; id=20261125")
        dns_server.add(f"mta-sts.{domain}", "A", "127.0.0.6")
    policy(root, "sts-ok.example", "*.sts-ok.example")
    policy(root, "sts-bad.example", "mx.sts-bad.example")
    policy(root, "sts-other.example", "mail.elsewhere.example")  # its MX is not listed
    srv = start_gk(make_server, dns_server, peers.port, ca_file=str(ca.ca_file), mta_sts_port=sts_port)
    inject(srv, ALICE, ["bob@sts-ok.example"], message(1, to="bob@sts-ok.example"))
    inject(srv, ALICE, ["bob@sts-bad.example"], message(2, to="bob@sts-bad.example"))
    inject(srv, ALICE, ["bob@sts-other.example"], message(3, to="bob@sts-other.example"))
    (meta, _), *_ = good.wait_for(1)
    assert meta["rcpt_tos"] == ["bob@sts-ok.example"] and meta["tls"] is True
    bad_row = wait_deferred(srv, 2, "bob@sts-bad.example")
    other_row = wait_deferred(srv, 3, "bob@sts-other.example")
    assert "MTA-STS enforce requires a valid one" in bad_row["attempts"][0]["reply"]
    assert "matches its MTA-STS policy" in other_row["attempts"][0]["reply"]
    log = srv.log()
    assert "MTA-STS policy of sts-ok.example: mode=enforce" in log
    assert "certificate of mx.sts-bad.example not verified" in log and "MTA-STS enforce requires a valid one" in log
    assert "MX mx.sts-other.example not allowed by the MTA-STS policy" in log
    time.sleep(1)
    assert bad.messages() == [] and len(good.messages()) == 1 and dsns(srv) == []
    assert sorted(r["rcpt"] for r in queue_list(srv)) == ["bob@sts-bad.example", "bob@sts-other.example"]
