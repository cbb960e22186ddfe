"""How long the gevent hub is kept from running ready greenlets: the event-loop lag.

A greenlet asks to sleep ``INTERVAL`` seconds and records how much later than asked it woke:
any code that holds the hub (a parse, an fsync, a SQLite commit, argon2 run on the hub) shows
up as lag for every session in the process. Turned on only for measurement, by the
environment variable ``GK_HUB_LAG_FILE=path``: ``gk serve`` then rewrites that file once a
second with ``{"samples", "p50_ms", "p99_ms", "max_ms"}`` since start, ``"seconds"``: the
largest lag of each wall-clock second (``[[unix second, ms], ...]``, the last hour, so a bench
can set GK's worst seconds beside a peer process's same seconds), and ``"gc"``: the cyclic
garbage collector's pauses per generation (``{"0": {"count", "total_ms", "max_ms"}, ...}``,
timed with ``gc.callbacks``: every collection, the automatic ones and ``gk serve``'s own), read
by ``bench/hub_lag.py``. Cost when on: one wake-up every 5 ms, a bounded list of samples and
two clock reads per collection; nothing when off.

``GK_HUB_STALL_MS=n`` (with ``GK_HUB_LAG_FILE``) adds a native watcher thread that, when the
sampler has not ticked for ``n`` ms, takes the stack of the hub's thread and the innermost frames
of every other thread (``sys._current_frames()``), at most ``MAX_STALLS`` times, into the file's
``"stalls"``: what the hub was running, or which call it was waiting in, during a stall.
"""

from __future__ import annotations

import collections
import gc
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import gevent
import gevent.monkey

INTERVAL = 0.005
MAX_SAMPLES = 2_000_000
MAX_SECONDS = 3600
MAX_STALLS = 30


def summary(lags: list[float]) -> dict[str, float]:
    if not lags:
        return {"samples": 0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
    ordered = sorted(lags)
    return {
        "samples": len(ordered),
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        "max_ms": ordered[-1] * 1000,
    }


class GCPauses:
    """The collector's pauses per generation, from ``gc.callbacks`` (``install``/``remove``)."""

    def __init__(self) -> None:
        self.stats: dict[int, list[float]] = {g: [0, 0.0, 0.0] for g in range(3)}  # count, total s, max s
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        entry = self.stats[info.get("generation", 2)]
        entry[0] += 1
        entry[1] += took
        entry[2] = max(entry[2], took)

    def install(self) -> GCPauses:
        gc.callbacks.append(self)
        return self

    def remove(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            str(g): {"count": int(n), "total_ms": total * 1000, "max_ms": longest * 1000}
            for g, (n, total, longest) in self.stats.items()
        }


class PerSecond:
    """The largest value seen in each wall-clock second, the last ``MAX_SECONDS`` of them."""

    def __init__(self, keep: int = MAX_SECONDS) -> None:
        self.worst: collections.OrderedDict[int, float] = collections.OrderedDict()
        self.keep = keep

    def add(self, wall: float, value: float) -> None:
        second = math.floor(wall)
        if value > self.worst.get(second, -1.0):
            self.worst[second] = value
        while len(self.worst) > self.keep:
            self.worst.popitem(last=False)

    def as_list(self) -> list[list[float]]:
        return [[second, value * 1000] for second, value in self.worst.items()]


class StallWatcher:
    """A native thread that records the stacks when the hub's sampler is late by ``threshold`` s."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.beat = time.monotonic()
        self.hub_thread = gevent.monkey.get_original("_thread", "get_ident")()  # the OS thread's, not a greenlet's
        self.stalls: list[dict[str, Any]] = []
        start = gevent.monkey.get_original("_thread", "start_new_thread")
        start(self._watch, ())

    def _watch(self) -> None:
        sleep = gevent.monkey.get_original("time", "sleep")
        reported = 0.0
        while len(self.stalls) < MAX_STALLS:
            sleep(self.threshold / 4)
            beat = self.beat
            late = time.monotonic() - beat
            if late < self.threshold or beat == reported:
                continue
            reported = beat
            frames = sys._current_frames()
            me = gevent.monkey.get_original("_thread", "get_ident")()
            hub = frames.get(self.hub_thread)
            self.stalls.append(
                {
                    "at": time.time(),
                    "late_ms": late * 1000,
                    "hub": traceback.format_stack(hub)[-40:] if hub is not None else [],
                    "threads": {
                        str(tid): traceback.format_stack(frame)[-3:]
                        for tid, frame in frames.items()
                        if tid not in (me, self.hub_thread)
                    },
                }
            )


def _run(path: Path) -> None:
    lags: list[float] = []
    seconds = PerSecond()
    pauses = GCPauses().install()
    stall_ms = float(os.environ.get("GK_HUB_STALL_MS", "0") or 0)
    watcher = StallWatcher(stall_ms / 1000) if stall_ms > 0 else None
    written = time.monotonic()
    try:
        while True:
            asked = time.monotonic()
            gevent.sleep(INTERVAL)
            now = time.monotonic()
            if watcher is not None:
                watcher.beat = now
            lag = max(0.0, now - asked - INTERVAL)
            if len(lags) < MAX_SAMPLES:
                lags.append(lag)
            seconds.add(time.time(), lag)
            if now - written >= 1.0:
                written = now
                tmp = path.with_name(path.name + ".tmp")
                out: dict[str, Any] = {**summary(lags), "seconds": seconds.as_list(), "gc": pauses.summary()}
                if watcher is not None:
                    out["stalls"] = watcher.stalls
                tmp.write_text(json.dumps(out))
                os.replace(tmp, path)
    finally:
        pauses.remove()


def start_from_environment() -> gevent.Greenlet | None:
    target = os.environ.get("GK_HUB_LAG_FILE")
    return gevent.spawn(_run, Path(target)) if target else None
