"""One DNS resolver factory for every mail feature (SPF/DKIM/DMARC checks, MX lookups).

Built from the ``[dns]`` config section: ``nameservers`` (empty = the system's
``/etc/resolv.conf``), ``port`` and ``timeout``. Tests point it at a loopback DNS server on a
free port, so every lookup in a test is a real DNS query. dnspython's socket calls are
cooperative under gevent's monkey-patching, so a lookup never blocks the hub.
Cost: one ``Resolver`` object (a few KB); no cache unless a caller adds one. dnspython itself
(~3.4 MB of RSS with the ``importlib.metadata`` scan its import does) is loaded on the first
lookup, not when ``gk serve`` starts: the SMTP and queue services make their resolvers at start,
and an idle box never looks a name up (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from gk.config import DNSConfig

if TYPE_CHECKING:
    import dns.resolver


class _LazyResolver:
    """A dnspython ``Resolver`` made on first use: every attribute read or write goes to it."""

    __slots__ = ("_make", "_real", "__weakref__")
    _make: Callable[[], dns.resolver.Resolver]
    _real: dns.resolver.Resolver | None

    def __init__(self, make: Callable[[], dns.resolver.Resolver]):
        object.__setattr__(self, "_make", make)
        object.__setattr__(self, "_real", None)

    def _resolver(self) -> dns.resolver.Resolver:
        real = self._real
        if real is None:
            real = self._make()
            object.__setattr__(self, "_real", real)
        return real

    def __getattr__(self, name: str) -> object:
        return getattr(self._resolver(), name)

    def __setattr__(self, name: str, value: object) -> None:
        setattr(self._resolver(), name, value)


def _build(dns_cfg: DNSConfig, cache_size: int) -> dns.resolver.Resolver:
    import dns.resolver

    if dns_cfg.nameservers:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = list(dns_cfg.nameservers)
    else:
        try:
            resolver = dns.resolver.Resolver(configure=True)
        except dns.resolver.NoResolverConfiguration:
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = ["127.0.0.1"]
    resolver.port = dns_cfg.port
    resolver.timeout = dns_cfg.timeout
    resolver.lifetime = dns_cfg.timeout * 2
    if cache_size > 0:
        resolver.cache = dns.resolver.LRUCache(max_size=cache_size)
    return resolver


def negative_expiration(resolver: dns.resolver.Resolver, name: str, answer: object) -> float | None:
    """Until when (``time.time()`` clock) a negative answer about ``name`` may be reused: the
    ``Answer`` of a no-data lookup (``raise_on_no_answer=False``, no rrset) or the ``NXDOMAIN``
    it raised. None when it must not be kept: no caching resolver, or no SOA in the response's
    authority section (RFC 2308 §5: without one there is no negative TTL; dnspython would keep it
    5 minutes). Else the expiry of dnspython's own cache entry, whose TTL is the SOA's
    (min of its TTL and MINIMUM, RFC 2308 §5): a lookup now would answer from that entry until
    then, so a result kept as long is never staler than a fresh one."""
    import dns.name
    import dns.rdataclass
    import dns.rdatatype
    import dns.resolver

    if resolver.cache is None:
        return None
    if isinstance(answer, dns.resolver.NXDOMAIN):
        qname = dns.name.from_text(name)
        response = answer.responses().get(qname)
        cached = resolver.cache.get((qname, dns.rdatatype.ANY, dns.rdataclass.IN))
        expiration = cached.expiration if cached is not None else None
    elif isinstance(answer, dns.resolver.Answer) and answer.rrset is None:
        response, expiration = answer.response, answer.expiration
    else:
        return None
    if response is None or expiration is None:
        return None
    if not any(rrset.rdtype == dns.rdatatype.SOA for rrset in response.authority):
        return None
    return float(expiration)


def make_resolver(dns_cfg: DNSConfig, *, cache_size: int = 0) -> dns.resolver.Resolver:
    """A dnspython resolver using ``[dns]`` nameservers/port/timeout, made on its first use.

    ``cache_size`` > 0 adds dnspython's LRU cache (answers kept for their TTL, at most that many
    entries, ~0.5 KB each): the inbound checks ask the same SPF/DMARC/DKIM names over and over.
    """
    # the stand-in answers every attribute as the Resolver it makes, hence the cast
    return cast("dns.resolver.Resolver", _LazyResolver(lambda: _build(dns_cfg, cache_size)))


__all__ = ["make_resolver", "negative_expiration"]
