"""The inbound checks' caches on a real DNS server on loopback: negative answers (no SPF or DMARC
record) kept for the SOA's negative TTL and asked again once it ran out, SPF results shared by a
domain's senders only when no record read a macro, and the caches' bounds."""

from __future__ import annotations

import time
from collections.abc import Iterator

import dns.resolver
import pytest
from support.dnsserver import LoopbackDNS

from gk.mail.authcheck import dmarc, spf
from gk.mail.authcheck.spf import SPFResult

IP = "192.0.2.1"
TTL = 2  # the SOA's MINIMUM and the changed record's TTL, in seconds


def within_ttl(since: float) -> bool:
    """Whether an answer received after ``since`` (monotonic) must still be the cached one. On
    a machine stalled past the TTL between two statements, a fresh answer is right: the check
    of the cached one is then left out, never failed."""
    return time.monotonic() - since < TTL - 0.25


@pytest.fixture
def zone() -> Iterator[LoopbackDNS]:
    server = LoopbackDNS().start()
    server.soa("example", minimum=TTL)  # negative answers below .example: kept TTL s at most
    server.add("sender.example", "TXT", "v=spf1 ip4:192.0.2.1 -all")
    server.add("nospf.example", "A", "192.0.2.7")  # exists, publishes no SPF or DMARC record
    server.add("macro.example", "TXT", "v=spf1 exists:%{l}.allow.macro.example -all")
    server.add("ann.allow.macro.example", "A", "127.0.0.2")
    try:
        yield server
    finally:
        server.stop()


def _asked(zone: LoopbackDNS, name: str) -> int:
    return sum(1 for qname, _ in zone.queries if qname == name)


def test_a_domain_without_spf_is_answered_from_the_cache_until_its_negative_ttl(zone: LoopbackDNS) -> None:
    spf.install_lookup(zone.client(cache=True))
    since = time.monotonic()
    assert spf.check_spf(IP, "ann@nospf.example", "mx.nospf.example").result == "none"
    asked = len(zone.queries)
    zone.add("nospf.example", "TXT", "v=spf1 -all")  # published now
    again = spf.check_spf(IP, "ann@nospf.example", "mx.nospf.example")
    if within_ttl(since):
        assert again.result == "none" and len(zone.queries) == asked and len(spf._results) == 1
    time.sleep(TTL + 0.3)  # the SOA's MINIMUM has passed: neither cache may answer any more
    assert spf.check_spf(IP, "ann@nospf.example", "mx.nospf.example").result == "fail"
    assert len(zone.queries) > asked


def test_a_missing_include_is_a_negative_answer_with_its_ttl(zone: LoopbackDNS) -> None:
    zone.add("inc.example", "TXT", "v=spf1 include:gone.example ?all")
    spf.install_lookup(zone.client(cache=True))
    first = spf.check_spf(IP, "ann@inc.example", "mx.inc.example")
    assert first.result == "permerror"  # an include without a record: never kept
    assert not spf._results


def test_one_result_serves_every_sender_of_a_domain_without_macros(zone: LoopbackDNS) -> None:
    spf.install_lookup(zone.client(cache=True))
    first = spf.check_spf(IP, "bounce+1=ann=x.example@sender.example", "mx.sender.example")
    asked = len(zone.queries)
    for n in range(2, 6):  # a list's VERP return paths: one address per message
        got = spf.check_spf(IP, f"bounce+{n}=bob=y.example@sender.example", "mx.sender.example")
        assert got == first and got.result == "pass"
    assert len(zone.queries) == asked and len(spf._results) == 1
    # another client is another question
    assert spf.check_spf("192.0.2.9", "bounce+9@sender.example", "mx.sender.example").result == "fail"


def test_a_record_with_a_macro_is_checked_for_each_sender(zone: LoopbackDNS) -> None:
    spf.install_lookup(zone.client(cache=True))
    assert spf.check_spf(IP, "ann@macro.example", "mx.macro.example").result == "pass"
    assert spf.check_spf(IP, "bob@macro.example", "mx.macro.example").result == "fail"
    assert spf.check_spf(IP, "ann@macro.example", "mx.macro.example").result == "pass"
    assert _asked(zone, "bob.allow.macro.example") == 1


def test_the_helo_identity_is_not_answered_by_a_mail_from_result(zone: LoopbackDNS) -> None:
    spf.install_lookup(zone.client(cache=True))
    mailfrom = spf.check_spf(IP, "postmaster@sender.example", "sender.example")
    helo = spf.check_spf(IP, "", "sender.example")
    assert (mailfrom.identity, helo.identity) == ("mailfrom", "helo")
    assert mailfrom.result == helo.result == "pass"


def test_the_spf_result_cache_is_bounded(zone: LoopbackDNS, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spf, "RESULT_CACHE_MAX", 3)
    spf.install_lookup(zone.client(cache=True))
    for n in range(1, 6):
        spf.check_spf(f"192.0.2.{n}", "ann@sender.example", "mx.sender.example")
    assert [key[1] for key in spf._results] == ["192.0.2.3", "192.0.2.4", "192.0.2.5"]


PASS = SPFResult("pass", "nospf.example", "mailfrom")


def test_a_domain_without_dmarc_is_answered_from_the_cache_until_its_negative_ttl(zone: LoopbackDNS) -> None:
    resolver = zone.client(cache=True)
    since = time.monotonic()
    assert dmarc.evaluate(resolver, ["mx.nospf.example"], PASS, []).result == "none"
    # the domain, then its organizational domain (RFC 7489 §6.6.3)
    assert _asked(zone, "_dmarc.mx.nospf.example") == 1 and _asked(zone, "_dmarc.nospf.example") == 1
    zone.add("_dmarc.nospf.example", "TXT", "v=DMARC1; p=reject")  # published now
    resolver.cache = dns.resolver.LRUCache(max_size=100)  # dnspython's own cache emptied: ours answers
    cached = dmarc.evaluate(resolver, ["mx.nospf.example"], PASS, [])
    if within_ttl(since):
        assert cached.result == "none"
        assert _asked(zone, "_dmarc.mx.nospf.example") == 1 and _asked(zone, "_dmarc.nospf.example") == 1
    time.sleep(TTL + 0.3)  # past the negative TTL
    again = dmarc.evaluate(resolver, ["mx.nospf.example"], SPFResult("fail", "x.example", "mailfrom"), [])
    assert (again.result, again.policy) == ("fail", "reject")


def test_a_changed_dmarc_record_is_read_again_at_its_ttl(zone: LoopbackDNS) -> None:
    zone.add("_dmarc.sender.example", "TXT", "v=DMARC1; p=none", ttl=TTL)
    resolver = zone.client(cache=True)
    since = time.monotonic()
    assert dmarc.evaluate(resolver, ["sender.example"], PASS, []).policy == "none"
    zone.clear("_dmarc.sender.example")
    zone.add("_dmarc.sender.example", "TXT", "v=DMARC1; p=quarantine", ttl=TTL)
    cached = dmarc.evaluate(resolver, ["sender.example"], PASS, [])
    if within_ttl(since):
        assert cached.policy == "none"
    time.sleep(TTL + 0.3)
    assert dmarc.evaluate(resolver, ["sender.example"], PASS, []).policy == "quarantine"


def test_the_dmarc_record_cache_is_bounded(zone: LoopbackDNS, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dmarc, "RECORD_CACHE_MAX", 2)
    resolver = zone.client(cache=True)
    for name in ("a.example", "b.example", "c.example"):  # NXDOMAIN under the SOA: kept as none
        dmarc.evaluate(resolver, [name], PASS, [])
    assert list(dmarc._records[resolver]) == ["b.example", "c.example"]
