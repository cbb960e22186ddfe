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


# Results of recent checks, (identity, ip, sender, helo) -> (expiry on the monotonic clock, result), each
# kept no longer than the shortest TTL of the DNS answers it was computed from (at most
# RESULT_TTL_MAX): the resolver's own cache would give the same answers for as long, so a cached
# result is never staler than a fresh check. Mail comes in bursts from one sender (lists,
# notifications, a bench); a hit skips pyspf's record parsing and its queries (~0.3 ms of the
# hub a message). Only with a caching resolver; a temperror or permerror is never kept.
#
# Negative answers (NXDOMAIN, no record: a domain without SPF, a missing include) count with
# their negative TTL, the SOA's (RFC 2308; ``dnsresolver.negative_expiration``); one without an
# SOA has none, and a result that read it is not kept.
#
# A result whose records hold no macro (no "%" in any TXT answer the check read: the local part
# reaches a check only through the ``%{l}``/``%{s}`` macros, and the default explanations hold
# none) is kept for the sender's domain, (identity, ip, "@domain", helo), and answers every sender of that
# domain: a list's VERP return paths (bounce+n=x@list.example), a different address per message,
# would each run pyspf again otherwise (~0.4 ms of the hub a message). A result read through a
# macro is kept for its exact sender only.
#
# Memory: at most RESULT_CACHE_MAX entries (~0.5 KB each with the result: ~2 MB at most).
RESULT_CACHE_MAX = 4096
RESULT_TTL_MAX = 300.0
_results: OrderedDict[tuple[str, str, str, str], tuple[float, SPFResult]] = OrderedDict()
_cache_results = False
_seen = threading.local()  # .check: this check's _Seen (greenlet-local under gevent)


class _Seen:
    """What one check's DNS answers allow: their shortest TTL, and whether a record held a macro."""

    __slots__ = ("ttl", "macro")

    def __init__(self) -> None:
        self.ttl = RESULT_TTL_MAX
        self.macro = False


def install_lookup(resolver: dns.resolver.Resolver) -> None:
    import dns.exception
    import dns.resolver
    import spf

    from gk.mail.dnsresolver import negative_expiration

    global _cache_results
    _results.clear()
    _cache_results = resolver.cache is not None

    def lookup(name: str, qtype: str, strict: bool = True, timeout: float = 20):  # type: ignore[no-untyped-def]
        out = []
        seen: _Seen | None = getattr(_seen, "check", None)
        try:
            answers = resolver.resolve(
                name, qtype, lifetime=min(timeout, resolver.lifetime), search=False, raise_on_no_answer=False
            )
        except dns.resolver.NXDOMAIN as exc:
            if seen is not None:
                expiration = negative_expiration(resolver, name, exc)
                seen.ttl = min(seen.ttl, expiration - time.time() if expiration is not None else 0.0)
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            raise spf.TempError(f"DNS {exc}") from exc
        if answers.rrset is None:  # the name exists without this type
            if seen is not None:
                expiration = negative_expiration(resolver, name, answers)
                seen.ttl = min(seen.ttl, expiration - time.time() if expiration is not None else 0.0)
            return []
        if seen is not None:
            seen.ttl = min(seen.ttl, answers.expiration - time.time())
            if qtype in ("TXT", "SPF") and not seen.macro:
                seen.macro = any(b"%" in part for rdata in answers for part in rdata.strings)
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
    h = (helo or domain).lower()
    key = (identity, ip, sender.lower(), h)
    # pyspf splits the sender at its first "@", this module at its last: one "@" for a domain key
    by_domain = (identity, ip, "@" + domain, h) if sender.count("@") == 1 else None
    now = time.monotonic()
    for k in (by_domain, key):
        hit = _results.get(k) if k is not None else None
        if hit is not None:
            if hit[0] > now:
                _results.move_to_end(k)  # type: ignore[arg-type]
                return hit[1]
            del _results[k]  # type: ignore[arg-type]
    seen = _Seen()
    _seen.check = seen
    try:
        import spf

        result, explanation = spf.check2(i=ip, s=sender, h=helo or domain, querytime=timeout)
    except Exception as exc:  # pyspf raises on odd input; an SPF problem must not lose mail
        return SPFResult("temperror", domain, identity, str(exc))
    finally:
        _seen.check = None
    outcome = SPFResult(result, domain, identity, explanation)
    if _cache_results and result not in ("temperror", "permerror") and seen.ttl > 0:
        keep = by_domain if by_domain is not None and not seen.macro else key
        _results[keep] = (now + min(seen.ttl, RESULT_TTL_MAX), outcome)
        _results.move_to_end(keep)
        while len(_results) > RESULT_CACHE_MAX:
            _results.popitem(last=False)
    return outcome
