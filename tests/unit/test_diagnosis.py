"""The diagnosis checks against a real loopback DNS server, a real TCP listener and real
certificate files: right, wrong and missing records; reverse DNS; blocklists; port 25."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import dns.resolver
import pytest
from support.smtplistener import smtp_listener

from gk.config import load
from gk.diagnosis import Inputs, run
from gk.diagnosis.checks import check_certificate, check_network
from gk.security.tls import generate_self_signed

# a public address (documentation ranges are not public): only ever looked up in the loopback DNS
DOMAIN, HOST, PUBLIC = "l.example", "mail.l.example", "81.2.69.160"


def resolver_for(port: int) -> dns.resolver.Resolver:
    r = dns.resolver.Resolver(configure=False)
    r.nameservers, r.port, r.timeout, r.lifetime = ["127.0.0.1"], port, 2.0, 4.0
    return r


def inputs(tmp_path: Path, dns_port: int, probe_port: int, hostname: str = HOST) -> Inputs:
    (tmp_path / "gk.toml").write_text(
        f'[server]\nhostname = "{hostname}"\n'
        f'[diagnosis]\nport25_probe_host = "127.0.0.1"\nport25_probe_port = {probe_port}\ntimeout = 2.0\n'
    )
    cert = tmp_path / "tls" / "cert.pem"
    generate_self_signed(cert, tmp_path / "tls" / "key.pem", hostname)
    return Inputs(load(tmp_path), tmp_path, hostname, [DOMAIN], cert, resolver_for(dns_port))


@pytest.fixture
def probe():  # type: ignore[no-untyped-def]
    port, done = smtp_listener()
    yield port
    done.set()


def by_key(findings):  # type: ignore[no-untyped-def]
    return {f.key: f for f in findings}


def test_missing_records_are_errors_and_published_ones_pass(tmp_path, dns_server, probe):
    found = by_key(run(inputs(tmp_path, dns_server.port, probe), only=["dns"]))
    assert found["dns:hostname"].status == "ok"
    assert found[f"dns:MX:{DOMAIN}"].status == "error"
    assert found[f"dns:A:{HOST}"].status == "error"
    assert "public IP address" in found[f"dns:A:{HOST}"].text(found[f"dns:A:{HOST}"].fix)
    assert found[f"dns:SRV:_imaps._tcp.{DOMAIN}"].status == "warning"  # eases setup; mail works without
    dns_server.add(DOMAIN, "MX", f"10 {HOST}.").add(HOST, "A", PUBLIC)
    dns_server.add(DOMAIN, "TXT", "v=spf1 a -all")  # wrong
    found = by_key(run(inputs(tmp_path, dns_server.port, probe), only=["dns"]))
    assert found[f"dns:MX:{DOMAIN}"].status == "ok"
    assert found[f"dns:A:{HOST}"].status == "ok"
    spf = found[f"dns:TXT:{DOMAIN}"]
    assert spf.status == "error" and "v=spf1 a -all" in spf.text(spf.detail) and "v=spf1 mx -all" in spf.text(spf.fix)


def test_a_local_host_name_is_an_error(tmp_path, dns_server, probe):
    found = by_key(run(inputs(tmp_path, dns_server.port, probe, hostname="vm.local"), only=["dns"]))
    assert found["dns:hostname"].status == "error"
    assert f"mail.{DOMAIN}" in found["dns:hostname"].text(found["dns:hostname"].fix)


def test_reverse_dns_blocklists_and_port_25(tmp_path, dns_server, probe):
    dns_server.add(HOST, "A", PUBLIC)
    ptr = "160.69.2.81.in-addr.arpa"
    dns_server.add(ptr, "PTR", "dsl-10.isp.example.")
    dns_server.add("160.69.2.81.zen.spamhaus.org", "A", "127.0.0.4")  # listed (XBL)
    dns_server.add("160.69.2.81.bl.spamcop.net", "A", "127.255.255.254")  # query refused
    found = by_key(check_network(inputs(tmp_path, dns_server.port, probe)))
    rdns = found[f"rdns:{PUBLIC}"]
    assert rdns.status == "error" and "dsl-10.isp.example" in rdns.text(rdns.detail)
    assert found["dnsbl:zen.spamhaus.org"].status == "error"
    assert found["dnsbl:bl.spamcop.net"].status == "warning"
    assert found["dnsbl:b.barracudacentral.org"].status == "ok"  # NXDOMAIN: not listed
    assert found["port25:out"].status == "ok" and "peer.example" in found["port25:out"].text(found["port25:out"].detail)
    assert ("160.69.2.81.zen.spamhaus.org", "A") in dns_server.queries  # real lookups
    dns_server.clear(ptr)
    dns_server.add(ptr, "PTR", f"{HOST}.")
    assert by_key(check_network(inputs(tmp_path, dns_server.port, probe)))[f"rdns:{PUBLIC}"].status == "ok"


def test_port_25_blocked_is_an_error(tmp_path, dns_server):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now: connection refused, as a blocked port answers
    found = by_key(check_network(inputs(tmp_path, dns_server.port, port)))
    assert found["port25:out"].status == "error" and "relay" in found["port25:out"].text(found["port25:out"].fix)


def test_certificate_names_expiry_and_self_signed(tmp_path, dns_server, probe):
    ins = inputs(tmp_path, dns_server.port, probe)
    found = by_key(check_certificate(ins))
    assert found["cert:name"].status == "ok"
    assert found["cert:expiry"].status == "ok"
    assert found["cert:issuer"].status == "warning"
    ins.hostname = "other.example"  # the host name changed, the certificate did not
    assert by_key(check_certificate(ins))["cert:name"].status == "error"
    ins.now = time.time() + 20 * 365 * 86400
    assert by_key(check_certificate(ins))["cert:expiry"].status == "error"
    ins.cert_file = tmp_path / "missing.pem"
    assert by_key(check_certificate(ins))["cert"].status == "error"


def test_system_checks_report_disk_and_memory(tmp_path, dns_server, probe):
    found = by_key(run(inputs(tmp_path, dns_server.port, probe), only=["system"]))
    assert found["disk"].status in ("ok", "warning", "error") and "MB free" in found["disk"].text(found["disk"].detail)
    assert found["memory"].params["total_mb"] > 0
    assert "clock" in found
