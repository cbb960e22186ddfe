"""SPF (RFC 7208) with pyspf, its DNS lookups going through GK's resolver.

pyspf looks names up through its module-level ``spf.DNSLookup`` function; ``install_lookup``
replaces it with one that uses the resolver from ``[dns]`` (so tests reach the loopback DNS
server). There is one DNS configuration per process, so replacing the module hook is safe.
Run checks in a greenlet on the hub: dnspython's sockets are cooperative under gevent.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.exception
import dns.resolver
import spf


@dataclass(frozen=True)
class SPFResult:
    result: str  # pass fail softfail neutral none temperror permerror
    domain: str  # the domain checked (MAIL FROM's, or the HELO name for a null sender)
    identity: str  # "mailfrom" or "helo"
    explanation: str = ""


def install_lookup(resolver: dns.resolver.Resolver) -> None:
    def lookup(name: str, qtype: str, strict: bool = True, timeout: float = 20):  # type: ignore[no-untyped-def]
        out = []
        try:
            answers = resolver.resolve(name, qtype, lifetime=min(timeout, resolver.lifetime), search=False)
        except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            raise spf.TempError(f"DNS {exc}") from exc
        for rdata in answers:
            if qtype in ("A", "AAAA"):
                out.append(((name, qtype), rdata.address))
            elif qtype == "MX":
                out.append(((name, qtype), (rdata.preference, rdata.exchange)))
            elif qtype == "PTR":
                out.append(((name, qtype), rdata.target.to_text(True)))
            elif qtype in ("TXT", "SPF"):
                out.append(((name, qtype), rdata.strings))
        return out

    spf.DNSLookup = lookup


def check_spf(ip: str, mail_from: str, helo: str, timeout: float = 10.0) -> SPFResult:
    if mail_from:
        domain, identity, sender = mail_from.rpartition("@")[2].lower(), "mailfrom", mail_from
    else:
        domain, identity, sender = helo.lower(), "helo", f"postmaster@{helo}"
    if not domain:
        return SPFResult("none", "", identity)
    try:
        result, explanation = spf.check2(i=ip, s=sender, h=helo or domain, querytime=timeout)
    except Exception as exc:  # pyspf raises on odd input; an SPF problem must not lose mail
        return SPFResult("temperror", domain, identity, str(exc))
    return SPFResult(result, domain, identity, explanation)
