"""Named native thread pools: blocking work goes here, never on the gevent hub.

Three pools, so that one kind of work cannot queue behind another:

- ``io`` — disk I/O: Maildir file writes, fsyncs and renames, SQLite commits with
  ``synchronous=FULL`` (the delivery commit SMTP's ``250`` waits on, the queue's commits),
  spool writes. Sized from ``gk tune``: a thread waiting on an ext4 journal commit holds no CPU,
  so a few more threads than cores keep the disk busy; an SD card gets fewer (random writes
  queue in the card, not here).
- ``cpu`` — parsing and crypto: MIME parsing, DKIM signing and verification, SPF/DMARC checks,
  argon2id. One thread per core; argon2 is further bounded by memory (each argon2id hash holds
  ``argon2_memory_kib``, 19 MiB by default: ``accounts/passwords.parallel_hashes``).
- ``llm`` — exactly one thread for model inference (``ai/runtime.py``), so a generation that
  takes seconds can never delay an SMTP ``250`` or an IMAP login.

gevent's shared default threadpool (``get_hub().threadpool``, 10 threads) is not used by GK
code. A gevent ``ThreadPool`` belongs to the hub that created it, so the pools are kept per hub
(the main thread's hub in ``gk serve``; a test's thread gets its own).

``run_io(fn, *args)`` / ``run_cpu(fn, *args)`` block the calling greenlet (never the hub) until
``fn`` returns in a pool thread, and re-raise its exception in the caller. Called from a pool
thread itself (nested work) they run ``fn`` at once in that thread. Called with no hub running
they still work (gevent creates one).

Sizes: ``configure(data_dir)`` reads ``DATA_DIR/tune.json`` (written by ``gk tune --apply``);
without it they come from this machine's cores and storage (``hw/tune.pool_sizes``).
Cost: the threads start on first use; an idle thread is ~8 MiB of virtual (not resident) stack.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar

import gevent
import gevent.event
import gevent.threadpool

from gk.hw import tune
from gk.locks import SharedLock

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class Sizes:
    io: int
    cpu: int
    llm: int = 1  # never more: one model, one context, serialised


class _Pool(gevent.threadpool.ThreadPool):  # type: ignore[misc]
    """A gevent ThreadPool whose threads know they are pool threads (``in_pool_thread``)."""

    def spawn(self, func: Callable[..., T], *args: object, **kwargs: object) -> gevent.event.AsyncResult:
        return super().spawn(_marked, func, *args, **kwargs)


class Pools:
    """The named pools of one hub."""

    def __init__(self, sizes: Sizes):
        self.sizes = sizes
        self.io = _Pool(sizes.io)
        self.cpu = _Pool(sizes.cpu)
        self.llm = _Pool(sizes.llm)

    def kill(self) -> None:
        for pool in (self.io, self.cpu, self.llm):
            pool.kill()


_lock = SharedLock()  # the hub and the pools' own threads (gk.locks)
_local = threading.local()  # .in_pool: this thread is one of the pools' workers
_sizes: Sizes | None = None
_by_hub: weakref.WeakKeyDictionary[gevent.hub.Hub, Pools] = weakref.WeakKeyDictionary()


def sizes_from_tune(data_dir: Path | None) -> Sizes:
    """The pool sizes from ``tune.json`` in ``data_dir`` when present, else from this machine."""
    if data_dir is not None:
        try:
            prof = json.loads((data_dir / "tune.json").read_text())["profile"]
            return Sizes(io=max(1, int(prof["io_threads"])), cpu=max(1, int(prof["cpu_threads"])))
        except (OSError, ValueError, KeyError, TypeError):
            pass
    hw = tune.measure(data_dir if data_dir is not None else Path("/"))
    io, cpu = tune.pool_sizes(hw)
    return Sizes(io=io, cpu=cpu)


def configure(data_dir: Path | None = None, sizes: Sizes | None = None) -> Sizes:
    """Fix the sizes used by pools created from now on (``gk serve`` calls it at start)."""
    global _sizes
    with _lock:
        _sizes = sizes or sizes_from_tune(data_dir)
        return _sizes


def current_sizes() -> Sizes:
    global _sizes
    with _lock:
        if _sizes is None:
            _sizes = sizes_from_tune(None)
        return _sizes


def get() -> Pools:
    """This hub's pools, created on first use."""
    hub = gevent.get_hub()
    pools = _by_hub.get(hub)
    if pools is None:
        pools = _by_hub[hub] = Pools(current_sizes())
    return pools


def shutdown() -> None:
    """Stop this hub's pools (their threads end when their current task does)."""
    pools = _by_hub.pop(gevent.get_hub(), None)
    if pools is not None:
        pools.kill()


def _marked(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    _local.in_pool = True
    return fn(*args, **kwargs)


def in_pool_thread() -> bool:
    return bool(getattr(_local, "in_pool", False))


def _run(
    pool: gevent.threadpool.ThreadPool, fn: Callable[..., T], args: tuple[object, ...], kwargs: dict[str, object]
) -> T:
    result: T = pool.apply(fn, args, kwargs)
    return result


def run_io(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args)`` in the disk-I/O pool; the calling greenlet waits, the hub keeps serving."""
    if in_pool_thread():
        return fn(*args, **kwargs)
    return _run(get().io, fn, args, kwargs)


def run_cpu(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args)`` in the CPU pool (parsing, crypto, argon2)."""
    if in_pool_thread():
        return fn(*args, **kwargs)
    return _run(get().cpu, fn, args, kwargs)


def llm_pool() -> gevent.threadpool.ThreadPool:
    """The one inference thread's pool (``ai/runtime.py``)."""
    return get().llm
