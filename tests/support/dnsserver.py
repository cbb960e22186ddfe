"""A real DNS server on loopback for tests (dnslib), serving records the test sets.

    dns = LoopbackDNS()            # picks a free port on 127.0.0.1, UDP and TCP
    dns.add("example.org", "MX", "10 mx1.example.org.")
    dns.add("mx1.example.org", "A", "127.0.0.2")
    dns.add("example.org", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    dns.start(); ...; dns.stop()

Point GK at it with ``[dns] nameservers = ["127.0.0.1"]`` and ``port = dns.port``.
Names not in the zone answer NXDOMAIN; known names without the asked type answer NOERROR/empty.
Every record has a TTL of 60 s unless ``add`` says otherwise. A negative answer (NXDOMAIN or
NOERROR/empty) carries in its authority section the SOA of the nearest enclosing name given
one (``dns.soa("example.org", minimum=5)``): its negative TTL is min(SOA TTL, MINIMUM) (RFC
2308); without one it carries none, as before.
"""

from __future__ import annotations

import threading
from collections import defaultdict

import dns.resolver
from dnslib import QTYPE, RCODE, RR, DNSRecord
from dnslib.server import BaseResolver, DNSServer

from support.ports import free_port


class _ZoneResolver(BaseResolver):
    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.ttls: dict[tuple[str, str, str], int] = {}  # (name, type, value) -> TTL when not 60
        self.soas: dict[str, tuple[int, int]] = {}  # zone -> (SOA TTL, MINIMUM)
        self.lock = threading.Lock()
        self.queries: list[tuple[str, str]] = []

    def resolve(self, request: DNSRecord, handler):  # type: ignore[no-untyped-def]
        reply = request.reply()
        qname = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        with self.lock:
            self.queries.append((qname, qtype))
            known = any(name == qname for name, _ in self.records)
            values = [(v, self.ttls.get((qname, qtype, v), 60)) for v in self.records.get((qname, qtype), [])]
            labels = qname.split(".")
            zone = next((".".join(labels[i:]) for i in range(len(labels)) if ".".join(labels[i:]) in self.soas), None)
            soa = self.soas.get(zone) if zone is not None else None
        if not known:
            reply.header.rcode = RCODE.NXDOMAIN
        for value, ttl in values:
            if qtype == "TXT":
                # long TXT values (DKIM keys) are split into 255-byte strings
                chunks = [value[i : i + 255] for i in range(0, len(value), 255)] or [""]
                txt = " ".join('"' + c.replace('"', '\\"') + '"' for c in chunks)
                reply.add_answer(*RR.fromZone(f"{qname}. {ttl} IN TXT {txt}"))
            else:
                reply.add_answer(*RR.fromZone(f"{qname}. {ttl} IN {qtype} {value}"))
        if not values and soa is not None:
            ttl, minimum = soa
            reply.add_auth(
                *RR.fromZone(f"{zone}. {ttl} IN SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 {minimum}")
            )
        return reply


class LoopbackDNS:
    def __init__(self, address: str = "127.0.0.1") -> None:
        self.address = address
        self.port = free_port(udp=True)
        self.resolver = _ZoneResolver()
        self._servers: list[DNSServer] = []

    def add(self, name: str, rtype: str, value: str, ttl: int = 60) -> LoopbackDNS:
        name, rtype = name.rstrip(".").lower(), rtype.upper()
        with self.resolver.lock:
            self.resolver.records[(name, rtype)].append(value)
            if ttl != 60:
                self.resolver.ttls[(name, rtype, value)] = ttl
        return self

    def soa(self, zone: str, minimum: int, ttl: int = 3600) -> LoopbackDNS:
        """Negative answers for names at or below ``zone`` carry its SOA: they may be cached for
        min(``ttl``, ``minimum``) seconds (RFC 2308)."""
        with self.resolver.lock:
            self.resolver.soas[zone.rstrip(".").lower()] = (ttl, minimum)
        return self

    def clear(self, name: str, rtype: str | None = None) -> None:
        with self.resolver.lock:
            for key in list(self.resolver.records):
                if key[0] == name.lower() and (rtype is None or key[1] == rtype.upper()):
                    del self.resolver.records[key]

    @property
    def queries(self) -> list[tuple[str, str]]:
        return list(self.resolver.queries)

    def start(self) -> LoopbackDNS:
        for tcp in (False, True):
            server = DNSServer(self.resolver, address=self.address, port=self.port, tcp=tcp, logger=_QuietLogger())
            server.start_thread()
            self._servers.append(server)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.stop()
        self._servers.clear()

    def client(self, cache: bool) -> dns.resolver.Resolver:
        """A dnspython resolver asking only this server; ``cache``: with an LRU cache, as GK's."""
        r = dns.resolver.Resolver(configure=False)
        r.nameservers, r.port, r.timeout, r.lifetime = [self.address], self.port, 2.0, 4.0
        if cache:
            r.cache = dns.resolver.LRUCache(max_size=100)
        return r

    def config(self) -> dict:
        """The ``[dns]`` table pointing GK at this server."""
        return {"nameservers": [self.address], "port": self.port, "timeout": 2.0}


class _QuietLogger:
    def __getattr__(self, name):  # type: ignore[no-untyped-def]
        return lambda *a, **k: None
