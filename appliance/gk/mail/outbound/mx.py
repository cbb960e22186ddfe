"""Where mail for a domain goes: MX records in preference order, per RFC 5321 §5.1 and RFC 7505.

- MX records sorted by preference; equal preferences shuffled (load spreading).
- No MX record (NOERROR/no answer): the domain itself is the one host (implicit MX, A/AAAA).
- A null MX (``0 .``, RFC 7505): the domain accepts no mail: a permanent failure.
- NXDOMAIN: the domain does not exist: a permanent failure (as Postfix and Exim do).
- Timeouts, SERVFAIL, unreachable resolver: a temporary failure (the message is retried).

Each MX host name is resolved to its A and AAAA addresses (IPv4 first: a home line often has
no IPv6 route). dnspython's sockets are cooperative under gevent. Cost: a few small DNS
replies per delivery attempt; no cache (the resolver in front usually has one).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dns.resolver


class DNSTemporaryError(Exception):
    """The lookup could not be done now (timeout, SERVFAIL): retry later."""


class DNSPermanentError(Exception):
    """The domain cannot receive mail (NXDOMAIN, null MX): bounce."""

    def __init__(self, message: str, status: str = "5.1.2"):
        super().__init__(message)
        self.status = status


@dataclass
class MXHost:
    name: str
    preference: int
    addresses: list[str] = field(default_factory=list)
    error: str = ""  # why it has no address, when it has none


def _query(resolver: dns.resolver.Resolver, name: str, rtype: str) -> list:  # type: ignore[type-arg]
    import dns.exception  # at the first lookup, not at start: an idle gk serve does not carry dnspython
    import dns.resolver

    try:
        return list(resolver.resolve(name, rtype, search=False))
    except dns.resolver.NoAnswer:
        return []
    except dns.resolver.NXDOMAIN:
        raise
    except dns.resolver.NoNameservers as exc:
        raise DNSTemporaryError(f"{rtype} lookup of {name} failed: no name server answered ({exc})") from exc
    except dns.exception.Timeout as exc:
        raise DNSTemporaryError(f"{rtype} lookup of {name} timed out") from exc
    except dns.exception.DNSException as exc:
        raise DNSTemporaryError(f"{rtype} lookup of {name} failed: {exc}") from exc


def host_addresses(resolver: dns.resolver.Resolver, host: str) -> list[str]:
    """A then AAAA addresses of ``host`` (NXDOMAIN → [])."""
    import dns.resolver

    out: list[str] = []
    for rtype in ("A", "AAAA"):
        try:
            out += [r.address for r in _query(resolver, host, rtype)]
        except dns.resolver.NXDOMAIN:
            return []
    return out


def resolve_mx(resolver: dns.resolver.Resolver, domain: str) -> list[MXHost]:
    """The hosts to try for ``domain``, best first, each with its addresses."""
    import dns.resolver

    domain = domain.rstrip(".").lower()
    try:
        answers = _query(resolver, domain, "MX")
    except dns.resolver.NXDOMAIN as exc:
        raise DNSPermanentError(f"domain {domain} does not exist (NXDOMAIN)", "5.1.2") from exc
    if not answers:
        # RFC 5321 §5.1: no MX → the domain is its own (implicit) MX
        addrs = host_addresses(resolver, domain)
        if not addrs:
            raise DNSPermanentError(f"domain {domain} has no MX and no A/AAAA record", "5.1.2")
        return [MXHost(domain, 0, addrs)]
    records = [(int(r.preference), r.exchange.to_text(omit_final_dot=True).lower()) for r in answers]
    if any(name in ("", ".") for _, name in records):
        # RFC 7505: a null MX says the domain accepts no mail
        raise DNSPermanentError(f"domain {domain} accepts no mail (null MX, RFC 7505)", "5.1.10")
    random.shuffle(records)
    records.sort(key=lambda r: r[0])
    hosts: list[MXHost] = []
    seen: set[str] = set()
    for pref, name in records:
        if name in seen:
            continue
        seen.add(name)
        host = MXHost(name, pref)
        try:
            host.addresses = host_addresses(resolver, name)
            if not host.addresses:
                host.error = f"MX host {name} has no A/AAAA record"
        except DNSTemporaryError as exc:
            host.error = str(exc)
        hosts.append(host)
    return hosts
