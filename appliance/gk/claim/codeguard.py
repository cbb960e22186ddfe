"""Throttling of wrong setup codes, per client address (never global).

The setup code has 60 bits (12 characters of a 31-letter alphabet): guessing it is hopeless
at any rate a box can answer, so the throttle exists to slow one noisy address, not to protect
the code. It must never let one LAN device lock the owner out from another: a global counter
(the login throttle's account key "setup-code" was one) did, for 15 minutes, renewable.

Per address: after ``DELAY_AFTER`` wrong codes each further attempt waits 2^(n-k) seconds (at
most ``MAX_DELAY``); at ``lockout_failures`` that address alone is refused for
``lockout_seconds``. An attempt is counted before the code is checked (and taken back when it
was right), so a burst of parallel guesses cannot outrun the count.

Cost: one small entry per address that got a code wrong (at most ``MAX_TRACKED``), in memory:
a restart forgets them, which costs an attacker nothing they would not get by waiting.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field

DELAY_AFTER = 3
MAX_DELAY = 8.0
WINDOW = 3600.0  # failures older than this are forgotten


@dataclass
class _Entry:
    failures: list[float] = field(default_factory=list)
    locked_until: float = 0.0


def address_key(ip: str) -> str:
    """One key per client address (an IPv4-mapped IPv6 address is its IPv4 address)."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return str(addr)


class CodeGuard:
    MAX_TRACKED = 10_000

    def __init__(
        self, lockout_failures: int = 10, lockout_seconds: float = 900.0, clock: Callable[[], float] = time.monotonic
    ):
        self.lockout_failures = lockout_failures
        self.lockout_seconds = lockout_seconds
        self.clock = clock
        self._entries: dict[str, _Entry] = {}

    def locked(self, ip: str) -> float:
        """Seconds left of this address's lockout (0 when it may try)."""
        e = self._entries.get(address_key(ip))
        return max(0.0, e.locked_until - self.clock()) if e else 0.0

    def attempt(self, ip: str) -> float | None:
        """Count an attempt from ``ip`` before its code is checked: None when the address is
        locked out (do not check the code), else the delay to wait before checking."""
        now = self.clock()
        key = address_key(ip)
        e = self._entries.get(key)
        if e is None:
            if len(self._entries) >= self.MAX_TRACKED:
                self._forget_oldest(now)
            e = self._entries[key] = _Entry()
        if e.locked_until > now:
            return None
        e.failures = [t for t in e.failures if t > now - WINDOW]
        e.failures.append(now)
        n = len(e.failures)
        if n >= self.lockout_failures:
            e.locked_until = now + self.lockout_seconds
            e.failures.clear()
        return 0.0 if n <= DELAY_AFTER else min(MAX_DELAY, float(2 ** (n - DELAY_AFTER - 1)))

    def success(self, ip: str) -> None:
        """The code was right: the attempt was not a failure."""
        self._entries.pop(address_key(ip), None)

    def _forget_oldest(self, now: float) -> None:
        expired = [
            k
            for k, e in self._entries.items()
            if e.locked_until <= now and (not e.failures or e.failures[-1] <= now - WINDOW)
        ]
        for k in expired or list(self._entries)[: self.MAX_TRACKED // 10]:
            self._entries.pop(k, None)
