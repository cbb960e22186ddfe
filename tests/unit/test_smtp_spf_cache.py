"""SPF results are reused for a repeated (ip, sender, helo) while the DNS answers they came from
are fresh — only with a caching resolver, never for an answer-less lookup or a temperror — on a
real DNS server on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.dnsserver import LoopbackDNS

from gk.mail.authcheck import spf


@pytest.fixture
def zone() -> Iterator[LoopbackDNS]:
    server = LoopbackDNS().start()
    server.add("sender.example", "TXT", "v=spf1 ip4:192.0.2.1 -all")
    server.add("nospf.example", "A", "192.0.2.7")
    try:
        yield server
    finally:
        server.stop()


def test_a_repeated_check_is_answered_from_the_result_cache(zone: LoopbackDNS) -> None:
    spf.install_lookup(zone.client(cache=True))
    first = spf.check_spf("192.0.2.1", "ann@sender.example", "mx.sender.example")
    asked = len(zone.queries)
    again = spf.check_spf("192.0.2.1", "ann@sender.example", "mx.sender.example")
    assert first == again and first.result == "pass"
    assert len(spf._results) == 1 and len(zone.queries) == asked
    other = spf.check_spf("192.0.2.9", "ann@sender.example", "mx.sender.example")  # another client
    assert other.result == "fail" and len(spf._results) == 2


def test_no_result_cache_without_a_caching_resolver(zone: LoopbackDNS) -> None:
    spf.install_lookup(zone.client(cache=False))
    spf.check_spf("192.0.2.1", "ann@sender.example", "mx.sender.example")
    asked = len(zone.queries)
    spf.check_spf("192.0.2.1", "ann@sender.example", "mx.sender.example")
    assert len(zone.queries) > asked and not spf._results


def test_a_result_from_a_missing_record_is_not_kept(zone: LoopbackDNS) -> None:
    spf.install_lookup(zone.client(cache=True))
    assert spf.check_spf("192.0.2.1", "ann@nospf.example", "mx.nospf.example").result == "none"
    assert not spf._results
    zone.add("nospf.example", "TXT", "v=spf1 -all")  # published now: the next check sees it
    spf.install_lookup(zone.client(cache=True))  # (a fresh resolver cache: NXDATA was cached)
    assert spf.check_spf("192.0.2.1", "ann@nospf.example", "mx.nospf.example").result == "fail"


def test_installing_a_resolver_forgets_cached_results(zone: LoopbackDNS) -> None:
    spf.install_lookup(zone.client(cache=True))
    spf.check_spf("192.0.2.1", "ann@sender.example", "mx.sender.example")
    assert spf._results
    spf.install_lookup(zone.client(cache=True))
    assert not spf._results
