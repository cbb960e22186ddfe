"""Locks shared between greenlets on the hub and GK's pool threads (``gk.pools``).

gevent's own locks (and ``threading.Lock``/``RLock`` once monkey-patched) are meant to work
across native threads, but they lose wake-ups there: with gevent 26.9 a pool thread waiting on
an RLock that a greenlet on the hub held while it waited for a pool task never woke up, and
the lock stayed free (a DAV request of vdirsyncer hung for good; the pattern is the first test
of ``tests/unit/test_locks.py``, and a plain monkey-patched ``threading.RLock`` hangs in it
within its first round). These locks are built on the *native* lock of
``_thread`` instead, which wakes a native waiter reliably:

- a pool thread (any thread but the hub's) waits natively, releasing the GIL;
- a greenlet on the hub thread never blocks the hub: it queues behind a hub-only gevent
  semaphore (so one greenlet at a time waits for the native lock), then takes the native lock
  as soon as it is free. A release on the hub wakes it at once (a hub-only event); a release by
  a pool thread is seen by polling, every 0.1 ms doubling to 2 ms — pool threads hold these
  locks for one query or one DAV request, so the wait is short and the cost is a timer.

A native lock may be released by another thread than the one that took it, so ``SharedLock``
also serves as a binary semaphore (``gk.dav.rwlock``: the first reader takes the room, the
last one, maybe another thread, gives it back). ``SharedRLock`` is re-entrant per holder: a
greenlet on the hub, or a pool thread (its own greenlet).

Cost: one native lock, a small gevent semaphore and event created on first contention on the
hub; an uncontended acquire is a non-blocking native acquire.
"""

from __future__ import annotations

import time
from typing import Any

import gevent
import gevent.event
import gevent.lock
from gevent import monkey

_allocate_lock = monkey.get_original("_thread", "allocate_lock")
_get_ident = monkey.get_original("_thread", "get_ident")
_HUB_THREAD = _get_ident()  # GK's hub runs in the main thread, which imports this module

POLL_FIRST = 0.0001
POLL_MAX = 0.002


def on_hub_thread() -> bool:
    return bool(_get_ident() == _HUB_THREAD)


class SharedLock:
    """A binary lock for greenlets on the hub and pool threads alike; any thread may release it."""

    __slots__ = ("_native", "_gate", "_freed", "_hub_waiting")

    def __init__(self) -> None:
        self._native = _allocate_lock()
        self._gate: gevent.lock.Semaphore | None = None  # hub waiters, one at a time
        self._freed: gevent.event.Event | None = None  # set by a release on the hub
        self._hub_waiting = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._native.acquire(False):
            return True
        if not blocking:
            return False
        if not on_hub_thread():
            return bool(self._native.acquire(True, timeout))
        return self._acquire_on_hub(None if timeout is None or timeout < 0 else timeout)

    def _acquire_on_hub(self, timeout: float | None) -> bool:
        if self._gate is None:
            self._gate = gevent.lock.Semaphore(1)
            self._freed = gevent.event.Event()
        freed = self._freed
        assert freed is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        self._hub_waiting += 1
        try:
            if not self._gate.acquire(timeout=timeout):
                return False
            try:
                delay = POLL_FIRST
                while True:
                    freed.clear()
                    if self._native.acquire(False):
                        return True
                    wait = delay
                    if deadline is not None:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            return False
                        wait = min(wait, left)
                    freed.wait(wait)
                    delay = min(delay * 2, POLL_MAX)
            finally:
                self._gate.release()
        finally:
            self._hub_waiting -= 1

    def release(self) -> None:
        self._native.release()
        if self._hub_waiting and self._freed is not None and on_hub_thread():
            self._freed.set()

    def locked(self) -> bool:
        return bool(self._native.locked())

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


class SharedRLock:
    """``SharedLock`` that its holder (a greenlet on the hub, or a pool thread) may take again."""

    __slots__ = ("_lock", "_owner", "_count")

    def __init__(self) -> None:
        self._lock = SharedLock()
        self._owner: object = None
        self._count = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        me = gevent.getcurrent()
        if self._owner is me:
            self._count += 1
            return True
        if not self._lock.acquire(blocking, timeout):
            return False
        self._owner = me
        self._count = 1
        return True

    def release(self) -> None:
        if self._owner is not gevent.getcurrent():
            raise RuntimeError("cannot release an un-acquired lock")
        self._count -= 1
        if not self._count:
            self._owner = None
            self._lock.release()

    def held(self) -> bool:
        """True if the caller holds it."""
        return self._owner is gevent.getcurrent()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
