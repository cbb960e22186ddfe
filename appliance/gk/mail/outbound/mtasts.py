"""MTA-STS (RFC 8461): a domain's published demand for verified TLS to its MX hosts.

``_mta-sts.<domain>`` TXT ``v=STSv1; id=…`` announces a policy; it is fetched from
``https://mta-sts.<domain>/.well-known/mta-sts.txt`` (certificate verified, 64 KiB at most,
port ``queue.mta_sts_port`` so tests can serve it on loopback) and cached in memory for its
``max_age`` (refetched when the TXT ``id`` changes). In ``enforce`` mode only MX hosts
matching an ``mx:`` pattern are used and each must present a valid certificate for its name;
``testing`` mode is logged only. A failed fetch falls back to a cached policy, else to no
policy (as the RFC says). Hand-written: no maintained Python MTA-STS client exists; the
format is a few ``key: value`` lines. Cost: one cached dict entry per destination domain.
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dns.resolver

log = logging.getLogger("gk.mail.outbound")

MAX_POLICY_BYTES = 64 * 1024


@dataclass
class Policy:
    domain: str
    id: str
    mode: str  # enforce | testing | none
    mx: list[str] = field(default_factory=list)
    max_age: int = 86400
    fetched: float = 0.0

    def matches(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        for pattern in self.mx:
            pattern = pattern.lower().rstrip(".")
            if pattern.startswith("*."):
                head, _, rest = host.partition(".")
                if head and rest == pattern[2:]:
                    return True
            elif host == pattern:
                return True
        return False

    @property
    def enforce(self) -> bool:
        return self.mode == "enforce"


def parse_policy(domain: str, policy_id: str, text: str) -> Policy:
    fields: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), []).append(value.strip())
    if fields.get("version") != ["STSv1"]:
        raise ValueError("policy has no 'version: STSv1'")
    mode = (fields.get("mode") or [""])[0]
    if mode not in ("enforce", "testing", "none"):
        raise ValueError(f"policy mode {mode!r} is not enforce/testing/none")
    try:
        max_age = int((fields.get("max_age") or ["0"])[0])
    except ValueError as exc:
        raise ValueError("policy max_age is not a number") from exc
    return Policy(domain, policy_id, mode, fields.get("mx", []), min(max_age, 31557600), time.time())


class _HTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to an address found with GK's resolver, verifying the certificate for ``host``."""

    def __init__(self, host: str, address: str, port: int, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(host, port, **kwargs)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


class MTASTSCache:
    def __init__(self, resolver: dns.resolver.Resolver, *, port: int = 443, ca_file: str = "", timeout: float = 30.0):
        self.resolver = resolver
        self.port = port
        self.ca_file = ca_file
        self.timeout = timeout
        self.policies: dict[str, Policy] = {}

    def _txt_id(self, domain: str) -> str | None:
        import dns.exception  # at the first lookup, not at start: an idle gk serve does not carry dnspython
        import dns.resolver

        try:
            answers = self.resolver.resolve(f"_mta-sts.{domain}", "TXT", search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except dns.exception.DNSException:
            return ""  # unknown now: keep a cached policy
        records = [b"".join(r.strings).decode("ascii", "replace") for r in answers]
        records = [r for r in records if r.startswith("v=STSv1")]
        if len(records) != 1:
            return None
        for part in records[0].split(";"):
            key, _, value = part.strip().partition("=")
            if key == "id":
                return value.strip()
        return None

    def _fetch(self, domain: str) -> str:
        import dns.exception

        ctx = ssl.create_default_context()
        if self.ca_file:
            ctx.load_verify_locations(cafile=self.ca_file)
        host = f"mta-sts.{domain}"
        try:
            addresses = [r.address for r in self.resolver.resolve(host, "A", search=False)]
        except dns.exception.DNSException as exc:
            raise ValueError(f"{host} has no address: {exc}") from exc
        conn = _HTTPSConnection(host, addresses[0], self.port, timeout=self.timeout, context=ctx)
        try:
            conn.request("GET", "/.well-known/mta-sts.txt", headers={"Host": host})
            resp = conn.getresponse()
            if resp.status != 200:
                raise ValueError(f"HTTP {resp.status}")
            ctype = resp.getheader("Content-Type", "")
            if not ctype.startswith("text/plain"):
                raise ValueError(f"content type {ctype!r} is not text/plain")
            body = resp.read(MAX_POLICY_BYTES + 1)
            if len(body) > MAX_POLICY_BYTES:
                raise ValueError("policy larger than 64 KiB")
            return body.decode("utf-8", "replace")
        finally:
            conn.close()

    def policy(self, domain: str) -> Policy | None:
        domain = domain.lower().rstrip(".")
        cached = self.policies.get(domain)
        if cached and time.time() > cached.fetched + cached.max_age:
            cached = None
            self.policies.pop(domain, None)
        policy_id = self._txt_id(domain)
        if policy_id is None:
            return cached
        if cached and (policy_id == "" or policy_id == cached.id):
            return cached
        try:
            policy = parse_policy(domain, policy_id, self._fetch(domain))
        except (OSError, ValueError, http.client.HTTPException) as exc:
            log.warning("MTA-STS policy of %s could not be fetched: %s", domain, exc)
            return cached
        log.info("MTA-STS policy of %s: mode=%s mx=%s max_age=%d", domain, policy.mode, policy.mx, policy.max_age)
        self.policies[domain] = policy
        return policy
