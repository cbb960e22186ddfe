"""DMARC evaluation (RFC 7489): policy lookup, identifier alignment, result.

Written here because no maintained, small Python library evaluates DMARC from given SPF/DKIM
results (checkdmarc audits records; it does not evaluate messages). The organizational domain
(RFC 7489 §3.2) comes from the Public Suffix List shipped in the ``publicsuffixlist`` package
(no download at run time): ``mail.example.co.uk`` → ``example.co.uk``. Taking the last two
labels instead would make ``attacker.co.uk`` align with ``victim.co.uk`` and look for policy at
``_dmarc.co.uk``. Cost: the list is parsed on the first DMARC check, ~2.5 MB resident.

With a caching resolver (the SMTP service's), a domain's parsed policy records are kept until
the DNS answer they came from expires (``RECORD_CACHE_MAX`` domains per resolver): the
resolver's own cache would return the same answer for as long, and dnspython's lookup path
(name parsing, a resolution object) was ~40 % of the checks' time on the hub per message of a
burst from one sender (``bench smtp_inbound``, cProfile). A domain without a record (NXDOMAIN
or no TXT) is kept as such for its negative TTL, the SOA's (RFC 2308; not at all without an SOA:
``dnsresolver.negative_expiration``): most senders publish no DMARC record, and each of their
messages asked twice (the domain, then its organizational domain), each answer an exception
from dnspython's cache. Memory: ~0.3 KB an entry, ~0.3 MB at most.
"""

from __future__ import annotations

import functools
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gk.mail.authcheck.dkimverify import DKIMResult
from gk.mail.authcheck.spf import SPFResult
from gk.mail.dnsresolver import negative_expiration

if TYPE_CHECKING:
    import dns.resolver


# The DMARC policy GK asks its owner to publish for the box's own domains (``gk dns records``,
# the wizard), and the one it applies itself to mail claiming those domains on port 25 whatever
# DNS says (``own_domain``): the box is the only legitimate sender of its domains, so it knows
# the answer before the owner has published anything. Mox and Stalwart suggest p=reject too.
OWN_DOMAIN_POLICY = "reject"
OWN_DOMAIN_REASON = "a local domain: only this box's users send from it"


@dataclass(frozen=True)
class DMARCResult:
    result: str  # pass fail none temperror permerror
    policy: str = ""  # none quarantine reject (the one that applies to this From domain)
    from_domain: str = ""
    reason: str = ""


_psl: list[Any] = []
RECORD_CACHE_MAX = 1024
_records: weakref.WeakKeyDictionary[dns.resolver.Resolver, OrderedDict[str, tuple[float, list[dict[str, str]]]]] = (
    weakref.WeakKeyDictionary()
)


def load_suffix_list() -> Any:
    """The Public Suffix List, parsed on the first call (~80-140 ms of CPU here: the SMTP
    service's first check does it in the CPU pool, ``InboundChecker._load``)."""
    if not _psl:
        from publicsuffixlist import PublicSuffixList

        psl = PublicSuffixList()
        if not _psl:
            _psl.append(psl)
    return _psl[0]


@functools.lru_cache(maxsize=4096)
def org_domain(domain: str) -> str:
    """The organizational domain: one label below the longest public suffix (the name itself
    when it is a public suffix or has no dot)."""
    name = domain.lower().rstrip(".")
    return load_suffix_list().privatesuffix(name) or name


def aligned(a: str, b: str, mode: str) -> bool:
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    if mode == "s":
        return a == b
    return org_domain(a) == org_domain(b)


def parse_record(txt: str) -> dict[str, str] | None:
    tags: dict[str, str] = {}
    for part in txt.split(";"):
        key, eq, value = part.strip().partition("=")
        if eq:
            tags[key.strip().lower()] = value.strip()
    if tags.get("v") != "DMARC1":
        return None
    return tags


def _lookup(resolver: dns.resolver.Resolver, domain: str) -> list[dict[str, str]]:
    import dns.resolver  # on the first check, not at start (see gk.mail.authcheck.spf)

    kept = _records.setdefault(resolver, OrderedDict()) if resolver.cache is not None else None
    key = domain.lower().rstrip(".")
    if kept is not None and (hit := kept.get(key)) is not None and hit[0] > time.time():
        return hit[1]
    name = f"_dmarc.{domain}"
    expiration: float | None
    records: list[dict[str, str]]
    try:
        answer = resolver.resolve(name, "TXT", search=False, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN as exc:
        records, expiration = [], negative_expiration(resolver, name, exc)
    else:
        if answer.rrset is None:
            records, expiration = [], negative_expiration(resolver, name, answer)
        else:
            records, expiration = _parse_answer(answer), answer.expiration
    if kept is not None and expiration is not None:
        kept[key] = (expiration, records)
        kept.move_to_end(key)
        while len(kept) > RECORD_CACHE_MAX:
            kept.popitem(last=False)
    return records


def _parse_answer(answer: dns.resolver.Answer) -> list[dict[str, str]]:
    records = []
    for rdata in answer:
        text = b"".join(rdata.strings).decode("utf-8", "replace")
        if text.startswith("v=DMARC1"):
            rec = parse_record(text)
            records.append(rec if rec is not None else {})
    return records


def evaluate(
    resolver: dns.resolver.Resolver, from_domains: list[str], spf: SPFResult, dkims: list[DKIMResult]
) -> DMARCResult:
    if not from_domains:
        return DMARCResult("none", reason="no From domain")
    if len(from_domains) > 1:
        return DMARCResult("permerror", reason="several From domains")
    import dns.exception
    import dns.resolver

    domain = from_domains[0]
    org = org_domain(domain)
    try:
        records = _lookup(resolver, domain)
        subdomain = False
        if not records and org != domain:
            records = _lookup(resolver, org)
            subdomain = True
    except (dns.exception.Timeout, dns.resolver.NoNameservers):
        return DMARCResult("temperror", from_domain=domain, reason="DNS lookup failed")
    if not records:
        return DMARCResult("none", from_domain=domain)
    if len(records) > 1 or not records[0] or "p" not in records[0]:
        return DMARCResult("permerror", from_domain=domain, reason="invalid DMARC record")
    rec = records[0]
    policy = rec.get("sp", rec["p"]) if subdomain else rec["p"]
    if policy not in ("none", "quarantine", "reject"):
        policy = "none"
    spf_ok = spf.result == "pass" and aligned(spf.domain, domain, rec.get("aspf", "r"))
    dkim_ok = any(d.result == "pass" and aligned(d.domain, domain, rec.get("adkim", "r")) for d in dkims)
    return DMARCResult("pass" if spf_ok or dkim_ok else "fail", policy, domain)


def own_domain(result: DMARCResult, from_domains: list[str], is_local: Callable[[str], bool]) -> DMARCResult:
    """``result`` for mail received on port 25 with the box's own domains in mind: a message whose
    From names one of them passes only with SPF or DKIM aligned with it (``result`` a pass for
    that domain); anything else — no DMARC record published yet (``none``), a lookup error, a
    published ``p=none`` or several From domains, one of them ours — fails under
    ``OWN_DOMAIN_POLICY``. Mail the box's users send never comes this way (submission on 587/465
    and the webmail deliver locally without port 25), so nothing legitimate is lost but mail
    that left the box and came back unsigned and from a foreign address (a list that rewrites
    the body without rewriting From, as p=reject anywhere would refuse it)."""
    if result.result == "pass" and len(from_domains) == 1 and result.from_domain == from_domains[0]:
        return result  # ours or not, an aligned pass stands: no look-up of the box's domains
    ours = [d for d in from_domains if is_local(d)]
    if not ours:
        return result
    return DMARCResult("fail", OWN_DOMAIN_POLICY, ours[0], OWN_DOMAIN_REASON)
