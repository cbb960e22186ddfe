"""The clients each account logged in from lately: the throttle never locks or slows them for others' failures.

A client is ``throttle.client_key(ip)`` (IPv4 address, or the /64 of a global IPv6 address, so a
phone's rotating privacy addresses stay one known client), or ``device:TOKEN`` for a browser that
logged into the web UI (its device cookie, see ``authenticate.py``).

Persisted (``known_ips`` in accounts.sqlite3), not only in memory: a board restarts for updates
and after power cuts, and an attacker can keep hammering an account across the restart; a list in
memory would forget the owner's devices exactly then, and their next login would wait behind the
attack. Bounded: the ``KEEP`` most recent clients per account, forgotten after ``DAYS``; the
database is written at most once per ``REFRESH`` per (account, client), so a mail client that
reconnects every minute costs no write, and read once per account into a bounded memory cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gk.accounts.store import AccountStore


class KnownIPs:
    KEEP = 20
    DAYS = 30.0
    REFRESH = 3600.0
    MAX_CACHED = 10_000

    def __init__(self, accounts: AccountStore, clock: Callable[[], float] = time.time):
        self.accounts = accounts
        self.clock = clock
        self._cache: dict[str, dict[str, float]] = {}

    def _clients(self, account: str) -> dict[str, float]:
        known = self._cache.get(account)
        if known is None:
            if len(self._cache) > self.MAX_CACHED:
                self._cache.clear()
            known = self.accounts.known_clients(account, self.clock() - self.DAYS * 86400)
            self._cache[account] = known
        return known

    def contains(self, account: str, client: str) -> bool:
        last = self._clients(account).get(client)
        return last is not None and last >= self.clock() - self.DAYS * 86400

    def remember(self, account: str, client: str) -> None:
        """A successful login of ``account`` from ``client``."""
        now = self.clock()
        known = self._clients(account)
        if now - known.get(client, 0.0) < self.REFRESH:
            return
        self.accounts.remember_client(account, client, now, self.KEEP)
        known[client] = now
        if len(known) > self.KEEP:
            for old in sorted(known, key=known.__getitem__)[: len(known) - self.KEEP]:
                del known[old]
