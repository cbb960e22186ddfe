"""gk.pools: named native thread pools sized from `gk tune`, the inference thread apart from the
disk-I/O and CPU pools, and errors raised in a pool thread reaching the calling greenlet."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import gevent
import gevent.event
import pytest

from gk import pools
from gk.hw import tune


@pytest.fixture(autouse=True)
def fresh_pools() -> Iterator[None]:
    """Each test gets pools built from the sizes it configures (and leaves none running)."""
    pools.shutdown()
    saved = pools._sizes
    yield
    pools.shutdown()
    pools._sizes = saved


def _tune_json(data_dir: Path, hw: tune.Hardware) -> tune.Profile:
    prof = tune.profile_for(hw)
    tune.apply(prof, hw, data_dir, etc=data_dir / "etc")
    return prof


def test_sizes_come_from_gk_tune_apply(tmp_path: Path) -> None:
    hw = tune.Hardware(ram_mb=3800, cores=4, storage="nvme", storage_free_mb=50_000)
    prof = _tune_json(tmp_path, hw)
    assert (prof.io_threads, prof.cpu_threads) == (8, 4)
    sizes = pools.configure(tmp_path)
    assert sizes == pools.Sizes(io=8, cpu=4, llm=1)
    p = pools.get()
    assert (p.io.maxsize, p.cpu.maxsize, p.llm.maxsize) == (8, 4, 1)


def test_sd_card_gets_fewer_io_threads_and_one_cpu_thread_per_core(tmp_path: Path) -> None:
    hw = tune.Hardware(ram_mb=460, cores=1, storage="sd", storage_free_mb=20_000)
    _tune_json(tmp_path, hw)
    assert pools.configure(tmp_path) == pools.Sizes(io=4, cpu=1, llm=1)
    assert tune.pool_sizes(tune.Hardware(ram_mb=8000, cores=2, storage="ssd", storage_free_mb=1)) == (4, 2)
    assert tune.pool_sizes(tune.Hardware(ram_mb=8000, cores=16, storage="ssd", storage_free_mb=1)) == (8, 16)


def test_tune_json_without_pool_keys_falls_back_to_this_machine(tmp_path: Path) -> None:
    (tmp_path / "tune.json").write_text(json.dumps({"profile": {"tier": "1G"}}))
    io, cpu = tune.pool_sizes(tune.measure(tmp_path))
    assert pools.configure(tmp_path) == pools.Sizes(io=io, cpu=cpu, llm=1)


def test_explicit_sizes_win(tmp_path: Path) -> None:
    pools.configure(sizes=pools.Sizes(io=3, cpu=2))
    p = pools.get()
    assert (p.io.maxsize, p.cpu.maxsize, p.llm.maxsize) == (3, 2, 1)


def test_work_runs_in_a_native_thread_of_its_own_pool() -> None:
    pools.configure(sizes=pools.Sizes(io=2, cpu=2))
    main = threading.get_ident()
    io_thread = pools.run_io(threading.get_ident)
    cpu_thread = pools.run_cpu(threading.get_ident)
    llm_thread = pools.llm_pool().apply(threading.get_ident)
    assert main not in (io_thread, cpu_thread, llm_thread)
    assert len({io_thread, cpu_thread, llm_thread}) == 3


def test_the_inference_thread_is_separate_a_busy_model_never_holds_up_io_or_cpu_work() -> None:
    """The one LLM thread is held (as by a long generation) while disk-I/O and CPU work still run."""
    pools.configure(sizes=pools.Sizes(io=1, cpu=1))
    release = threading.Event()
    started = threading.Event()

    def generate() -> int:
        started.set()
        release.wait(120)
        return threading.get_ident()

    gen = gevent.spawn(pools.llm_pool().apply, generate)
    while not started.is_set():
        gevent.sleep(0.01)
    try:
        io_thread = pools.run_io(threading.get_ident)  # would block forever if they shared the thread
        cpu_thread = pools.run_cpu(threading.get_ident)
        assert not gen.ready()
    finally:
        release.set()
    llm_thread = gen.get(timeout=120)
    assert llm_thread not in (io_thread, cpu_thread)
    assert pools.get().llm.maxsize == 1


def test_an_exception_in_a_pooled_call_reaches_the_caller() -> None:
    def boom(what: str) -> None:
        raise OSError(28, f"No space left on device: {what}")

    with pytest.raises(OSError, match="No space left on device: spool"):
        pools.run_io(boom, "spool")
    with pytest.raises(ValueError, match="bad key"):
        pools.run_cpu(lambda: (_ for _ in ()).throw(ValueError("bad key")))
    assert pools.run_io(lambda a, b=0: a + b, 1, b=2) == 3  # the pool still serves after an error


def test_nested_call_from_a_pool_thread_runs_in_that_thread() -> None:
    """A pooled function that itself calls run_io (a helper shared with the hub side) does not
    deadlock a 1-thread pool or start a second hub's pools: it runs where it is."""
    pools.configure(sizes=pools.Sizes(io=1, cpu=1))

    def outer() -> tuple[int, int]:
        return threading.get_ident(), pools.run_io(threading.get_ident)

    here, inner = pools.run_io(outer)
    assert here == inner
    assert pools.run_cpu(lambda: pools.run_io(threading.get_ident)) != threading.get_ident()


def test_the_hub_keeps_running_greenlets_while_a_pooled_call_blocks() -> None:
    pools.configure(sizes=pools.Sizes(io=1, cpu=1))
    ticks: list[int] = []
    release = threading.Event()

    def ticker() -> None:
        while not release.is_set():
            ticks.append(1)
            gevent.sleep(0.001)

    def blocking() -> str:
        release.wait(120)
        return "done"

    t = gevent.spawn(ticker)
    call = gevent.spawn(pools.run_io, blocking)
    while len(ticks) < 5:  # the hub ran the ticker while the pool thread blocked
        gevent.sleep(0.01)
    assert not call.ready()
    release.set()
    assert call.get(timeout=120) == "done"
    t.join(timeout=120)


def _commit_threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the thread every SQLite COMMIT of gk.store runs in."""
    from gk.store import db as gkdb

    seen: list[int] = []
    real = gkdb.Database._commit

    def commit(self: gkdb.Database) -> None:
        seen.append(threading.get_ident())
        real(self)

    monkeypatch.setattr(gkdb.Database, "_commit", commit)
    return seen


def test_mailbox_index_commits_and_inserts_run_off_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """synchronous=FULL commits wait on the disk in the I/O pool; what was committed is there
    (and durable: the index is reopened from the file). A flag change of one message commits
    on the hub, with synchronous=NORMAL (no fsync: see mailbox/store.py set_flags)."""
    from gk.mail.mailbox import MailboxStore
    from gk.store import db as gkdb

    store = MailboxStore(tmp_path / "mail")
    mb = store.user("ann@example.org")
    cur = tmp_path / "mail" / "ann@example.org" / "Maildir" / "cur"
    for i in range(30):  # never-indexed files, as a first open finds them
        (cur / f"17000000{i:02}.M{i}P1.host:2,S").write_bytes(f"Subject: m{i}\r\n\r\nbody {i}\r\n".encode())
    seen = _commit_threads(monkeypatch)
    mb.sync("INBOX", force=True)
    assert seen and threading.get_ident() not in seen
    levels: list[tuple[int, int]] = []  # (thread, PRAGMA synchronous) of each commit
    real = gkdb.Database._commit

    def commit(self: gkdb.Database) -> None:
        levels.append((threading.get_ident(), int(self.conn.execute("PRAGMA synchronous").fetchone()[0])))
        real(self)

    monkeypatch.setattr(gkdb.Database, "_commit", commit)
    mb.set_flags("INBOX", [3], ["\\Flagged"])
    assert levels == [(threading.get_ident(), 1)]  # on the hub only without fsync (NORMAL = 1)
    store.stop(0)
    again = MailboxStore(tmp_path / "mail").user("ann@example.org")
    assert len(again.uids("INBOX")) == 30
    assert "\\Flagged" in again.info("INBOX", 3).flags and again.info("INBOX", 30).subject == "m29"


def test_queue_commits_run_off_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gk.mail.queue.store import QueueStore

    src = tmp_path / "src.eml"
    src.write_bytes(b"Subject: x\r\n\r\nbody\r\n")
    store = QueueStore(tmp_path)  # (its schema migration commits on the hub, once, at start)
    seen = _commit_threads(monkeypatch)
    name, size = store.write_spool(b"", src)
    msg_id = store.add("a@l.example", ["b@x.example"], name, size, user="a@l.example")
    assert seen and threading.get_ident() not in seen
    store.close()
    assert [r["rcpt"] for r in QueueStore(tmp_path).recipients_of(msg_id)] == ["b@x.example"]


def test_a_failed_commit_reaches_the_caller_and_rolls_back(tmp_path: Path) -> None:
    from gk.store import open_database

    db = open_database(tmp_path / "t.sqlite3", ["CREATE TABLE t (x INTEGER PRIMARY KEY)"])
    db.commit_runner = pools.run_io

    def refuse(self: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(type(db), "_commit", refuse)
        with pytest.raises(sqlite3.OperationalError, match="disk I/O error"), db.transaction() as c:
            c.execute("INSERT INTO t VALUES (1)")
    db.conn.execute("ROLLBACK")
    with db.transaction() as c:
        c.execute("INSERT INTO t VALUES (2)")
    assert [r[0] for r in db.query("SELECT x FROM t")] == [2]


def test_the_inference_thread_counts_as_a_pool_thread() -> None:
    """Work that inference code hands to the I/O pool from its thread runs there at once (no
    second hub and set of pools made in the inference thread)."""
    pools.configure(sizes=pools.Sizes(io=1, cpu=1))
    pools.get()
    before = len(pools._by_hub)

    def in_llm() -> tuple[bool, int, int]:
        return pools.in_pool_thread(), threading.get_ident(), pools.run_io(threading.get_ident)

    marked, here, inner = pools.llm_pool().apply(in_llm)
    assert marked and here == inner and len(pools._by_hub) == before
