# ruff: noqa: F811  (pytest fixtures imported from support.peermta / support.testca)
"""Certificates by ACME against Debian's ``pebble`` (Let's Encrypt's test CA) on loopback.

Pebble resolves the host name through the loopback DNS server and validates HTTP-01 by
fetching ``/.well-known/acme-challenge/<token>`` from GK's real HTTP listener; GK's child
``gk acme renew`` orders, answers and saves; ``gk serve`` loads the result into its listeners.
Shown: issuance at start with the chain verifying against pebble's root, renewal before expiry
(a new certificate served without a restart), and a failed validation that keeps the
self-signed certificate and says why on the dashboard.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request

import pytest
from cryptography import x509
from support.gkserver import PORT_KEYS, free_port
from support.skips import skip_or_fail
from support.testca import ca  # noqa: F401
from test_web_http import NO_MAIL, run_wizard

HOST = "mail.acme.example"


@pytest.fixture
def pebble(tmp_path, ca, dns_server):  # type: ignore[no-untyped-def]
    if not shutil.which("pebble"):
        skip_or_fail("pebble missing (apt-get install pebble; make test installs it)")
    cert, key = ca.issue("127.0.0.1")
    port, mgmt, http_port = free_port(), free_port(), free_port()
    cfg = tmp_path / "pebble.json"
    cfg.write_text(
        json.dumps(
            {
                "pebble": {
                    "listenAddress": f"127.0.0.1:{port}",
                    "managementListenAddress": f"127.0.0.1:{mgmt}",
                    "certificate": str(cert),
                    "privateKey": str(key),
                    "httpPort": http_port,  # where pebble fetches http-01 answers: GK's HTTP port
                    "tlsPort": free_port(),
                    "ocspResponderURL": "",
                    "externalAccountBindingRequired": False,
                }
            }
        )
    )
    env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
    log = open(tmp_path / "pebble.log", "wb")
    proc = subprocess.Popen(
        ["pebble", "-config", str(cfg), "-dnsserver", f"127.0.0.1:{dns_server.port}"], stdout=log, stderr=log, env=env
    )
    tls = ssl.create_default_context(cafile=str(ca.ca_file))
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{mgmt}/roots/0", context=tls, timeout=5) as r:
                root = r.read()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "pebble.log").read_text()
            time.sleep(0.2)
    (tmp_path / "pebble-root.pem").write_bytes(root)
    yield {
        "directory": f"https://127.0.0.1:{port}/dir",
        "http_port": http_port,
        "ca_file": str(ca.ca_file),
        "root": tmp_path / "pebble-root.pem",
        "log": tmp_path / "pebble.log",
    }
    proc.terminate()
    proc.wait(10)
    log.close()


def served_certificate(port: int) -> x509.Certificate:
    tls = ssl.create_default_context()
    tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw, tls.wrap_socket(raw) as s:
        der = s.getpeercert(binary_form=True)
    assert der
    return x509.load_der_x509_certificate(der)


def wait_log(srv, text: str, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while text not in srv.log():
        assert time.monotonic() < deadline, f"no {text!r} in the log:\n{srv.log()[-3000:]}"
        time.sleep(0.2)


def acme_server(make_server, pebble, dns_server, host: str = HOST, **acme):  # type: ignore[no-untyped-def]
    cfg = {
        "enabled": True,
        "directory_url": pebble["directory"],
        "ca_file": pebble["ca_file"],
        "first_check_seconds": 0.5,
    }
    cfg.update(acme)
    overrides = {**NO_MAIL, "server": {"hostname": host}, "dns": dns_server.config(), "acme": cfg}
    srv = make_server(overrides=overrides)
    # every listener on a port of its own (a port left out falls back to its dev default, which
    # the next test's server then finds taken); HTTP on the port pebble validates against
    srv.ports = {f"{section}.{key}": free_port() for section, key in PORT_KEYS} | {"http.port": pebble["http_port"]}
    return srv


def test_certificate_issued_verified_and_renewed_without_restart(make_server, pebble, dns_server):
    dns_server.add(HOST, "A", "127.0.0.1")
    srv = acme_server(make_server, pebble, dns_server).start()
    wait_log(srv, f"acme: certificate for {HOST} in use")
    https = srv.port("http.https_port")
    first = served_certificate(https)
    assert first.issuer != first.subject  # no longer self-signed: pebble's intermediate signed it
    # the chain verifies against pebble's root for the host name, as a browser would check it
    tls = ssl.create_default_context(cafile=str(pebble["root"]))
    with socket.create_connection(("127.0.0.1", https), timeout=30) as raw, tls.wrap_socket(raw, server_hostname=HOST):
        pass
    assert not list((srv.data_dir / "acme" / "challenges").iterdir())  # answers removed once used
    # renewal: with 10,000 days of margin every check renews; the new one is served at once
    srv.stop()
    srv.overrides["acme"].update(renew_days=10000, check_hours=0.002)
    srv.start()
    pid = srv.pid
    wait_log(srv, f"acme: certificate for {HOST} in use")
    deadline = time.monotonic() + 120
    while served_certificate(https).serial_number == first.serial_number:
        assert time.monotonic() < deadline, srv.log()[-3000:]
        time.sleep(0.5)
    assert srv.pid == pid
    assert "Traceback" not in srv.log()


def test_failed_validation_keeps_the_self_signed_certificate_and_says_why(make_server, pebble, dns_server):
    dns_server.add("fail.acme.example", "A", "127.0.0.9")  # nothing answers HTTP there
    srv = acme_server(make_server, pebble, dns_server, host="fail.acme.example").start()
    wait_log(srv, "the self-signed one stays in use")
    cert = served_certificate(srv.port("http.https_port"))
    assert cert.issuer == cert.subject
    admin = run_wizard(srv)
    resp, page = admin.get("/dashboard")
    assert resp.status == 200 and 'id="acme-failed"' in page and "fail.acme.example" in page


def test_turned_on_from_the_settings_page_without_a_restart(make_server, pebble, dns_server):
    dns_server.add("mail.test.example", "A", "127.0.0.1")  # the host name the wizard sets
    srv = acme_server(make_server, pebble, dns_server, enabled=False).start()
    admin = run_wizard(srv)
    resp, page = admin.get("/admin/settings")
    assert resp.status == 200 and 'name="acme"' in page
    assert admin.post("/admin/settings/certificate", {"acme": "1"}, csrf=False)[0].status == 403
    resp, page = admin.post("/admin/settings/certificate", {"acme": "1", "email": "owner@test.example"})
    assert resp.status == 303 and "Let&#39;s Encrypt is on" in admin.get("/admin/settings")[1]
    wait_log(srv, "acme: certificate for mail.test.example in use")
    cert = served_certificate(srv.port("http.https_port"))
    assert cert.issuer != cert.subject
    assert "enabled = true" in (srv.data_dir / "gk.toml").read_text()
