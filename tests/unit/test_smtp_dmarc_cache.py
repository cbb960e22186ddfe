"""DMARC policy records are reused per domain while the DNS answer they came from is fresh —
only with a caching resolver, never for a domain without a record — on a real DNS server on
loopback."""

from __future__ import annotations

from collections.abc import Iterator

import dns.resolver
import pytest
from support.dnsserver import LoopbackDNS

from gk.mail.authcheck import dmarc
from gk.mail.authcheck.spf import SPFResult


@pytest.fixture
def zone() -> Iterator[LoopbackDNS]:
    server = LoopbackDNS().start()
    server.add("_dmarc.sender.example", "TXT", "v=DMARC1; p=reject")
    try:
        yield server
    finally:
        server.stop()


PASS = SPFResult("pass", "sender.example", "mailfrom")


def test_a_domains_policy_is_read_once_while_fresh(zone: LoopbackDNS) -> None:
    resolver = zone.client(cache=True)
    first = dmarc.evaluate(resolver, ["sender.example"], PASS, [])
    asked = len(zone.queries)
    resolver.cache = dns.resolver.LRUCache(max_size=100)  # dnspython's own cache emptied: ours answers
    again = dmarc.evaluate(resolver, ["sender.example"], SPFResult("fail", "other.example", "mailfrom"), [])
    assert first.result == "pass" and first.policy == "reject"
    assert again.result == "fail" and again.policy == "reject"  # the same policy, this message's result
    assert len(zone.queries) == asked


def test_no_record_cache_without_a_caching_resolver(zone: LoopbackDNS) -> None:
    resolver = zone.client(cache=False)
    dmarc.evaluate(resolver, ["sender.example"], PASS, [])
    asked = len(zone.queries)
    assert dmarc.evaluate(resolver, ["sender.example"], PASS, []).policy == "reject"
    assert len(zone.queries) > asked


def test_a_domain_without_a_record_is_asked_again(zone: LoopbackDNS) -> None:
    resolver = zone.client(cache=True)
    assert dmarc.evaluate(resolver, ["new.example"], PASS, []).result == "none"
    zone.add("_dmarc.new.example", "TXT", "v=DMARC1; p=quarantine")  # published now
    resolver.cache = dns.resolver.LRUCache(max_size=100)  # (dnspython kept the NXDOMAIN)
    assert dmarc.evaluate(resolver, ["new.example"], SPFResult("fail", "x.example", "mailfrom"), []).policy == (
        "quarantine"
    )
