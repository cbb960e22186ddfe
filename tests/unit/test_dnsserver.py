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
