"""A read/write lock for the DAV storage (Radicale's ``acquire_lock``), cooperative on the hub and
usable from the pool threads that run Radicale's requests (``gk.dav.service``).

Radicale's file backend locks with ``flock`` on a lock file, which blocks the whole gevent hub
while another holder works; here a greenlet on the hub waits with a greenlet switch and a pool
thread waits natively. It is built from ``gk.locks.SharedLock`` (native locks that any thread
may release), not gevent semaphores: those lose wake-ups across threads (``gk.locks``). Many
readers or one writer; writer-preferring (a waiting writer holds the turnstile, so a stream of
PROPFINDs cannot starve a PUT). Re-entrant per holder (a greenlet on the hub, or a pool thread):
a holder already inside passes straight in (Radicale nests a read inside a read for shared
collections). Cost: three locks and a dict.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import gevent

from gk.locks import SharedLock


class RWLock:
    def __init__(self) -> None:
        self._turnstile = SharedLock()  # a writer holds it while it waits and writes
        self._room = SharedLock()  # held by the readers as a group, or by one writer
        self._count = SharedLock()  # guards ``_readers``
        self._readers = 0
        self._holders: dict[object, str] = {}  # greenlet (a pool thread's own greenlet) -> mode

    @property
    def locked(self) -> str:
        """ "w" while a writer holds the lock, "r" while readers do, "" when free (for tests)."""
        if "w" in list(self._holders.values()):
            return "w"
        return "r" if self._readers else ""

    @contextlib.contextmanager
    def acquire(self, mode: str) -> Iterator[None]:
        if mode not in ("r", "w"):
            raise ValueError(f"invalid lock mode {mode!r}")
        me = gevent.getcurrent()
        held = self._holders.get(me)
        if held == "w" or (held == "r" and mode == "r"):
            yield
            return
        if held == "r":
            raise RuntimeError("cannot upgrade a DAV read lock to a write lock")
        if mode == "r":
            with self._turnstile:
                pass
            with self._count:
                self._readers += 1
                if self._readers == 1:
                    self._room.acquire()
            self._holders[me] = "r"
            try:
                yield
            finally:
                del self._holders[me]
                with self._count:
                    self._readers -= 1
                    if self._readers == 0:
                        self._room.release()
            return
        with self._turnstile:
            with self._room:
                self._holders[me] = "w"
                try:
                    yield
                finally:
                    del self._holders[me]
