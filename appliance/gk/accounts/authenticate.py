"""Password checks for every protocol: throttling, argon2id off the hub, a verified-credential cache.

``Authenticator.login(address, password, ip, service)`` is what SMTP AUTH, IMAP LOGIN and the
web login call. It

1. refuses at once while the IP or account is locked out (``LoginThrottle``);
2. answers from an in-memory cache of recently verified credentials when it can: the entry is
   ``HMAC-SHA256(process key, address NUL password)`` — never the password — lives
   ``imap.login_cache_seconds`` and is dropped when the password or app passwords change.
   Mail clients reconnect constantly; this keeps logins fast without lowering argon2's cost;
3. otherwise runs argon2id verification in gevent's native threadpool so the hub keeps serving;
4. on failure sleeps the throttle's growing delay (a greenlet sleep), records a security event
   with IP and account, and logs it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass

import gevent

from gk.accounts.store import AccountStore, User, normalize_address
from gk.accounts.throttle import LoginThrottle

log = logging.getLogger("gk.auth")


@dataclass(frozen=True)
class LoginResult:
    user: User | None
    locked: bool = False
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.user is not None


def _in_threadpool(fn, *args):  # type: ignore[no-untyped-def]
    try:
        return gevent.get_hub().threadpool.apply(fn, args)
    except Exception:  # pragma: no cover - e.g. called outside a hub in a CLI
        return fn(*args)


class Authenticator:
    MAX_CACHE = 10_000

    def __init__(self, accounts: AccountStore, throttle: LoginThrottle, cache_seconds: float = 300.0):
        self.accounts = accounts
        self.throttle = throttle
        self.cache_seconds = cache_seconds
        self._key = secrets.token_bytes(32)
        self._cache: dict[str, tuple[bytes, float]] = {}
        accounts.on_password_change(self.forget)

    def forget(self, address: str) -> None:
        self._cache.pop(normalize_address(address), None)

    def _digest(self, address: str, password: str) -> bytes:
        return hmac.new(
            self._key, address.encode() + b"\0" + password.encode("utf-8", "surrogateescape"), hashlib.sha256
        ).digest()

    def _verify(self, address: str, password: str) -> User | None:
        user = self.accounts.get_user(address)
        stored = self.accounts.password_hash(address)
        if user is None or stored is None:
            # spend the same time as a real check so user existence does not leak by timing
            _in_threadpool(self.accounts.hasher.verify, _DUMMY_HASH.get(self.accounts), password)
            return None
        if _in_threadpool(self.accounts.hasher.verify, stored, password):
            if self.accounts.hasher.needs_rehash(stored):
                self.accounts.update_hash(address, _in_threadpool(self.accounts.hasher.hash, password))
            return user
        for app_id, app_hash in self.accounts.app_password_hashes(address):
            if _in_threadpool(self.accounts.hasher.verify, app_hash, password):
                self.accounts.touch_app_password(app_id)
                return user
        return None

    def login(self, address: str, password: str, ip: str, service: str) -> LoginResult:
        addr = normalize_address(address)
        left = self.throttle.locked(ip, addr)
        if left:
            self.accounts.record_event("login_locked", service, ip, addr, f"locked for {left:.0f}s more")
            log.warning("%s login refused (locked out %.0fs more) ip=%s account=%s", service, left, ip, addr)
            return LoginResult(None, locked=True, reason="too many failed logins; try again later")
        now = time.monotonic()
        digest = self._digest(addr, password)
        cached = self._cache.get(addr)
        user: User | None = None
        if cached and cached[1] > now and hmac.compare_digest(cached[0], digest):
            user = self.accounts.get_user(addr)
        if user is None:
            user = self._verify(addr, password)
            if user and self.cache_seconds > 0:
                if len(self._cache) > self.MAX_CACHE:
                    self._cache.clear()
                self._cache[addr] = (digest, now + self.cache_seconds)
        if user is not None:
            self.throttle.success(ip, addr)
            return LoginResult(user)
        delay, locked = self.throttle.failure(ip, addr)
        self.accounts.record_event("login_failed", service, ip, addr, "locked out" if locked else "")
        log.warning("%s login failed ip=%s account=%s%s", service, ip, addr, " (now locked out)" if locked else "")
        if delay:
            gevent.sleep(delay)
        return LoginResult(None, locked=locked, reason="authentication failed")


class _DummyHash:
    """A hash of a random password with the store's parameters, made once per store."""

    def __init__(self) -> None:
        self._by_store: dict[int, str] = {}

    def get(self, accounts: AccountStore) -> str:
        key = id(accounts)
        if key not in self._by_store:
            self._by_store[key] = accounts.hasher.hash(secrets.token_hex(16))
        return self._by_store[key]


_DUMMY_HASH = _DummyHash()
