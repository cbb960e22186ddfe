"""Password checks for every protocol: throttling, argon2id off the hub, bounded by memory, cached.

``Authenticator.login(address, password, ip, service)`` is what SMTP AUTH, IMAP LOGIN and the
web login call. It

1. reserves the attempt with the throttle *before* checking (``LoginThrottle.admit``): refused at
   once while this client is locked out for this account (or, unknown to the account, over all
   accounts or behind a distributed attack), else it sleeps its growing delay (a greenlet sleep)
   first. The policy is in ``throttle.py``;
2. joins an identical check already running (same address and password) instead of waiting and
   checking again: a mail client opening five connections at once costs one argon2 run. The
   attempt was admitted first all the same, so a locked-out client cannot test guesses against
   the checks of the owner's own logins;
3. answers from an in-memory cache of recently verified credentials when it can: the entry is
   ``HMAC-SHA256(process key, address NUL password)`` — never the password — lives
   ``imap.login_cache_seconds`` and is dropped when the password or app passwords change.
   Mail clients reconnect constantly; this keeps logins fast without lowering argon2's cost.
   The cache sits behind the throttle, so it is no unthrottled oracle for guesses;
4. otherwise runs argon2id in the CPU pool (``gk.pools``) so the hub keeps serving, at most
   ``parallel_hashes`` at once (each holds ``argon2_memory_kib``; see ``passwords.py``): the rest
   wait on a gevent semaphore, cooperatively;
5. on success remembers the client as known to the account (``known_ips.py``) — and, for the
   web, the browser: ``device`` is the browser's device token (a cookie), known like an address,
   so an owner's browser is never locked or slowed by others' failures even from a new address
   (OWASP's "device cookies"); a new token is issued when the presented one is not known to the
   account. On failure it records a security event with IP and account, and logs it. A refusal
   is recorded once a minute per (client, account), so an attacker hammering a lock does not
   write to the SD card at his own rate. A database error (a full disk) on these writes is
   logged and the login answered as usual: the throttle has already been settled.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

import gevent
from gevent.event import AsyncResult
from gevent.lock import BoundedSemaphore

from gk import pools
from gk.accounts.known_ips import KnownIPs
from gk.accounts.passwords import parallel_hashes
from gk.accounts.store import AccountStore, User, normalize_address
from gk.accounts.throttle import Attempt, LoginThrottle, client_key

log = logging.getLogger("gk.auth")


DEVICE_PREFIX = "device:"  # a device token's entry among an account's known clients
# a login from a mail, calendar or contacts client (not the web) is kept among the account's known
# clients as ``service:<name>`` too: the dashboard's "phone connected" tick (gk.web.nextsteps)
SERVICE_PREFIX = "service:"
DEVICE_SERVICES = ("imap", "submission", "submissions", "dav")


@dataclass(frozen=True)
class LoginResult:
    user: User | None
    locked: bool = False
    reason: str = ""
    device: str = ""  # web logins: the device token the browser should keep

    @property
    def ok(self) -> bool:
        return self.user is not None


def _in_threadpool(fn, *args):  # type: ignore[no-untyped-def]
    return pools.run_cpu(fn, *args)


def default_parallel_hashes(memory_kib: int) -> int:
    from gk.hw.tune import read_ram_mb

    try:
        ram_mb = read_ram_mb()
    except (OSError, ValueError):
        ram_mb = 512
    return parallel_hashes(memory_kib, ram_mb, os.cpu_count() or 1)


class Authenticator:
    MAX_CACHE = 10_000
    REFUSAL_EVENT_EVERY = 60.0

    def __init__(
        self,
        accounts: AccountStore,
        throttle: LoginThrottle,
        cache_seconds: float = 300.0,
        parallel: int = 0,
    ):
        self.accounts = accounts
        self.throttle = throttle
        self.cache_seconds = cache_seconds
        self.known = KnownIPs(accounts)
        self.parallel = parallel or default_parallel_hashes(accounts.hasher.memory_kib)
        self._hash_slots = BoundedSemaphore(self.parallel)
        self._key = secrets.token_bytes(32)
        self._cache: dict[str, tuple[bytes, float]] = {}
        self._running: dict[bytes, AsyncResult] = {}
        self._refusals: dict[tuple[str, str], float] = {}  # (client, account) -> last refusal event
        accounts.on_password_change(self.forget)

    def forget(self, address: str) -> None:
        self._cache.pop(normalize_address(address), None)

    def _digest(self, address: str, password: str) -> bytes:
        return hmac.new(
            self._key, address.encode() + b"\0" + password.encode("utf-8", "surrogateescape"), hashlib.sha256
        ).digest()

    def _argon2(self, fn, *args: Any) -> Any:  # type: ignore[no-untyped-def]
        """Run one argon2 call in the CPU pool, at most ``parallel`` at once (each holds m KiB)."""
        with self._hash_slots:
            return _in_threadpool(fn, *args)

    def _verify(self, address: str, password: str) -> User | None:
        user = self.accounts.get_user(address)
        stored = self.accounts.password_hash(address)
        hasher = self.accounts.hasher
        if user is None or stored is None:
            # spend the same time as a real check so user existence does not leak by timing
            self._argon2(hasher.verify, _DUMMY_HASH.get(self.accounts, self._argon2), password)
            return None
        if self._argon2(hasher.verify, stored, password):
            if hasher.needs_rehash(stored):
                self.accounts.update_hash(address, self._argon2(hasher.hash, password))
            return user
        for app_id, app_hash in self.accounts.app_password_hashes(address):
            if self._argon2(hasher.verify, app_hash, password):
                self.accounts.touch_app_password(app_id)
                return user
        return None

    def login(self, address: str, password: str, ip: str, service: str, device: str | None = None) -> LoginResult:
        """Check a login; ``device``: the browser's device token ("" = none yet; None = not a browser login)."""
        addr = normalize_address(address)
        digest = self._digest(addr, password)
        client = client_key(ip)
        device_known = bool(device and len(device) <= 64 and self.known.contains(addr, DEVICE_PREFIX + device))
        # a known browser is throttled as itself, not as its address: someone guessing from the
        # same address (a shared NAT) locks his own (address, account) pair, not the owner's browser
        as_client = DEVICE_PREFIX + str(device) if device_known else ip
        attempt = self.throttle.admit(as_client, addr, known=device_known or self.known.contains(addr, client))
        if attempt.refused:
            self._refused(attempt, service, ip, addr)
            return LoginResult(None, locked=True, reason="too many failed logins; try again later")
        user: User | None = None
        running = self._running.get(digest)
        if running is not None:
            # the same credential is being checked: its answer is ours, without a wait or a check
            # (admitted first all the same: a locked-out client must not learn it this way)
            joined = " (the same as a check in flight)"
            try:
                user = running.get()
            finally:
                locked = self.throttle.done(attempt, user is not None)
        else:
            joined = ""
            result = AsyncResult()
            self._running[digest] = result
            try:
                if attempt.wait:
                    gevent.sleep(attempt.wait)
                user = self._check(addr, password, digest)
            finally:
                del self._running[digest]
                result.set(user)
                locked = self.throttle.done(attempt, user is not None)
        if user is not None:
            self._write(self.known.remember, addr, client)
            if device is None:
                if service in DEVICE_SERVICES:  # written at most once an hour (KnownIPs.REFRESH)
                    self._write(self.known.remember, addr, SERVICE_PREFIX + service)
                return LoginResult(user)
            token = device if device and device_known else secrets.token_urlsafe(18)
            self._write(self.known.remember, addr, DEVICE_PREFIX + token)
            return LoginResult(user, device=token)
        self._write(self.accounts.record_event, "login_failed", service, ip, addr, "locked out" if locked else "")
        log.warning(
            "%s login failed ip=%s account=%s%s%s", service, ip, addr, joined, " (now locked out)" if locked else ""
        )
        return LoginResult(None, locked=locked, reason="authentication failed")

    def _write(self, fn, *args: Any) -> None:  # type: ignore[no-untyped-def]
        try:
            fn(*args)
        except sqlite3.Error as exc:  # e.g. a full disk: the login's answer does not depend on it
            log.error("cannot record a login in accounts.sqlite3: %s", exc)

    def _refused(self, attempt: Attempt, service: str, ip: str, addr: str) -> None:
        now = time.monotonic()
        key = (attempt.ip, addr)
        if now - self._refusals.get(key, -1e9) < self.REFUSAL_EVENT_EVERY:
            return
        if len(self._refusals) > self.MAX_CACHE:
            self._refusals.clear()
        self._refusals[key] = now
        detail = f"{attempt.why}; {attempt.refused:.0f}s more (recorded once a minute)"
        self._write(self.accounts.record_event, "login_locked", service, ip, addr, detail)
        log.warning("%s login refused (%s) ip=%s account=%s", service, detail, ip, addr)

    def _check(self, addr: str, password: str, digest: bytes) -> User | None:
        now = time.monotonic()
        cached = self._cache.get(addr)
        if cached and cached[1] > now and hmac.compare_digest(cached[0], digest):
            user = self.accounts.get_user(addr)
            if user is not None:
                return user
        user = self._verify(addr, password)
        if user and self.cache_seconds > 0:
            if len(self._cache) > self.MAX_CACHE:
                self._cache.clear()
            self._cache[addr] = (digest, time.monotonic() + self.cache_seconds)
        return user


class _DummyHash:
    """A hash of a random password with the store's parameters, made once per store."""

    def __init__(self) -> None:
        self._by_store: dict[int, str] = {}

    def get(self, accounts: AccountStore, run=lambda fn, *a: fn(*a)) -> str:  # type: ignore[no-untyped-def]
        key = id(accounts)
        if key not in self._by_store:
            self._by_store[key] = run(accounts.hasher.hash, secrets.token_hex(16))
        return self._by_store[key]


_DUMMY_HASH = _DummyHash()
