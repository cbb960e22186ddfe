"""``gk serve``: the one gevent process that runs every listener.

Starts the features of ``gk.features.FEATURES`` in order, each ``start(ctx) -> Service | None``
(None: turned off in gk.toml), and registers what each returns in ``ctx.services``. A Service
has a ``name`` and ``stop(grace: float)`` that closes its listeners and waits up to ``grace``
seconds for its sessions to finish. SIGTERM/SIGINT stop every registered service in reverse
order (the mailbox store last), so no session is cut in the middle of a write.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

import gevent
import gevent.event

from gk import __version__
from gk.config import Config
from gk.context import AppContext, build_context
from gk.features import FEATURES

log = logging.getLogger("gk.server")


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiosmtpd 1.4.6 warns on every AUTH (DESIGN.md); its session log is ours to write.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    # the format above names no caller, thread or process: each record skips looking them up
    # (a stack walk and two calls: about half the cost of the one log line per SMTP delivery,
    # 7.7 % -> 3.9 % of the hub under bench smtp_inbound, py-spy)
    logging._srcfile = None  # type: ignore[attr-defined]  # documented: "Optimization" in the logging HOWTO
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) about readiness and watchdog pings; no-op elsewhere."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(addr)
            s.sendall(message.encode())
    except OSError:
        pass


def pin_malloc_thresholds() -> None:
    """Keep glibc from holding on to big freed blocks (measured: +19.5 MB RSS for good).

    glibc raises its mmap threshold to the size of any mmapped block that is freed, so the
    second argon2id hash (19 MiB) comes from the heap and stays in RSS after it is freed.
    Pinning the thresholds (which turns that adjustment off) sends every block over 128 KiB
    to mmap, returned to the kernel on free; two arenas keep the thread pool's blocks from
    spreading over one arena per thread. No-op without glibc.
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8
    libc.mallopt(m_mmap_threshold, 128 * 1024)
    libc.mallopt(m_trim_threshold, 256 * 1024)
    libc.mallopt(m_arena_max, 2)


def release_free_memory() -> None:
    """Hand the heap's free pages back to the kernel (glibc ``malloc_trim``), once startup is done.

    Startup (config, migrations, TLS contexts, imports) frees much of what it allocated, but
    the freed chunks sit inside the heap below live ones, where the trim threshold never
    reaches them. ``malloc_trim(0)`` releases every free page of every arena. No-op without
    glibc.
    """
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


OPEN_FILES_WANTED = 65536


def raise_open_files_limit(wanted: int = OPEN_FILES_WANTED) -> tuple[int, int]:
    """Raise this process's soft limit of open files towards its hard limit, at most ``wanted``;
    returns (before, after). Every listener's connections, Maildir files and SQLite databases
    share the one process's descriptors: systemd gives a service 1,024 (soft) unless told
    otherwise, fewer than the connection limits add up to (HTTP 500, IMAP 500, IRC 500, SMTP
    250), so a flood of one protocol could leave mail delivery unable to open a file (EMFILE).
    The hard limit (524,288 under systemd) is the kernel's permission to go that high; gevent's
    libev loop uses epoll, so a descriptor number above 1,024 costs nothing. Go programs (Mox)
    get the same raise from their runtime at start."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("could not raise the open files limit from %d to %d: %s", soft, target, exc)
        return soft, soft
    return soft, target


def set_switch_interval(ms: float) -> None:
    """How long a thread that holds the GIL keeps one that wants it waiting (``[server]
    switch_interval_ms``).

    The hub shares the GIL with the pool threads (Radicale's request handling, the Python part
    of each generated token, MIME parsing): when the hub wakes to serve a socket while such a
    thread runs Python, it waits until that thread lets the GIL go, at the latest after this
    interval; each socket call the hub makes releases the GIL and can start that wait again.
    Python's 5 ms is the default: 1 and 0.5 ms showed no gain beyond the noise of a loaded
    2-core machine in bench/hub_lag, bench/llm and bench/dav (docs/performance.md); the setting
    is there to be measured on a quiet board.
    """
    sys.setswitchinterval(ms / 1000)


class GCPolicy:
    """When ``gk serve`` runs a full (generation 2) garbage collection: when the hub is idle.

    A full collection walks every tracked object that is not frozen (``gc.freeze()`` after
    startup takes the modules, config and templates out of it): sessions, caches, TLS objects.
    It is needed (TLS connection churn leaves reference cycles that only a full pass frees:
    25 → 111 MB RSS over 3,000 connections without it, DESIGN.md), but it holds the hub for its
    whole length, and at once a second under load it was one of the hub's longest stalls
    (``bench hub_lag``'s gc figures). So Python's own full collections are turned off
    (``threshold2`` raised; its young collections keep running on allocation counts) and the
    loop runs one once a tick:

    - when the hub used at most ``idle_share`` of a CPU since the last tick (no session is
      waiting behind the pause) and at least ``min_gap`` seconds went by since the last one;
    - or, however busy the hub is, when ``max_gap`` seconds went by (RSS stays bounded under a
      load that never stops).

    ``decide(now, hub_cpu)`` is the whole policy (no clock or gc call inside: unit-tested);
    ``now`` and ``hub_cpu`` are the monotonic clock and the hub thread's CPU seconds.
    """

    def __init__(self, min_gap: float = 10.0, max_gap: float = 60.0, idle_share: float = 0.05):
        self.min_gap, self.max_gap, self.idle_share = min_gap, max_gap, idle_share
        self.last_full: float | None = None
        self._last: tuple[float, float] | None = None

    def decide(self, now: float, hub_cpu: float) -> bool:
        """True: run a full collection now (and count it as done)."""
        last, self._last = self._last, (now, hub_cpu)
        if self.last_full is None:
            self.last_full = now  # startup ended with a full collection and gc.freeze()
        since = now - self.last_full
        idle = last is not None and now > last[0] and (hub_cpu - last[1]) <= self.idle_share * (now - last[0])
        if since >= self.max_gap or (idle and since >= self.min_gap):
            self.last_full = now
            return True
        return False


# Python's automatic full collections (``gc.set_threshold``'s third value) are left to the
# policy above: so many young-generation-1 collections before one that it never comes first.
_NO_AUTO_FULL = 1_000_000


def _gc_loop(interval: float, policy: GCPolicy | None = None) -> None:
    policy = policy or GCPolicy(min_gap=max(interval, 10.0), max_gap=max(interval, 60.0))
    young, middle, old = gc.get_threshold()
    gc.set_threshold(young, middle, _NO_AUTO_FULL)
    try:
        while True:
            gevent.sleep(interval)
            if policy.decide(time.monotonic(), time.thread_time()):
                gc.collect()
    finally:
        gc.set_threshold(young, middle, old)


def _watchdog_loop() -> None:
    usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
    if not usec:
        return
    while True:
        gevent.sleep(usec / 2_000_000)
        sd_notify("WATCHDOG=1")


def serve(config: Config, data_dir: Path) -> int:
    import asyncio

    import asyncio_gevent

    asyncio.set_event_loop_policy(asyncio_gevent.EventLoopPolicy())
    pin_malloc_thresholds()
    set_switch_interval(config.server.switch_interval_ms)
    before, after = raise_open_files_limit()
    if after != before:
        log.info("open files limit raised from %d to %d", before, after)
    from gk.store import db

    db.set_default_cache(config.server.sqlite_cache_kib)
    from gk import pools
    from gk.security import keymaker

    keymaker.use_child_process()  # keys and certificates: cryptography stays out of this process
    sizes = pools.configure(data_dir)  # tune.json's pool sizes, else this machine's
    log.info("thread pools: disk I/O %d, CPU %d, inference 1", sizes.io, sizes.cpu)
    from gk.store.files import hold_serve_lock

    if hold_serve_lock(data_dir) is None:  # the descriptor stays open (and locked) until the process ends
        log.error("another gk serve is running on %s (it holds %s/serve.lock): stop it first", data_dir, data_dir)
        return 1
    started = time.monotonic()
    log.info("GK %s starting, data dir %s", __version__, data_dir.resolve())
    ctx: AppContext = build_context(config, data_dir)

    stopping = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stopping.set)
    gevent.signal_handler(signal.SIGINT, stopping.set)
    try:
        for feature in FEATURES:
            svc = feature.start(ctx) if feature.start is not None else None
            if svc is not None:  # a feature turned off in gk.toml starts nothing
                ctx.services.register(feature.name, svc)
    except Exception:
        log.exception("startup failed; stopping")
        ctx.services.stop_all(0, log)
        return 1
    helpers = []
    if config.server.gc_interval > 0:
        helpers.append(gevent.spawn(_gc_loop, config.server.gc_interval))
    helpers.append(gevent.spawn(_watchdog_loop))
    from gk import hublag

    if lag := hublag.start_from_environment():
        helpers.append(lag)
    # Objects alive after startup (modules, config, templates) live as long as the process:
    # freezing them keeps the periodic gc.collect() from rescanning them every second.
    gc.collect()
    gc.freeze()
    db.release_caches()  # startup's pages out of the SQLite caches, before the heap is trimmed
    release_free_memory()
    running = ", ".join(name for name, _ in ctx.services.running())
    log.info("ready in %.2fs (features: %s)", time.monotonic() - started, running)
    sd_notify("READY=1")
    stopping.wait()
    sd_notify("STOPPING=1")
    log.info("stopping: draining sessions (up to %.0fs)", config.server.shutdown_grace)
    ctx.services.stop_all(config.server.shutdown_grace, log)
    gevent.killall(helpers)
    log.info("stopped")
    return 0
