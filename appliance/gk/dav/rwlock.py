"""A gevent-cooperative read/write lock for the DAV storage (Radicale's ``acquire_lock``).

Radicale's file backend locks with ``flock`` on a lock file, which blocks the whole gevent hub
while another holder works; here waiting is a greenlet switch. Many readers or one writer;
writer-preferring (a waiting writer closes the gate to new readers, so a stream of PROPFINDs
cannot starve a PUT). Re-entrant per greenlet: a greenlet already inside passes straight in
(Radicale nests a read inside a read for shared collections). Cost: two small objects.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import gevent
import gevent.event
import gevent.lock


class RWLock:
    def __init__(self) -> None:
        self._gate = gevent.lock.Semaphore(1)  # held by a writer while it waits and while it writes
        self._no_readers = gevent.event.Event()
        self._no_readers.set()
        self._readers = 0
        self._holders: dict[object, str] = {}  # greenlet -> "r" or "w"

    @property
    def locked(self) -> str:
        """ "w" while a writer holds the lock, "r" while readers do, "" when free (for tests)."""
        if "w" in self._holders.values():
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
            with self._gate:
                self._readers += 1
                self._no_readers.clear()
            self._holders[me] = "r"
            try:
                yield
            finally:
                del self._holders[me]
                self._readers -= 1
                if self._readers == 0:
                    self._no_readers.set()
            return
        with self._gate:
            self._no_readers.wait()
            self._holders[me] = "w"
            try:
                yield
            finally:
                del self._holders[me]
