"""A real DNS server on loopback for tests (dnslib), serving records the test sets.

    dns = LoopbackDNS()            # picks a free port on 127.0.0.1, UDP and TCP
    dns.add("example.org", "MX", "10 mx1.example.org.")
    dns.add("mx1.example.org", "A", "127.0.0.2")
    dns.add("example.org", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    dns.start(); ...; dns.stop()

Point GK at it with ``[dns] nameservers = ["127.0.0.1"]`` and ``port = dns.port``.
Names not in the zone answer NXDOMAIN; known names without the asked type answer NOERROR/empty.
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
        self.lock = threading.Lock()
        self.queries: list[tuple[str, str]] = []

    def resolve(self, request: DNSRecord, handler):  # type: ignore[no-untyped-def]
        reply = request.reply()
        qname = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        with self.lock:
            self.queries.append((qname, qtype))
            known = any(name == qname for name, _ in self.records)
            values = list(self.records.get((qname, qtype), []))
        if not known:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for value in values:
            if qtype == "TXT":
                # long TXT values (DKIM keys) are split into 255-byte strings
                chunks = [value[i : i + 255] for i in range(0, len(value), 255)] or [""]
                txt = " ".join('"' + c.replace('"', '\\"') + '"' for c in chunks)
                reply.add_answer(*RR.fromZone(f"{qname}. 60 IN TXT {txt}"))
            else:
                reply.add_answer(*RR.fromZone(f"{qname}. 60 IN {qtype} {value}"))
        return reply


class LoopbackDNS:
    def __init__(self, address: str = "127.0.0.1") -> None:
        self.address = address
        self.port = free_port(udp=True)
        self.resolver = _ZoneResolver()
        self._servers: list[DNSServer] = []

    def add(self, name: str, rtype: str, value: str) -> LoopbackDNS:
        with self.resolver.lock:
            self.resolver.records[(name.rstrip(".").lower(), rtype.upper())].append(value)
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
