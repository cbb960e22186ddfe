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


def make_resolver(dns_cfg: DNSConfig) -> dns.resolver.Resolver:
    """A dnspython resolver using ``[dns]`` nameservers/port/timeout."""
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
    return resolver


__all__ = ["make_resolver"]
