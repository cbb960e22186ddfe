"""One DNS resolver factory for every mail feature (SPF/DKIM/DMARC checks, MX lookups).

Built from the ``[dns]`` config section: ``nameservers`` (empty = the system's
``/etc/resolv.conf``), ``port`` and ``timeout``. Tests point it at a loopback DNS server on a
free port, so every lookup in a test is a real DNS query. dnspython's socket calls are
cooperative under gevent's monkey-patching, so a lookup never blocks the hub.
Cost: one ``Resolver`` object (a few KB); no cache unless a caller adds one.
"""

from __future__ import annotations

import dns.resolver

from gk.config import DNSConfig


def make_resolver(dns_cfg: DNSConfig, *, cache_size: int = 0) -> dns.resolver.Resolver:
    """A dnspython resolver using ``[dns]`` nameservers/port/timeout.

    ``cache_size`` > 0 adds dnspython's LRU cache (answers kept for their TTL, at most that many
    entries, ~0.5 KB each): the inbound checks ask the same SPF/DMARC/DKIM names over and over.
    """
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


__all__ = ["make_resolver"]
