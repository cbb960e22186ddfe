"""Login throttling shared by SMTP, IMAP and the web: growing delays, then lockout.

Failures are counted per client IP and per account (in memory: a restart forgets them, which
is acceptable — a restart is rare and costs an attacker nothing they could not get by waiting).
After ``delay_after_failures`` failures each further failed attempt waits 2^(n - k) seconds
(capped at ``max_delay``) before its error reply; at ``lockout_failures_*`` the IP or account
is refused outright for ``lockout_seconds``. A success clears the account's and IP's count.
Every failure and lockout is recorded as a security event (see ``events.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gk.config import AuthConfig


@dataclass
class _Counter:
    failures: list[float] = field(default_factory=list)
    locked_until: float = 0.0


class LoginThrottle:
    MAX_TRACKED = 50_000

    def __init__(self, cfg: AuthConfig, clock: Callable[[], float] = time.monotonic):
        self.cfg = cfg
        self.clock = clock
        self._ips: dict[str, _Counter] = {}
        self._accounts: dict[str, _Counter] = {}

    def _prune(self, c: _Counter, now: float) -> None:
        horizon = now - self.cfg.failure_window
        while c.failures and c.failures[0] < horizon:
            c.failures.pop(0)

    def locked(self, ip: str, account: str | None) -> float:
        """Seconds left of a lockout on this IP or account (0 when not locked)."""
        now = self.clock()
        left = 0.0
        for table, key in ((self._ips, ip), (self._accounts, (account or "").lower())):
            c = table.get(key)
            if c and c.locked_until > now:
                left = max(left, c.locked_until - now)
        return left

    def failure(self, ip: str, account: str | None) -> tuple[float, bool]:
        """Record a failure; returns (delay to apply before replying, whether now locked)."""
        now = self.clock()
        if len(self._ips) > self.MAX_TRACKED:
            self._ips.clear()
        if len(self._accounts) > self.MAX_TRACKED:
            self._accounts.clear()
        locked = False
        counts = []
        pairs = [(self._ips, ip, self.cfg.lockout_failures_ip)]
        if account:
            pairs.append((self._accounts, account.lower(), self.cfg.lockout_failures_account))
        for table, key, limit in pairs:
            c = table.setdefault(key, _Counter())
            self._prune(c, now)
            c.failures.append(now)
            counts.append(len(c.failures))
            if len(c.failures) >= limit:
                c.locked_until = now + self.cfg.lockout_seconds
                c.failures.clear()
                locked = True
        n = max(counts)
        k = self.cfg.delay_after_failures
        delay = 0.0 if n < k else min(self.cfg.max_delay, float(2 ** (n - k)))
        return delay, locked

    def success(self, ip: str, account: str) -> None:
        self._ips.pop(ip, None)
        self._accounts.pop(account.lower(), None)
