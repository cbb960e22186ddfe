"""How long the gevent hub is kept from running ready greenlets: the event-loop lag.

A greenlet asks to sleep ``INTERVAL`` seconds and records how much later than asked it woke:
any code that holds the hub (a parse, an fsync, a SQLite commit, argon2 run on the hub) shows
up as lag for every session in the process. Turned on only for measurement, by the
environment variable ``GK_HUB_LAG_FILE=path``: ``gk serve`` then rewrites that file once a
second with ``{"samples", "p50_ms", "p99_ms", "max_ms"}`` since start (``bench/hub_lag.py``
reads it). Cost when on: one wake-up every 5 ms and a bounded list of samples; nothing when off.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import gevent

INTERVAL = 0.005
MAX_SAMPLES = 2_000_000


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


def _run(path: Path) -> None:
    lags: list[float] = []
    written = time.monotonic()
    while True:
        asked = time.monotonic()
        gevent.sleep(INTERVAL)
        now = time.monotonic()
        if len(lags) < MAX_SAMPLES:
            lags.append(max(0.0, now - asked - INTERVAL))
        if now - written >= 1.0:
            written = now
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(json.dumps(summary(lags)))
            os.replace(tmp, path)


def start_from_environment() -> gevent.Greenlet | None:
    target = os.environ.get("GK_HUB_LAG_FILE")
    return gevent.spawn(_run, Path(target)) if target else None
