"""gk.locks: locks shared by greenlets on the hub and pool threads.

The first test is the pattern that hung a DAV request of vdirsyncer for good: a greenlet holds
the lock while it waits for a pool task (a transaction's COMMIT in the I/O pool), and pool
threads take the same lock for their own queries. A monkey-patched ``threading.RLock`` lost the
wake-up of a waiting pool thread there within the first round (the lock stayed free, the thread
slept on); these must finish every round with the holders never overlapping.
"""

from __future__ import annotations

import threading
import time

import gevent
import gevent.threadpool
import pytest

from gk.locks import SharedLock, SharedRLock


def test_greenlets_holding_across_a_pool_task_and_pool_threads_never_overlap_and_all_finish() -> None:
    lock = SharedRLock()
    pool = gevent.threadpool.ThreadPool(4)
    inside: list[str] = []
    overlaps: list[tuple[str, ...]] = []
    done = {"thread": 0, "hub": 0}

    def enter(who: str) -> None:
        if inside:
            overlaps.append((*inside, who))
        inside.append(who)

    def leave() -> None:
        inside.pop()

    def in_thread(n: int) -> None:
        for _ in range(n):
            with lock:
                enter("thread")
                with lock:  # re-entrant in a pool thread too
                    time.sleep(0.0001)
                leave()
                done["thread"] += 1
            time.sleep(0.0001)

    def on_hub(n: int) -> None:
        for _ in range(n):
            with lock:
                enter("hub")
                pool.apply(time.sleep, (0.0003,))  # the COMMIT in the pool, the lock still held
                leave()
                done["hub"] += 1

    try:
        for _ in range(20):
            jobs = [gevent.spawn(pool.apply, in_thread, (10,)) for _ in range(2)]
            jobs += [gevent.spawn(on_hub, 10) for _ in range(2)]
            finished = gevent.joinall(jobs, timeout=30, raise_error=True)
            assert len(finished) == len(jobs), f"stuck: lock {'held' if lock._lock.locked() else 'free'}"
    finally:
        pool.kill()
    assert not overlaps
    assert done == {"thread": 400, "hub": 400}
    assert not lock._lock.locked()


def test_a_greenlet_waiting_for_a_pool_thread_lets_the_hub_run() -> None:
    lock = SharedLock()
    pool = gevent.threadpool.ThreadPool(1)
    taken, ticks = threading.Event(), [0]

    def hold() -> None:
        with lock:
            taken.set()
            time.sleep(0.3)

    def ticker() -> None:
        while True:
            ticks[0] += 1
            gevent.sleep(0.01)

    try:
        holder = pool.spawn(hold)
        while not taken.is_set():
            gevent.sleep(0.001)
        tick = gevent.spawn(ticker)
        assert lock.acquire()  # waits on the hub, not in the hub
        lock.release()
        holder.get()
        tick.kill()
    finally:
        pool.kill()
    assert ticks[0] >= 3  # 30 in an idle run; a hub blocked on the lock would count 1


def test_any_thread_may_release_a_shared_lock() -> None:
    """The DAV read/write lock's room is taken by the first reader and given back by the last,
    which may be another thread."""
    lock = SharedLock()
    assert lock.acquire()
    t = threading.Thread(target=lock.release)
    t.start()
    t.join()
    assert not lock.locked()
    assert lock.acquire(blocking=False)
    lock.release()


def test_timeouts_and_non_blocking_acquires_give_up() -> None:
    lock = SharedLock()
    pool = gevent.threadpool.ThreadPool(1)
    try:
        assert lock.acquire()
        assert not lock.acquire(blocking=False)
        assert not lock.acquire(timeout=0.05)  # on the hub
        assert pool.apply(lock.acquire, (True, 0.05)) is False  # in a pool thread
        # a release on the hub hands the lock to a greenlet that waits on the hub
        waiter = gevent.spawn(lock.acquire)
        gevent.sleep(0.01)
        assert not waiter.ready()
        lock.release()
        assert waiter.get(timeout=5) is True
        lock.release()
    finally:
        pool.kill()


def test_an_rlock_is_its_holders_only() -> None:
    lock = SharedRLock()
    with lock:
        with lock:
            assert lock.held()
        assert lock.held()
        other = gevent.spawn(lock.acquire, False)
        assert other.get() is False  # another greenlet does not pass
    assert not lock.held()
    with pytest.raises(RuntimeError):
        lock.release()
