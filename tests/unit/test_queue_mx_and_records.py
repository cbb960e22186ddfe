"""MX resolution (RFC 5321 §5.1, RFC 7505) and `records_for`/`check_live` against a real loopback DNS."""

from __future__ import annotations

import dns.resolver
import pytest

from gk.mail.dnsrecords import check_live, records_for
from gk.mail.outbound import mx


def resolver_for(port: int, timeout: float = 2.0) -> dns.resolver.Resolver:
    r = dns.resolver.Resolver(configure=False)
    r.nameservers, r.port, r.timeout, r.lifetime = ["127.0.0.1"], port, timeout, timeout * 2
    return r


def test_mx_preference_order_implicit_null_and_nxdomain(dns_server):
    dns_server.add("x.example", "MX", "20 b.x.example.").add("x.example", "MX", "10 a.x.example.")
    dns_server.add("a.x.example", "A", "127.0.0.2").add("b.x.example", "A", "127.0.0.3")
    dns_server.add("b.x.example", "AAAA", "::1")
    dns_server.add("plain.example", "A", "127.0.0.4")
    dns_server.add("null.example", "MX", "0 .")
    dns_server.add("lame.example", "MX", "10 gone.lame.example.")
    res = resolver_for(dns_server.port)
    hosts = mx.resolve_mx(res, "x.example")
    assert [(h.name, h.preference, h.addresses) for h in hosts] == [
        ("a.x.example", 10, ["127.0.0.2"]),
        ("b.x.example", 20, ["127.0.0.3", "::1"]),
    ]
    assert [(h.name, h.addresses) for h in mx.resolve_mx(res, "plain.example")] == [("plain.example", ["127.0.0.4"])]
    with pytest.raises(mx.DNSPermanentError) as null:
        mx.resolve_mx(res, "null.example")
    assert null.value.status == "5.1.10"
    with pytest.raises(mx.DNSPermanentError) as nx:
        mx.resolve_mx(res, "nowhere.example")
    assert nx.value.status == "5.1.2"
    (lame,) = mx.resolve_mx(res, "lame.example")
    assert lame.addresses == [] and "no A/AAAA" in lame.error


def test_unanswered_dns_is_temporary(dns_server):
    port = dns_server.port
    dns_server.stop()
    with pytest.raises(mx.DNSTemporaryError):
        mx.resolve_mx(resolver_for(port, timeout=0.3), "x.example")


def test_records_and_live_check(tmp_path, dns_server):
    (tmp_path / "gk.toml").write_text('[server]\nhostname = "mx.l.example"\n[queue]\ndkim_ed25519_selector = "gked"\n')
    records = records_for(tmp_path, "l.example")
    kinds = [(r["type"], r["name"]) for r in records]
    assert kinds == [
        ("MX", "l.example"),
        ("TXT", "l.example"),
        ("TXT", "gk._domainkey.l.example"),
        ("TXT", "gked._domainkey.l.example"),
        ("TXT", "_dmarc.l.example"),
        ("A", "mx.l.example"),
        ("SRV", "_submissions._tcp.l.example"),
        ("SRV", "_submission._tcp.l.example"),
        ("SRV", "_imaps._tcp.l.example"),
        ("SRV", "_caldavs._tcp.l.example"),
        ("TXT", "_caldavs._tcp.l.example"),
        ("SRV", "_carddavs._tcp.l.example"),
        ("TXT", "_carddavs._tcp.l.example"),
        ("CNAME", "autoconfig.l.example"),
        ("CNAME", "autodiscover.l.example"),
    ]
    from gk.config import load

    port = load(tmp_path).smtp.submissions_port  # 465 on the box, the dev port in a checkout
    assert records[6]["value"] == f"0 1 {port} mx.l.example."  # RFC 6186/8314: implicit TLS first
    assert records[0]["value"] == "10 mx.l.example."
    https = load(tmp_path).http.https_port  # RFC 6764: calendars and contacts at /dav/ over HTTPS
    assert [r["value"] for r in records[9:13]] == [f"0 1 {https} mx.l.example.", "path=/dav/"] * 2
    assert records[2]["value"].startswith("v=DKIM1; k=rsa; p=MII")
    assert records[3]["value"].startswith("v=DKIM1; k=ed25519; p=")
    assert records_for(tmp_path, "l.example") == records  # keys are stable
    dns_server.add("l.example", "MX", "10 mx.l.example.")
    dns_server.add("l.example", "TXT", "v=spf1 a -all")  # differs
    dns_server.add("gk._domainkey.l.example", "TXT", records[2]["value"])
    dns_server.add("mx.l.example", "A", "192.0.2.7")
    dns_server.add("_imaps._tcp.l.example", "SRV", records[8]["value"])
    dns_server.add("_submission._tcp.l.example", "SRV", "0 1 25 mx.l.example.")
    status = {r["name"] + r["type"]: r["status"] for r in check_live(records, resolver_for(dns_server.port))}
    assert status == {
        "l.exampleMX": "ok",
        "l.exampleTXT": "different",
        "gk._domainkey.l.exampleTXT": "ok",
        "gked._domainkey.l.exampleTXT": "missing",
        "_dmarc.l.exampleTXT": "missing",
        "mx.l.exampleA": "ok",
        "_submissions._tcp.l.exampleSRV": "missing",
        "_submission._tcp.l.exampleSRV": "different",
        "_imaps._tcp.l.exampleSRV": "ok",
        "_caldavs._tcp.l.exampleSRV": "missing",
        "_caldavs._tcp.l.exampleTXT": "missing",
        "_carddavs._tcp.l.exampleSRV": "missing",
        "_carddavs._tcp.l.exampleTXT": "missing",
        "autoconfig.l.exampleCNAME": "missing",
        "autodiscover.l.exampleCNAME": "missing",
    }
