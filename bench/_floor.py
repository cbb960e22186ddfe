"""The named peer of every hub-lag figure: an idle gevent process's own loop lag, measured at the same time.

A 5 ms timer in a bare gevent process that does nothing else (the same timer as ``gk.hublag``)
fires late only because of the machine: the scheduler giving its core to other processes,
timer slack, CPU frequency changes. Run beside GK while a bench loads it, it shows how much of
GK's lag is GK's own (its hub held by its work or its GIL handovers) and how much any process
on this machine sees at that moment: on a shared, loaded machine an idle process alone can be
kept off a core for hundreds of ms, and GK's max cannot be read without it.

``with Floor(path) as floor: ...`` starts the process, ``floor.result`` after the block is
``{"samples", "p50_ms", "p99_ms", "max_ms", "seconds"}`` over the block (``seconds``: the
largest lag of each wall-clock second, ``[[unix second, ms], ...]``, as ``gk.hublag`` writes it);
``row(name, lag)`` formats a line; ``excess_max(gk, peer)`` is GK's largest lag beyond the peer's
in the same second.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

IDLE_LAG = """
import json, os, sys, time, gevent
lags, written, seconds = [], time.monotonic(), {}
def summary():
    ordered = sorted(lags)
    n = len(ordered)
    return {"samples": n, "p50_ms": ordered[n // 2] * 1000, "p99_ms": ordered[min(n - 1, int(n * 0.99))] * 1000,
            "max_ms": ordered[-1] * 1000, "seconds": [[k, v * 1000] for k, v in seconds.items()]}
while True:
    a = time.monotonic(); gevent.sleep(0.005); now = time.monotonic(); lags.append(max(0.0, now - a - 0.005))
    sec = int(time.time()); seconds[sec] = max(seconds.get(sec, 0.0), lags[-1])
    if now - written >= 1.0:
        written = now
        with open(sys.argv[1] + ".tmp", "w") as f:
            json.dump(summary(), f)
        os.replace(sys.argv[1] + ".tmp", sys.argv[1])
"""

HEADER = f"{'':34}{'samples':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"


class Floor:
    """An idle reference process measuring its own loop lag while the ``with`` block runs."""

    def __init__(self, path: Path):
        self.path = path
        self.result: dict[str, float] = {}

    def __enter__(self) -> Floor:
        self.path.unlink(missing_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-c", IDLE_LAG, str(self.path)])
        deadline = time.monotonic() + 60
        while not self.path.exists() and time.monotonic() < deadline:  # running (its first second written)
            time.sleep(0.05)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        time.sleep(1.2)  # the file is rewritten once a second
        self.proc.terminate()
        self.proc.wait(timeout=30)
        try:
            self.result = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.result = {"samples": 0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}


def row(name: str, lag: dict[str, float]) -> str:
    return (
        f"{name:34}{int(lag.get('samples', 0)):>9}{lag.get('p50_ms', 0.0):>9.2f}"
        f"{lag.get('p99_ms', 0.0):>9.2f}{lag.get('max_ms', 0.0):>9.1f}"
    )


def excess_max(gk: dict, peer: dict) -> tuple[float, int]:
    """GK's largest lag beyond the peer's own in the same wall-clock second, and how many seconds
    both measured. A stall of GK's own shows in full (the idle peer, on a core of its own, is not
    delayed by it); a stall of the machine's (a core taken by another process) delays the peer too
    in that second and is subtracted."""
    peer_worst = {int(s): ms for s, ms in peer.get("seconds", [])}
    both = [ms - peer_worst[int(s)] for s, ms in gk.get("seconds", []) if int(s) in peer_worst]
    return (max(both) if both else 0.0), len(both)
