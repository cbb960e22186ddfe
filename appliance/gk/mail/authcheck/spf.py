"""SPF (RFC 7208) with pyspf, its DNS lookups going through GK's resolver.

pyspf looks names up through its module-level ``spf.DNSLookup`` function; ``install_lookup``
replaces it with one that uses the resolver from ``[dns]`` (so tests reach the loopback DNS
server). There is one DNS configuration per process, so replacing the module hook is safe.
Run checks in a greenlet on the hub: dnspython's sockets are cooperative under gevent.
pyspf and dnspython are imported by ``install_lookup`` (the SMTP service's first check), not at
start: an idle ``gk serve`` does not carry them (~3.5 MB RSS, docs/performance.md).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dns.resolver


@dataclass(frozen=True)
class SPFResult:
    result: str  # pass fail softfail neutral none temperror permerror
    domain: str  # the domain checked (MAIL FROM's, or the HELO name for a null sender)
    identity: str  # "mailfrom" or "helo"
    explanation: str = ""


# Results of recent checks, (ip, sender, helo) -> (expiry on the monotonic clock, result), each
# kept no longer than the shortest TTL of the DNS answers it was computed from (at most
# RESULT_TTL_MAX): the resolver's own cache would give the same answers for as long, so a cached
# result is never staler than a fresh check. Mail comes in bursts from one sender (lists,
# notifications, a bench); a hit skips pyspf's record parsing and its queries (~0.3 ms of the
# hub a message). Only with a caching resolver; a temperror or an answer-less lookup (NXDOMAIN,
# no record: no TTL to bound it by) is never kept. Memory: at most RESULT_CACHE_MAX small entries.
RESULT_CACHE_MAX = 4096
RESULT_TTL_MAX = 300.0
_results: OrderedDict[tuple[str, str, str], tuple[float, SPFResult]] = OrderedDict()
_cache_results = False
_seen = threading.local()  # .ttls: the TTLs of this check's answers (greenlet-local under gevent)


def install_lookup(resolver: dns.resolver.Resolver) -> None:
    import dns.exception
    import dns.resolver
    import spf

    global _cache_results
    _results.clear()
    _cache_results = resolver.cache is not None

    def lookup(name: str, qtype: str, strict: bool = True, timeout: float = 20):  # type: ignore[no-untyped-def]
        out = []
        ttls: list[float] | None = getattr(_seen, "ttls", None)
        try:
            answers = resolver.resolve(name, qtype, lifetime=min(timeout, resolver.lifetime), search=False)
        except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
            if ttls is not None:
                ttls.append(0.0)
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            raise spf.TempError(f"DNS {exc}") from exc
        if ttls is not None:
            ttls.append(max(0.0, answers.expiration - time.time()))
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
    key = (ip, sender.lower(), (helo or domain).lower())
    now = time.monotonic()
    hit = _results.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    ttls: list[float] = []
    _seen.ttls = ttls
    try:
        import spf

        result, explanation = spf.check2(i=ip, s=sender, h=helo or domain, querytime=timeout)
    except Exception as exc:  # pyspf raises on odd input; an SPF problem must not lose mail
        return SPFResult("temperror", domain, identity, str(exc))
    finally:
        _seen.ttls = None
    outcome = SPFResult(result, domain, identity, explanation)
    if _cache_results and result not in ("temperror", "permerror") and ttls and min(ttls) > 0:
        _results[key] = (now + min(min(ttls), RESULT_TTL_MAX), outcome)
        _results.move_to_end(key)
        while len(_results) > RESULT_CACHE_MAX:
            _results.popitem(last=False)
    return outcome
