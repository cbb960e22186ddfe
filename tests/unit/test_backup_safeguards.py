"""What keeps a backup from hurting the box or lying about itself: a run refused before it starts
when its target has no room (and a disk that fills mid-write leaves no partial archive and the
older ones kept), a scheduled slot served once whatever the wall clock does, and a restore
refused before anything is replaced when a database's schema is newer than this GK's."""

from __future__ import annotations

import ast
import datetime as dt
import errno
import os
import sqlite3
import zoneinfo
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gk.backup import archive, schedule
from gk.config import BackupConfig

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
MIB = 1024 * 1024


def data_dir(tmp_path: Path, mail_bytes: int = 300_000) -> Path:
    data = tmp_path / "data"
    cur = data / "mail" / "a@example.test" / "Maildir" / "cur"
    cur.mkdir(parents=True)
    (cur.parent / "new").mkdir()
    (cur.parent / "tmp").mkdir()
    for i in range(30):
        (cur / f"{i}.box:2,S").write_bytes(os.urandom(mail_bytes // 30))
    (data / "gk.toml").write_text("[server]\n")
    db = sqlite3.connect(data / "accounts.sqlite3")
    db.execute("CREATE TABLE t (x BLOB)")
    db.execute("INSERT INTO t VALUES (?)", (os.urandom(100_000),))
    db.commit()
    db.close()
    return data


def fake_statvfs(free: int) -> Any:
    def statvfs(path: object) -> os.statvfs_result:
        return os.statvfs_result((4096, 1, 10**12, free, free, 10**5, 10**5, 10**5, 0, 255))  # f_frsize 1: bytes

    return statvfs


# -- 1. free space ---------------------------------------------------------------------------------


def test_the_estimate_covers_the_archive_it_would_write(tmp_path: Path) -> None:
    data = data_dir(tmp_path)
    est = archive.Estimate(data)
    while est.step():
        pass
    made = archive.create(data, tmp_path / "out", "box.test.example")
    size = made.stat().st_size
    assert size <= est.archive_size() < size * 1.5 + 64 * 1024
    assert est.needed() >= est.archive_size() * 1.05 + archive.SPACE_SLACK


def test_a_backup_is_refused_before_it_starts_when_the_target_is_too_small(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = data_dir(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(os, "statvfs", fake_statvfs(20 * MIB))
    with pytest.raises(archive.NoSpace) as exc:
        archive.create(data, out, "box.test.example")
    msg = str(exc.value)
    assert str(out) in msg and "not enough free space" in msg and "20 MiB are free" in msg
    assert exc.value.needed > 64 * MIB and exc.value.free == 20 * MIB
    assert f"about {exc.value.needed / MIB:.0f} MiB" in msg
    assert list(out.iterdir()) == []  # nothing written, not even a scratch file
    monkeypatch.setattr(os, "statvfs", fake_statvfs(exc.value.needed))
    assert archive.create(data, out, "box.test.example").is_file()  # just enough: it runs


def test_a_disk_that_fills_mid_write_leaves_no_partial_archive_and_keeps_the_older_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = data_dir(tmp_path)
    out = tmp_path / "out"
    older = [archive.create(data, out, "box.test.example"), archive.create(data, out, "box.test.example")]
    real_step = archive._write_step
    calls = []

    def full_after_a_few(chunks: Any, f: Any) -> bool:
        calls.append(1)
        if len(calls) > 1:  # the first ~256 KiB went in
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_step(chunks, f)

    monkeypatch.setattr(archive, "_write_step", full_after_a_few)
    with pytest.raises(archive.NoSpace) as exc:
        archive.create(data, out, "box.test.example", keep=1)
    msg = str(exc.value)
    assert str(out) in msg and "disk filled up" in msg and "2 older archive(s) there are kept" in msg
    assert sorted(p for p, _ in archive.archives(out)) == sorted(older)  # keep=1 did not prune
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in older)  # no partial, no scratch


def test_a_run_refused_for_space_is_recorded_and_shown_on_the_backup_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support.wsgiclient import ADMIN, ADMIN_PW, set_up_web, signed_in

    from gk.backup.service import BackupService

    web = set_up_web(tmp_path / "box")
    monkeypatch.setattr(os, "statvfs", fake_statvfs(10 * MIB))
    svc = BackupService(web.ctx)
    try:
        assert svc.run_now() is None
    finally:
        svc.stop(1.0)
    st = schedule.read_status(web.data_dir)
    assert not st.ok and "not enough free space" in st.detail
    assert st.space_free == 10 * MIB and st.space_needed > 64 * MIB
    assert any(e["kind"] == "backup_failed" for e in web.ctx.accounts.recent_events(5))
    assert not archive.archives(web.data_dir / "backup")
    page = signed_in(web, ADMIN, ADMIN_PW).get("/admin/backup").text
    assert 'id="no-space"' in page and "10 MB free" in page and str(web.data_dir / "backup") in page


# -- 2. one run per scheduled slot ------------------------------------------------------------------


def local(slot: str) -> float:
    """The UTC timestamp of a slot on the wall clock of Paris."""
    return dt.datetime.strptime(slot, "%Y-%m-%dT%H:%M").replace(tzinfo=PARIS).timestamp()


def ts(*args: int) -> float:
    return dt.datetime(*args, tzinfo=PARIS).timestamp()  # type: ignore[misc]


class Clock:
    """The wall clock of the service; each wait moves it on by the time waited."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.now += timeout
        return False


def service(data: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch, ran: list[tuple[str, float]]) -> Any:
    from gk.backup.service import BackupService

    monkeypatch.setattr(schedule, "zone_of", lambda _: PARIS)
    ctx = SimpleNamespace(data_dir=data, config=SimpleNamespace(backup=BackupConfig(schedule="daily", time="03:30")))
    svc = BackupService(ctx)  # type: ignore[arg-type]
    svc.clock = clock
    svc._wake = SimpleNamespace(clear=lambda: None, wait=clock.wait)  # type: ignore[assignment]

    def run_now(slot: str = "") -> None:  # what _run does first, then the archive
        schedule.claim_slot(data, slot)
        ran.append((slot, clock.now))

    svc.run_now = run_now  # type: ignore[method-assign]
    return svc


def next_run(svc: Any) -> str | None:
    slot: str | None = svc._wait_for_next()
    if slot is not None:
        svc.run_now(slot)
    return slot


def test_next_slot_skips_the_slot_served_already() -> None:
    cfg = BackupConfig(schedule="daily", time="03:30")
    assert schedule.next_slot(ts(2026, 6, 10, 3, 0), PARIS, cfg) == (ts(2026, 6, 10, 3, 30), "2026-06-10T03:30")
    assert schedule.next_slot(ts(2026, 6, 10, 3, 0), PARIS, cfg, "2026-06-10T03:30") == (
        ts(2026, 6, 11, 3, 30),
        "2026-06-11T03:30",
    )
    assert schedule.next_slot(ts(2026, 6, 10, 3, 0), PARIS, cfg, "2030-01-01T03:30")[1] == "2026-06-10T03:30"  # type: ignore[index]


def test_a_clock_stepped_back_after_a_run_does_not_run_the_same_slot_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    clock = Clock(ts(2026, 6, 10, 3, 0))
    ran: list[tuple[str, float]] = []
    svc = service(data, clock, monkeypatch, ran)
    assert next_run(svc) == "2026-06-10T03:30" and ran[-1][1] >= ts(2026, 6, 10, 3, 30)
    assert schedule.read_status(data).slot == "2026-06-10T03:30"  # kept on disk
    clock.now = ts(2026, 6, 10, 2, 50)  # NTP steps the clock back 40 minutes
    assert next_run(svc) == "2026-06-11T03:30" and ran[-1][1] >= ts(2026, 6, 11, 3, 30)
    # and a restarted server (a new service, the same status file) does not either
    clock.now = ts(2026, 6, 11, 3, 0)
    assert next_run(service(data, clock, monkeypatch, ran)) == "2026-06-12T03:30"
    assert [slot for slot, _ in ran] == ["2026-06-10T03:30", "2026-06-11T03:30", "2026-06-12T03:30"]


def test_a_clock_stepped_back_while_waiting_recomputes_the_next_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    clock = Clock(ts(2026, 6, 10, 4, 0))  # after today's slot: waiting for tomorrow's
    ran: list[tuple[str, float]] = []
    svc = service(data, clock, monkeypatch, ran)
    schedule.claim_slot(data, "2026-06-10T03:30")  # served before the step
    real_wait = clock.wait

    def stepped_back(timeout: float | None = None) -> bool:
        real_wait(timeout)
        if clock.now > ts(2026, 6, 10, 5, 0):
            clock.now = ts(2026, 6, 9, 12, 0)  # a day back: the 10th's slot is due next, and served
            svc._wake.wait = real_wait
        return False

    svc._wake.wait = stepped_back
    slots = [svc._wait_for_next() for _ in range(2)]
    assert slots == [None, "2026-06-11T03:30"] and not ran


def test_a_clock_stepped_far_forward_runs_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    data.mkdir()
    clock = Clock(ts(2026, 6, 10, 3, 0))
    ran: list[tuple[str, float]] = []
    svc = service(data, clock, monkeypatch, ran)
    real_wait = clock.wait

    def jumped(timeout: float | None = None) -> bool:
        clock.now = ts(2026, 6, 15, 12, 0)  # five days forward while waiting for 03:30
        svc._wake.wait = real_wait
        return False

    svc._wake.wait = jumped
    assert next_run(svc) is None and not ran  # missed by more than an hour: skipped, not caught up
    assert next_run(svc) == "2026-06-16T03:30"
    clock.now = ts(2026, 6, 10, 3, 40)  # and the clock comes back: no slot older than the 16th's runs
    assert next_run(svc) == "2026-06-17T03:30"
    assert [slot for slot, _ in ran] == ["2026-06-16T03:30", "2026-06-17T03:30"]


def test_a_clock_stepped_back_a_whole_day_runs_no_older_slot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    data.mkdir()
    clock = Clock(ts(2026, 6, 10, 3, 0))
    ran: list[tuple[str, float]] = []
    svc = service(data, clock, monkeypatch, ran)
    assert next_run(svc) == "2026-06-10T03:30"
    clock.now = ts(2026, 6, 9, 3, 0)  # an RTC a day behind, read at boot: the 9th's slot is due "next"
    assert next_run(svc) == "2026-06-11T03:30"
    clock.now = ts(2026, 6, 8, 23, 0)  # and back again, across midnight, in a new server
    assert next_run(service(data, clock, monkeypatch, ran)) == "2026-06-12T03:30"
    assert [slot for slot, _ in ran] == ["2026-06-10T03:30", "2026-06-11T03:30", "2026-06-12T03:30"]


@pytest.mark.parametrize("seed", range(5))
def test_whatever_the_clock_does_each_run_serves_a_later_slot_and_a_jump_runs_at_most_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    import random

    rnd = random.Random(seed)
    data = tmp_path / "data"
    data.mkdir()
    clock = Clock(ts(2026, 3, 20, 12, 0))  # across the spring change in Paris
    ran: list[tuple[str, float]] = []
    svc = service(data, clock, monkeypatch, ran)
    for _ in range(60):
        before = len(ran)
        jump = rnd.choice([-3 * 86400, -86400, -7200, -2400, -60, 600, 3000, 86400, 5 * 86400])
        real_wait = clock.wait
        landed: list[float] = []

        def jumped(
            timeout: float | None = None, jump: int = jump, real_wait: Any = real_wait, landed: list[float] = landed
        ) -> bool:
            clock.now += jump  # the step happens while the service waits
            landed.append(clock.now)
            svc._wake.wait = real_wait
            return False

        svc._wake.wait = jumped
        for _ in range(3):  # a few wake-ups: each returns a slot that ran, or None to recompute
            next_run(svc)
        if landed:  # of the slots the jump passed over, at most one is caught up
            assert sum(local(slot) < landed[0] for slot, _ in ran[before:]) <= 1
    slots = [local(slot) for slot, _ in ran]
    assert slots == sorted(set(slots)) and len(slots) > 10  # strictly later each time: none twice, none older
    assert all(at >= local(slot) for slot, at in ran)  # none before its time


def test_the_slot_is_kept_with_its_utc_time_so_a_new_zone_runs_the_next_real_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = BackupConfig(schedule="daily", time="03:30")
    new_york = zoneinfo.ZoneInfo("America/New_York")
    served_at = ts(2026, 6, 10, 3, 30)  # 03:30 in Paris, 21:30 the day before in New York
    now = served_at + 3600
    # the owner moves the box to New York: the same label, six hours later, is a new slot
    assert schedule.next_slot(now, new_york, cfg, "2026-06-10T03:30", served_at) == (
        dt.datetime(2026, 6, 10, 3, 30, tzinfo=new_york).timestamp(),
        "2026-06-10T03:30",
    )
    # a served slot far ahead (kept while the clock read 2030) does not stop the backups until then
    assert schedule.next_slot(now, PARIS, cfg, "2030-01-01T03:30", ts(2030, 1, 1, 3, 30)) == (
        ts(2026, 6, 11, 3, 30),
        "2026-06-11T03:30",
    )


def test_the_real_run_keeps_its_slot_before_it_starts_and_a_failed_one_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support.wsgiclient import set_up_web

    from gk.backup.service import BackupService

    web = set_up_web(tmp_path / "box")
    svc = BackupService(web.ctx)
    monkeypatch.setattr(os, "statvfs", fake_statvfs(MIB))  # refused for space
    try:
        assert svc.run_now("2026-06-10T03:30") is None
        assert schedule.read_status(web.data_dir).slot == "2026-06-10T03:30"
        monkeypatch.undo()
        assert svc.run_now() is not None  # "Back up now" serves no slot: the kept one stays
    finally:
        svc.stop(1.0)
    st = schedule.read_status(web.data_dir)
    assert st.ok and st.slot == "2026-06-10T03:30" and st.space_needed == 0
    assert st.slot_at == schedule.slot_time(st.slot, schedule.zone_of(web.data_dir)) > 0


# -- 3. a database newer than this GK ----------------------------------------------------------------


def with_schema(data: Path, rel: str, version: int) -> None:
    path = data / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE IF NOT EXISTS t (x)")
    db.execute(f"PRAGMA user_version={version}")
    db.commit()
    db.close()


@pytest.mark.parametrize(
    ("rel", "module"),
    [("accounts.sqlite3", "gk.accounts.store"), ("mail/a@example.test/index.sqlite3", "gk.mail.mailbox.index")],
)
def test_restore_refuses_a_database_newer_than_this_gk_before_replacing_anything(
    tmp_path: Path, rel: str, module: str
) -> None:
    import importlib

    from gk.backup import schemas

    supported = len(importlib.import_module(module).MIGRATIONS)
    assert schemas.supported(rel) == supported
    data = data_dir(tmp_path)
    with_schema(data, rel, supported + 3)
    newer = archive.create(data, tmp_path / "out", "box.test.example")
    box = tmp_path / "box"
    box.mkdir()
    (box / "gk.toml").write_text("# the box as it is\n")
    with pytest.raises(archive.BackupError) as exc:
        archive.restore(newer, box, force=True)
    msg = str(exc.value)
    assert rel in msg and f"schema version {supported + 3}" in msg and f"supports ({supported})" in msg
    assert "update GK first" in msg
    assert [p.name for p in box.iterdir()] == ["gk.toml"] and (box / "gk.toml").read_text() == "# the box as it is\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["box", "data", "out"]  # no staging, nothing moved aside

    with_schema(data, rel, supported)  # this GK's own version restores
    same = archive.create(data, tmp_path / "out", "box.test.example")
    _, moved = archive.restore(same, box, force=True)
    assert moved is not None and (box / rel).is_file()


def restored_names(box: Path) -> list[str]:
    return sorted(str(p.relative_to(box)) for p in box.rglob("*.sqlite3"))


def test_restore_refuses_a_database_a_newer_gk_added_before_replacing_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gk.backup import schemas

    data = data_dir(tmp_path)
    with_schema(data, "notes.sqlite3", 1)  # a feature of a newer GK, with its own database
    with monkeypatch.context() as newer:  # that GK: one more database, its list a generation on
        newer.setitem(schemas.DATABASES, "notes.sqlite3", "gk.accounts.store")
        newer.setattr(schemas, "GENERATION", schemas.GENERATION + 1)
        made = archive.create(data, tmp_path / "out", "box.test.example")
    box = tmp_path / "box"
    box.mkdir()
    (box / "gk.toml").write_text("# the box as it is\n")
    with pytest.raises(archive.BackupError) as exc:
        archive.restore(made, box, force=True)
    msg = str(exc.value)
    assert "notes.sqlite3" in msg and "newer GK" in msg and "update GK first" in msg and "Nothing was replaced" in msg
    assert [p.name for p in box.iterdir()] == ["gk.toml"] and (box / "gk.toml").read_text() == "# the box as it is\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["box", "data", "out"]  # no staging, nothing moved aside


def test_an_unknown_database_an_older_gk_left_is_restored_as_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not "update GK first" for a database no GK owns now (a stray file, or one a later GK
    dropped): only one a newer GK's list claims is refused."""
    from gk.backup import schemas

    data = data_dir(tmp_path)
    with_schema(data, "stray.sqlite3", 1)  # owned by no GK
    with_schema(data, "retired.sqlite3", 1)
    with monkeypatch.context() as older:  # an older GK that still used retired.sqlite3
        older.setitem(schemas.DATABASES, "retired.sqlite3", "gk.accounts.store")
        older.setattr(schemas, "GENERATION", schemas.GENERATION - 1)
        made = archive.create(data, tmp_path / "out", "box.test.example")
    _, moved = archive.restore(made, tmp_path / "box")
    assert moved is None
    assert restored_names(tmp_path / "box") == ["accounts.sqlite3", "retired.sqlite3", "stray.sqlite3"]


def test_the_archive_lists_the_databases_this_gk_owns() -> None:
    """Adding or dropping a database: add it here and bump ``schemas.GENERATION`` (an archive of
    this GK restored on an older one is then refused with "update GK first")."""
    from gk.backup import schemas
    from gk.mail import mailbox

    assert schemas.matches(f"mail/a@example.test/{mailbox.INDEX_FILE}", f"mail/*/{mailbox.INDEX_FILE}")
    assert (schemas.GENERATION, schemas.owned()) == (
        1,
        [
            "accounts.sqlite3",
            "ai.sqlite3",
            "chat-files.sqlite3",
            "chat.sqlite3",
            "claim.sqlite3",
            "dav.sqlite3",
            "mail/*/index.sqlite3",
            "mcp.sqlite3",
            "oauth.sqlite3",
            "queue.sqlite3",
            "settings.sqlite3",
            "tools.sqlite3",
            "web.sqlite3",
        ],
    )


def test_every_database_with_migrations_is_known_to_restore() -> None:
    from gk.backup import schemas

    root = Path(schemas.__file__).resolve().parents[1]
    found = set()
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(
            isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "MIGRATIONS" for t in node.targets)
            for node in tree.body
        ):
            parts = list(path.relative_to(root.parent).with_suffix("").parts)
            found.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    assert found == set(schemas.DATABASES.values()) | {"gk.mail.mailbox.index"}  # that one: the face answers


def test_a_slot_that_cannot_be_kept_still_backs_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full data dir (the status file cannot be written) must not cost the backup itself."""
    from support.wsgiclient import set_up_web

    from gk.backup.service import BackupService

    web = set_up_web(tmp_path / "box")
    svc = BackupService(web.ctx)

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(schedule, "claim_slot", full)
    try:
        assert svc.run_now("2026-06-10T03:30") is not None
    finally:
        svc.stop(1.0)
