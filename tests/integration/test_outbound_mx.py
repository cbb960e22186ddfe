# ruff: noqa: F811  (pytest fixtures imported from support.peermta / support.testca)
"""Outbound delivery by MX: first MX, fallback when it refuses, STARTTLS, DKIM, null MX, no DNS.

A real ``gk serve`` delivers to a real peer MTA (aiosmtpd in its own process) on another
loopback address, finding it through a real DNS server on loopback.
"""

from __future__ import annotations

import json
import time

import dkim
import dns.resolver
from support.gkserver import gk
from support.outbound import ALICE, dsns, inject, message, start_gk, wait_deferred, wait_queue_empty
from support.peermta import peers  # noqa: F401
from support.testca import ca  # noqa: F401


def test_delivers_to_first_mx_with_starttls_and_dkim(make_server, dns_server, peers, ca):
    cert, key = ca.issue("mx1.example.org")
    mx1 = peers("127.0.0.2", cert=cert, key=key)
    mx2 = peers("127.0.0.3")
    dns_server.add("example.org", "MX", "20 mx2.example.org.").add("example.org", "MX", "10 mx1.example.org.")
    dns_server.add("mx1.example.org", "A", "127.0.0.2").add("mx2.example.org", "A", "127.0.0.3")
    srv = start_gk(make_server, dns_server, peers.port, ca_file=str(ca.ca_file))
    # publish what `gk dns records` says, then check it against live DNS
    out = gk(srv.data_dir, "dns", "records", "test.example", "--json").stdout
    records = json.loads(out)
    for rec in records:
        if rec["type"] == "TXT":
            dns_server.add(rec["name"], "TXT", rec["value"])
    checked = json.loads(gk(srv.data_dir, "dns", "records", "test.example", "--check", "--json", check=False).stdout)
    assert {r["name"]: r["status"] for r in checked if r["type"] == "TXT"} == {
        r["name"]: "ok" for r in records if r["type"] == "TXT"
    }

    inject(srv, ALICE, ["bob@example.org", "carol@example.org"], message(1))
    (meta, body), *_ = mx1.wait_for(1)
    assert meta["mail_from"] == ALICE
    assert sorted(meta["rcpt_tos"]) == ["bob@example.org", "carol@example.org"]  # one copy, two recipients
    assert meta["tls"] is True
    assert mx2.messages() == []
    assert b"\r\n.a line starting with a dot\r\n" in body  # dot-stuffing undone by the peer: content intact
    assert body.startswith(b"DKIM-Signature:")

    def dnsfunc(name, timeout=5):  # type: ignore[no-untyped-def]
        res = dns.resolver.Resolver(configure=False)
        res.nameservers, res.port = ["127.0.0.1"], dns_server.port
        try:
            return b"".join(b"".join(r.strings) for r in res.resolve(name.decode().rstrip("."), "TXT"))
        except dns.resolver.NXDOMAIN:
            return None

    assert dkim.verify(body, dnsfunc=dnsfunc)
    assert dkim.verify(body.replace(b"message 1", b"message 2"), dnsfunc=dnsfunc) is False
    log = srv.log()
    assert "outbound connected to mx1.example.org[127.0.0.2]" in log and "tls=verified" in log
    assert "queue msg=1 rcpt=bob@example.org sent via mx1.example.org[127.0.0.2]" in log
    wait_queue_empty(srv)
    assert list((srv.data_dir / "spool" / "queue").iterdir()) == []


def test_falls_back_when_first_mx_refuses_and_records_unverified_tls(make_server, dns_server, peers, ca):
    cert, key = ca.issue("mx2.example.org", self_signed=True)
    mx2 = peers("127.0.0.3", cert=cert, key=key)
    dns_server.add("example.org", "MX", "10 mx1.example.org.").add("example.org", "MX", "20 mx2.example.org.")
    dns_server.add("mx1.example.org", "A", "127.0.0.4")  # nothing listens there: connection refused
    dns_server.add("mx2.example.org", "A", "127.0.0.3")
    srv = start_gk(make_server, dns_server, peers.port, ca_file=str(ca.ca_file))
    inject(srv, ALICE, ["bob@example.org"], message(1))
    (meta, _), *_ = mx2.wait_for(1)
    assert meta["tls"] is True and meta["rcpt_tos"] == ["bob@example.org"]
    log = srv.log()
    assert "outbound mx1.example.org[127.0.0.4]" in log and "refused" in log.lower()
    assert "tls=unverified" in log and "mx2.example.org[127.0.0.3]" in log
    assert dsns(srv) == []


def test_implicit_mx_null_mx_and_nxdomain(make_server, dns_server, peers):
    peer = peers("127.0.0.2")
    dns_server.add("plain.example", "A", "127.0.0.2")  # no MX: the domain itself (RFC 5321 §5.1)
    dns_server.add("nomail.example", "MX", "0 .")  # null MX (RFC 7505)
    srv = start_gk(make_server, dns_server, peers.port)
    inject(srv, ALICE, ["dave@plain.example"], message(1))
    inject(srv, ALICE, ["erin@nomail.example"], message(2, to="erin@nomail.example"))
    inject(srv, ALICE, ["frank@nowhere.example"], message(3, to="frank@nowhere.example"))
    (meta, _), *_ = peer.wait_for(1)
    assert meta["rcpt_tos"] == ["dave@plain.example"]
    deadline = time.monotonic() + 30
    while len(dsns(srv)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    reports = dsns(srv)
    assert len(reports) == 2
    text = "\n".join(str(r) for r in reports)
    assert "Status: 5.1.10" in text and "erin@nomail.example" in text and "null MX" in text
    assert "Status: 5.1.2" in text and "frank@nowhere.example" in text and "NXDOMAIN" in text
    for r in reports:
        assert r.get_content_type() == "multipart/report"
        assert r.get_param("report-type") == "delivery-status"
    wait_queue_empty(srv)


def test_per_domain_connection_limit_and_reuse(make_server, dns_server, peers):
    peer = peers("127.0.0.2")
    peer.configure(slow=0.3, rcpt_all=["451 4.3.0 hold on"] * 1000)  # each RCPT takes a while: sessions overlap
    dns_server.add("example.org", "MX", "10 mx1.example.org.").add("mx1.example.org", "A", "127.0.0.2")
    dns_server.add("example.net", "MX", "10 mx1.example.org.")
    srv = start_gk(make_server, dns_server, peers.port, per_domain_connections=2, retry_minutes=[30.0])
    ids = [inject(srv, ALICE, [f"u{n}@example.org"], message(n, to=f"u{n}@example.org")) for n in range(6)]
    ids.append(inject(srv, ALICE, ["v@example.net"], message(9, to="v@example.net")))
    for n, msg_id in enumerate(ids[:-1]):
        wait_deferred(srv, msg_id, f"u{n}@example.org")
    wait_deferred(srv, ids[-1], "v@example.net")
    peer.configure(rcpt_all=[])
    mark = len(srv.log())
    gk(srv.data_dir, "queue", "retry", "--all")  # all seven due at the same moment
    msgs = peer.wait_for(7, timeout=60)
    wait_queue_empty(srv)
    assert peer.max_inflight() <= 3  # at most two sessions for example.org, one for example.net
    connects = srv.log()[mark:].count("outbound connected to mx1.example.org")
    org_clients = {tuple(m["client"]) for m, _ in msgs if m["rcpt_tos"][0].endswith("@example.org")}
    assert connects == 3 and len(org_clients) == 2, (connects, org_clients)  # six messages over two sessions
