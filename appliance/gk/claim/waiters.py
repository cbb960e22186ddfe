"""Which browsers are waiting for a button press on the claim page: a press goes to exactly one.

A press used to go to whichever browser polled first after it: a LAN device polling every
0.2 s won the claim the moment the owner pressed the button, and the owner got a dead end.
Now a browser announces itself (opening the claim page, then each poll refreshes it), and a
press is granted only when exactly one browser was waiting at that moment. With more than one
waiting nobody gets it; each is told to use the setup code instead (which an intruder on the
LAN does not have). A browser that stopped polling ``LIVE_SECONDS`` before the press no longer
counts (a closed tab must not block the owner).

In memory of the web process (presses come from the button service through the claim store):
a restart forgets the waiters, whose pages re-announce at their next poll. At most
``MAX_WAITERS`` entries.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

LIVE_SECONDS = 10.0  # the claim page polls every 2 s
MAX_WAITERS = 1000


class ButtonWaiters:
    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock  # wall clock: press times come from the claim store
        self._waiting: dict[str, tuple[float, float]] = {}  # key -> (since, last seen)
        self._refused: set[str] = set()

    def announce(self, key: str, fresh: bool = False) -> None:
        """``key`` (one browser session) is waiting; ``fresh`` (the claim page opened) restarts it."""
        now = self.clock()
        if fresh:
            self._refused.discard(key)
        since = now if fresh or key not in self._waiting else self._waiting[key][0]
        if key not in self._waiting and len(self._waiting) >= MAX_WAITERS:
            self._prune(now)
        self._waiting[key] = (since, now)

    def waiting_at(self, ts: float) -> set[str]:
        """The browsers that were waiting when the button was pressed at ``ts``."""
        return {k for k, (since, seen) in self._waiting.items() if since <= ts and seen >= ts - LIVE_SECONDS}

    def refuse(self, keys: Iterable[str]) -> None:
        self._refused.update(keys)

    def refused(self, key: str) -> bool:
        return key in self._refused

    def forget(self, key: str) -> None:
        self._waiting.pop(key, None)
        self._refused.discard(key)

    def _prune(self, now: float) -> None:
        for k in [k for k, (_s, seen) in self._waiting.items() if seen < now - LIVE_SECONDS * 30]:
            self.forget(k)
        while len(self._waiting) >= MAX_WAITERS:
            self.forget(next(iter(self._waiting)))
