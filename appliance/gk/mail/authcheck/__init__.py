"""Inbound authentication checks: SPF, DKIM, DMARC → one Authentication-Results header.

``InboundChecker.check`` runs in a greenlet (DNS through GK's resolver is cooperative; DKIM's
CPU work, and the first check's loading of pyspf, dnspython and the Public Suffix List, go to
the CPU pool). Cost per message: 30-50 µs of the hub here when the sender's answers are kept
(SPF results, DMARC records, negative answers, each for its DNS TTL: ``spf``, ``dmarc``), a few
DNS queries when not, and for DKIM one copy of the message in memory inside the worker thread
(bounded by ``smtp.dkim_max_verify_size``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gk import pools
from gk.locks import SharedLock
from gk.mail.authcheck import dkimverify, dmarc, spf
from gk.mail.authcheck.headers import from_domains, parse_headers, read_header_block
from gk.mail.authcheck.results import authentication_results

if TYPE_CHECKING:
    import dns.resolver


@dataclass(frozen=True)
class CheckOutcome:
    header: bytes  # the Authentication-Results field, CRLF-terminated
    spf: spf.SPFResult | None
    dkim: list[dkimverify.DKIMResult]
    dmarc: dmarc.DMARCResult | None

    @property
    def dmarc_policy_failed(self) -> str:
        """'reject' or 'quarantine' when DMARC failed under that policy, else ''."""
        if self.dmarc and self.dmarc.result == "fail" and self.dmarc.policy in ("reject", "quarantine"):
            return self.dmarc.policy
        return ""


def _load_modules(modules: list[str], suffixes: bool) -> None:
    """Runs in a pool thread (``InboundChecker._load``)."""
    for name in modules:
        importlib.import_module(name)
    if suffixes:
        dmarc.load_suffix_list()


class InboundChecker:
    def __init__(
        self,
        resolver: dns.resolver.Resolver,
        authserv_id: str,
        *,
        check_spf: bool = True,
        check_dkim: bool = True,
        check_dmarc: bool = True,
        dkim_max_size: int = 10 * 1024 * 1024,
        is_local_domain: Callable[[str], bool] | None = None,
    ):
        self.resolver = resolver
        self.authserv_id = authserv_id
        self.do_spf, self.do_dkim, self.do_dmarc = check_spf, check_dkim, check_dmarc
        self.dkim_max_size = dkim_max_size
        # the box's own domains: mail claiming them must authenticate (``dmarc.own_domain``)
        self.is_local_domain = is_local_domain
        # pyspf's lookup goes through the resolver from the first check on: pyspf and dnspython
        # (``make_resolver``'s is built on its first use) load then, not at start
        self._lookup_installed = False
        self._loaded = False
        self._loading = SharedLock()

    def _load(self) -> None:
        """What the checks that are on need, loaded once, in the CPU pool: pyspf and dnspython's
        imports and the Public Suffix List's parse take 160-270 ms of CPU here (more on a board),
        during which the hub, had it done them, would serve no other client. Concurrent first
        checks wait for the one load."""
        with self._loading:
            if not self._loaded:
                modules = ["dns.exception", "dns.resolver"] if self.do_spf or self.do_dkim or self.do_dmarc else []
                if self.do_spf:
                    modules.append("spf")
                if modules or self.do_dmarc:
                    pools.run_cpu(_load_modules, modules, self.do_dmarc)
                self._loaded = True

    def check(self, message: Path | bytes, size: int, ip: str, helo: str, mail_from: str) -> CheckOutcome:
        if not self._loaded:
            self._load()
        spf_result = None
        if self.do_spf:
            if not self._lookup_installed:
                spf.install_lookup(self.resolver)
                self._lookup_installed = True
            spf_result = spf.check_spf(ip, mail_from, helo, timeout=self.resolver.lifetime)
        # the header section only for the checks that read it: with every check off, neither
        # it nor pyspf and dnspython are loaded
        headers = parse_headers(read_header_block(message)) if self.do_dkim or self.do_dmarc else None
        dkims: list[dkimverify.DKIMResult] = []
        if self.do_dkim and headers is not None:
            dkims = dkimverify.verify(self.resolver, message, headers, size, self.dkim_max_size)
        dmarc_result = None
        if self.do_dmarc and headers is not None:
            domains = from_domains(headers)
            dmarc_result = dmarc.evaluate(
                self.resolver, domains, spf_result or spf.SPFResult("none", "", "mailfrom"), dkims
            )
            if self.is_local_domain is not None:
                dmarc_result = dmarc.own_domain(dmarc_result, domains, self.is_local_domain)
        header = authentication_results(self.authserv_id, spf_result, dkims, dmarc_result, mail_from)
        return CheckOutcome(header, spf_result, dkims, dmarc_result)


__all__ = ["CheckOutcome", "InboundChecker"]
