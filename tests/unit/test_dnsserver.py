import dns.name
import dns.resolver


def test_loopback_dns_answers_mx_txt_a_and_nxdomain(dns_server):
    dns_server.add("example.org", "MX", "10 mx1.example.org.")
    dns_server.add("mx1.example.org", "A", "127.0.0.2")
    dns_server.add("example.org", "TXT", "v=spf1 " + "a" * 300)
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = ["127.0.0.1"]
    r.port = dns_server.port
    mx = r.resolve("example.org", "MX")
    assert [str(x.exchange) for x in mx] == ["mx1.example.org."]
    assert [x.address for x in r.resolve("mx1.example.org", "A")] == ["127.0.0.2"]
    txt = b"".join(r.resolve("example.org", "TXT")[0].strings).decode()
    assert txt == "v=spf1 " + "a" * 300
    try:
        r.resolve("missing.example.org", "A")
    except dns.resolver.NXDOMAIN:
        pass
    else:
        raise AssertionError("expected NXDOMAIN")


def test_loopback_dns_record_ttls_and_the_soa_of_negative_answers(dns_server):
    dns_server.add("example.org", "TXT", "v=spf1 -all", ttl=7)
    dns_server.add("host.example.org", "A", "127.0.0.3")
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = ["127.0.0.1"]
    r.port = dns_server.port
    assert r.resolve("example.org", "TXT").rrset.ttl == 7
    assert r.resolve("host.example.org", "A").rrset.ttl == 60
    # no SOA given: negative answers carry none (no negative TTL)
    assert not r.resolve("host.example.org", "TXT", raise_on_no_answer=False).response.authority
    dns_server.soa("example.org", minimum=5, ttl=30)
    nodata = r.resolve("host.example.org", "TXT", raise_on_no_answer=False).response
    try:
        r.resolve("missing.example.org", "A")
    except dns.resolver.NXDOMAIN as exc:
        nxdomain = exc.responses()[dns.name.from_text("missing.example.org")]
    else:
        raise AssertionError("expected NXDOMAIN")
    for response in (nodata, nxdomain):
        (soa,) = response.authority
        assert (soa.name.to_text(), soa.ttl, soa[0].minimum) == ("example.org.", 30, 5)
