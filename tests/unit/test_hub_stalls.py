"""What keeps the gevent hub free: ``gk serve``'s garbage-collection policy (full collections when
the hub is idle, or at the latest every ``max_gap`` seconds), the hub-lag instruments
(``gk.hublag``: collector pauses per generation, the worst lag of each second) and the web UI's
first template compile, which runs in the CPU pool, not on the hub."""

from __future__ import annotations

import gc
import threading
from pathlib import Path

import gevent
from support.wsgiclient import Client, make_web

from gk import hublag, pools, server
from gk.server import GCPolicy


def test_gc_policy_runs_a_full_collection_when_the_hub_was_idle_after_min_gap() -> None:
    policy = GCPolicy(min_gap=10, max_gap=60, idle_share=0.05)
    assert not policy.decide(0.0, 0.0)  # the first tick: startup's own collection counts as the last
    assert not policy.decide(5.0, 0.01)  # idle, but only 5 s since the last full collection
    assert not policy.decide(9.0, 0.02)
    assert policy.decide(11.0, 0.03)  # idle (0.01 s of hub CPU in 2 s) and 11 s since
    assert policy.last_full == 11.0
    assert not policy.decide(12.0, 0.03)  # just collected


def test_gc_policy_waits_while_the_hub_is_busy_but_not_past_max_gap() -> None:
    policy = GCPolicy(min_gap=10, max_gap=60, idle_share=0.05)
    cpu = 0.0
    decisions = []
    for second in range(0, 61):
        decisions.append(policy.decide(float(second), cpu))
        cpu += 0.5  # the hub busy half of every second
    assert decisions[:60] == [False] * 60
    assert decisions[60]  # 60 s since the last full one: collected however busy the hub is
    # a busy tick right after an idle stretch is not idle: the share is over the last tick only
    assert not policy.decide(71.0, cpu + 0.9)
    assert policy.decide(72.0, cpu + 0.9)  # 1 s with no hub CPU, 12 s after the last


def test_gc_loop_owns_full_collections_and_gives_them_back() -> None:
    before = gc.get_threshold()
    fulls: list[int] = []

    class Always(GCPolicy):
        def decide(self, now: float, hub_cpu: float) -> bool:
            fulls.append(gc.get_threshold()[2])
            return True

    loop = gevent.spawn(server._gc_loop, 0.001, Always())
    gevent.sleep(0.05)
    assert fulls, "the loop never ticked"
    assert fulls[0] >= 1_000_000  # Python's automatic full collections are off while it runs
    loop.kill()
    assert gc.get_threshold() == before


def test_gc_pauses_are_timed_per_generation() -> None:
    pauses = hublag.GCPauses().install()
    try:
        gc.collect(2)
        gc.collect(0)
    finally:
        pauses.remove()
    stats = pauses.summary()
    assert stats["2"]["count"] >= 1 and stats["2"]["max_ms"] > 0
    assert stats["0"]["count"] >= 1
    assert pauses not in gc.callbacks


def test_per_second_keeps_each_seconds_worst_and_forgets_the_oldest() -> None:
    worst = hublag.PerSecond(keep=2)
    worst.add(100.2, 0.004)
    worst.add(100.9, 0.050)
    worst.add(100.95, 0.001)
    worst.add(101.1, 0.002)
    assert worst.as_list() == [[100, 50.0], [101, 2.0]]
    worst.add(102.0, 0.003)
    assert [s for s, _ in worst.as_list()] == [101, 102]


def test_a_pages_first_compile_runs_in_the_cpu_pool_with_its_layouts(tmp_path: Path) -> None:
    web = make_web(tmp_path)
    threads: list[tuple[str, bool]] = []
    compile_ = web._compile

    def recording(name: str) -> set[str]:
        threads.append((name, pools.in_pool_thread()))
        return compile_(name)

    web._compile = recording  # type: ignore[method-assign]
    assert Client(web).get("/wizard/claim").status == 200  # the wizard's first step: wizard/claim.html
    assert threads and all(in_pool for _, in_pool in threads), threads
    assert {"wizard/claim.html", "wizard/layout.html", "base.html"} <= web._compiled
    threads.clear()
    assert Client(web).get("/wizard/claim").status == 200
    assert threads == []  # compiled once
    assert threading.current_thread() is threading.main_thread()


def test_web_session_writes_commit_in_the_disk_pool(tmp_path: Path) -> None:
    """A client without cookies makes a session at every page: its commit (an fdatasync of the
    WAL) runs in the disk-I/O pool, not on the hub; the row is there once ``create`` returns."""
    from gk.web.sessions import SessionStore

    store = SessionStore(tmp_path / "web.sqlite3", days=1)
    where: list[bool] = []
    commit = store.db._commit

    def recording() -> None:
        where.append(pools.in_pool_thread())
        commit()

    store.db._commit = recording  # type: ignore[method-assign]
    session = store.create()
    store.save_data(session)
    store.delete(session.sid)
    # create, save, delete: three commits (and, one create in 50, the expired sessions' purge)
    assert len(where) in (3, 4) and all(where), where
    again = store.create("ann@example.org", {"k": 1})
    fresh = SessionStore(tmp_path / "web.sqlite3", days=1)  # another connection sees it committed
    got = fresh.get(again.sid)
    assert got is not None and got.address == "ann@example.org" and got.data == {"k": 1}
