"""Login throttling shared by SMTP, IMAP and the web: per (client, account), reserved before the check.

Policy (``[auth]`` in gk.toml; docs/security.md tells the owner the same):

- **A client** is an IPv4 address, or the /64 of a global IPv6 address (one host or LAN holds a
  whole /64, so counting single v6 addresses would give an attacker 2^64 fresh counters).
- **Attempts are reserved before the password is checked** (``admit``): an attempt in flight
  counts as a failure until it is known not to be one, so a burst of simultaneous guesses gets
  no more checks than the same guesses one after another.
- **Per (client, account)**: the first ``delay_after_failures`` failures are free; every further
  attempt waits 2^(n - k) seconds (capped at ``max_delay``) after the previous one, in the
  attempt's own greenlet. At ``lockout_failures_account`` failures the pair is locked for
  ``lockout_seconds``, doubling with each lock the pair earns again (capped at
  ``MAX_LOCK_SECONDS``). Only that client is locked, and only for that account: a wrong
  password from elsewhere never locks the owner out. A success clears the pair, and nothing else
  (a success on the attacker's own account must not wipe his failures on others').
- **Per client**, over all accounts: ``lockout_failures_ip`` failures (and attempts in flight)
  lock the client for ``lockout_seconds`` against every account it is not *known* to — so one
  address cannot spray guesses over many accounts. Successes do not clear it.
- **Per account**, against distributed guessing: once ``lockout_failures_account`` failures
  (and attempts in flight) came from clients *unknown* to the account within the window,
  unknown clients are let through one at a time, at most one per 2^(m - limit) seconds (capped
  at ``max_delay``); an attempt that would wait longer than ``max_delay`` is refused ("try again
  later"). Known clients never wait on this lane.
- **Known clients** of an account are the ones it logged in from successfully lately
  (``known_ips.KnownIPs``, persisted): they are exempt from the per-client and per-account
  guards, so an outsider can neither lock nor slow the owner's usual devices, browser included.

Failures older than ``failure_window`` are forgotten, and so is a pair's lock count once its
last lock ended that long ago. The counters are in memory (a restart forgets them, which gives an
attacker nothing he could not get by waiting). Each table holds at most ``MAX_TRACKED`` entries
(about 10 MB worst case over the three): past that the least recently used entries that are
neither locked nor in flight go first, so flooding fresh addresses neither grows memory nor
wipes the locks an attacker earned (the previous code cleared every table at once).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gk.config import AuthConfig

MAX_LOCK_SECONDS = 24 * 3600.0


def client_key(ip: str) -> str:
    """The throttling key of a client address: IPv4 as is (also when IPv4-mapped), global IPv6 as its /64."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        if addr.is_global:
            return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


@dataclass(slots=True)
class _Pair:
    """One client's attempts on one account."""

    failures: list[float] = field(default_factory=list)
    pending: int = 0
    next_at: float = 0.0  # the next attempt is not checked before this moment
    locked_until: float = 0.0
    locks: int = 0  # locks earned so far: each doubles the next one

    @property
    def idle(self) -> bool:
        return not self.pending and not self.locked_until


@dataclass(slots=True)
class _Client:
    failures: list[float] = field(default_factory=list)
    pending: int = 0
    locked_until: float = 0.0

    @property
    def idle(self) -> bool:
        return not self.pending and not self.locked_until


@dataclass(slots=True)
class _Account:
    unknown_failures: list[float] = field(default_factory=list)  # failures from unknown clients
    pending: int = 0  # attempts in flight from unknown clients
    lane_next: float = 0.0  # the unknown-client lane's next free slot

    @property
    def idle(self) -> bool:
        return not self.pending


_Entry = _Pair | _Client | _Account


def _touch(table: dict, key: object, make: Callable[[], _Entry], limit: int) -> _Entry:  # type: ignore[type-arg]
    """The entry for ``key``, made if missing, moved to the most recently used end; evicts past ``limit``."""
    entry = table.pop(key, None)
    if entry is None:
        entry = make()
        if len(table) >= limit:
            _evict(table, limit)
    table[key] = entry
    return entry


def _evict(table: dict, limit: int) -> None:  # type: ignore[type-arg]
    """Drop a tenth of ``limit``: idle entries first (least recently used first), then the oldest."""
    target = len(table) - limit + limit // 10 + 1
    idle = [k for k, e in table.items() if e.idle][:target]
    for k in idle:
        del table[k]
    for k in list(table)[: max(0, target - len(idle))]:
        del table[k]


@dataclass(frozen=True)
class Attempt:
    """A reserved login attempt: sleep ``wait`` then check the password, then ``LoginThrottle.done``.

    ``refused`` > 0 means: do not check at all, the client may try again in that many seconds."""

    ip: str
    account: str
    known: bool
    wait: float = 0.0
    refused: float = 0.0
    why: str = ""


class LoginThrottle:
    MAX_TRACKED = 10_000

    def __init__(self, cfg: AuthConfig, clock: Callable[[], float] = time.monotonic):
        self.cfg = cfg
        self.clock = clock
        self._pairs: dict[tuple[str, str], _Pair] = {}
        self._clients: dict[str, _Client] = {}
        self._accounts: dict[str, _Account] = {}

    # -- bookkeeping -----------------------------------------------------------------------
    def _prune(self, q: list[float], now: float) -> None:
        horizon = now - self.cfg.failure_window
        if q and q[0] < horizon:
            q[:] = [t for t in q if t >= horizon]

    def _get(self, ip: str, account: str, now: float) -> tuple[_Pair, _Client, _Account]:
        n = self.MAX_TRACKED  # an in-flight attempt whose entry was evicted anyway settles on a new one
        pair: _Pair = _touch(self._pairs, (ip, account), _Pair, n)  # type: ignore[assignment]
        client: _Client = _touch(self._clients, ip, _Client, n)  # type: ignore[assignment]
        acc: _Account = _touch(self._accounts, account, _Account, n)  # type: ignore[assignment]
        for e in (pair, client):
            if e.locked_until and e.locked_until <= now - self.cfg.failure_window:
                e.locked_until = 0.0  # long over: the entry may be evicted again
                if isinstance(e, _Pair):
                    e.locks = 0
        self._prune(pair.failures, now)
        self._prune(client.failures, now)
        self._prune(acc.unknown_failures, now)
        return pair, client, acc

    def _delay(self, n: int) -> float:
        """Wait before the attempt that follows the n-th failure of a pair."""
        k = self.cfg.delay_after_failures
        return 0.0 if n < k else min(self.cfg.max_delay, float(2 ** min(n - k, 62)))

    def _refusal(self, pair: _Pair, client: _Client, acc: _Account, known: bool, now: float) -> tuple[float, str]:
        """(seconds, reason) when an attempt must not be checked now, else (0, "")."""
        if pair.locked_until > now:
            return pair.locked_until - now, "client locked out for this account"
        if len(pair.failures) + pair.pending >= self.cfg.lockout_failures_account:
            return max(1.0, pair.next_at - now), "too many attempts in flight for this account"
        if known:
            return 0.0, ""
        if client.locked_until > now:
            return client.locked_until - now, "client locked out"
        if len(client.failures) + client.pending >= self.cfg.lockout_failures_ip:
            return 1.0, "too many attempts in flight from this client"
        return 0.0, ""

    # -- the API the authenticator uses ----------------------------------------------------
    def admit(self, ip: str, account: str | None, known: bool = False) -> Attempt:
        """Reserve one attempt (counted as a failure until ``done`` says otherwise)."""
        now = self.clock()
        key, acct = client_key(ip), (account or "").lower()
        pair, client, acc = self._get(key, acct, now)
        left, why = self._refusal(pair, client, acc, known, now)
        if left:
            return Attempt(key, acct, known, refused=left, why=why)
        slot = max(now, pair.next_at)
        if not known:
            m = len(acc.unknown_failures) + acc.pending
            limit = self.cfg.lockout_failures_account
            if m >= limit:  # distributed guessing: one unknown client at a time, spaced
                lane = max(now, acc.lane_next)
                if lane - now > self.cfg.max_delay:
                    return Attempt(
                        key, acct, known, refused=lane - now, why="account under attack; unknown clients wait"
                    )
                acc.lane_next = lane + min(self.cfg.max_delay, float(2 ** min(m - limit, 62)))
                slot = max(slot, lane)
            acc.pending += 1
            client.pending += 1
        pair.pending += 1
        pair.next_at = slot + self._delay(len(pair.failures) + pair.pending)
        return Attempt(key, acct, known, wait=slot - now)

    def done(self, attempt: Attempt, ok: bool) -> bool:
        """Settle a reserved attempt; returns whether the pair is now locked out."""
        if attempt.refused:
            return True
        now = self.clock()
        pair, client, acc = self._get(attempt.ip, attempt.account, now)
        pair.pending = max(0, pair.pending - 1)
        if not attempt.known:
            client.pending = max(0, client.pending - 1)
            acc.pending = max(0, acc.pending - 1)
        if ok:
            pair.failures.clear()
            pair.next_at = pair.locked_until = 0.0
            pair.locks = 0
            return False
        return self._failed(pair, client, acc, attempt.known, now)

    def _failed(self, pair: _Pair, client: _Client, acc: _Account, known: bool, now: float) -> bool:
        pair.failures.append(now)
        client.failures.append(now)
        if not known:
            acc.unknown_failures.append(now)
        if len(client.failures) >= self.cfg.lockout_failures_ip:
            client.locked_until = now + self.cfg.lockout_seconds
            client.failures.clear()
        if len(pair.failures) >= self.cfg.lockout_failures_account:
            pair.locked_until = now + min(MAX_LOCK_SECONDS, self.cfg.lockout_seconds * 2 ** min(pair.locks, 32))
            pair.locks += 1
            pair.failures.clear()
            return True
        return False

    def lock_left(self, ip: str, account: str | None, known: bool = False) -> float:
        """Seconds before an attempt of this client on this account would be checked again (0 = now)."""
        now = self.clock()
        pair, client, acc = self._get(client_key(ip), (account or "").lower(), now)
        return self._refusal(pair, client, acc, known, now)[0]

    # -- the older API (the setup-code check in the wizard): no reservation -----------------
    def locked(self, ip: str, account: str | None) -> float:
        """Seconds left of a lockout of this client, for this account or over all (0 when not locked)."""
        return self.lock_left(ip, account)

    def failure(self, ip: str, account: str | None) -> tuple[float, bool]:
        """Record a failure; returns (delay to apply before replying, whether now locked)."""
        now = self.clock()
        pair, client, acc = self._get(client_key(ip), (account or "").lower(), now)
        locked = self._failed(pair, client, acc, False, now)
        return self._delay(len(pair.failures)), locked or client.locked_until > now

    def success(self, ip: str, account: str) -> None:
        """Clear this client's failures on this account (not the client's on others)."""
        self._pairs.pop((client_key(ip), account.lower()), None)
