"""The automatic backup's schedule (next run on the box's wall clock, across daylight saving
changes), the Backup page's summary and warnings, and restore's refusal of an archive whose
format this GK does not know."""

from __future__ import annotations

import datetime as dt
import io
import json
import tarfile
import zoneinfo
from pathlib import Path

import pytest

from gk.backup import archive, schedule
from gk.config import BackupConfig

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
UTC = dt.UTC


def ts(zone: dt.tzinfo, *args: int, fold: int = 0) -> float:
    return dt.datetime(*args, tzinfo=zone, fold=fold).timestamp()  # type: ignore[misc]


def utc(when: float | None) -> str:
    assert when is not None
    return dt.datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M")


def test_daily_runs_at_the_chosen_wall_clock_time() -> None:
    cfg = BackupConfig(schedule="daily", time="03:30")
    # before today's time: today; at or after it: tomorrow
    assert schedule.next_run(ts(PARIS, 2026, 6, 10, 1, 0), PARIS, cfg) == ts(PARIS, 2026, 6, 10, 3, 30)
    assert schedule.next_run(ts(PARIS, 2026, 6, 10, 3, 30), PARIS, cfg) == ts(PARIS, 2026, 6, 11, 3, 30)
    assert schedule.next_run(ts(PARIS, 2026, 6, 10, 23, 59), PARIS, cfg) == ts(PARIS, 2026, 6, 11, 3, 30)
    assert schedule.next_run(0, PARIS, BackupConfig(schedule="off")) is None


def test_daily_keeps_its_wall_clock_time_across_the_spring_change() -> None:
    """Europe/Paris skips 02:00-03:00 on 2026-03-29: 03:30 stays 03:30 local (23 h after the day
    before), and 02:30, which does not exist that night, runs once, an hour later."""
    cfg = BackupConfig(schedule="daily", time="03:30")
    first = schedule.next_run(ts(PARIS, 2026, 3, 28, 12, 0), PARIS, cfg)
    assert utc(first) == "2026-03-29 01:30"  # 03:30 CEST
    assert first is not None
    assert utc(schedule.next_run(first, PARIS, cfg)) == "2026-03-30 01:30"
    gap = BackupConfig(schedule="daily", time="02:30")
    skipped = schedule.next_run(ts(PARIS, 2026, 3, 28, 12, 0), PARIS, gap)
    assert utc(skipped) == "2026-03-29 01:30"  # 03:30 CEST, the same moment as 02:30 CET would be
    assert skipped is not None
    assert utc(schedule.next_run(skipped, PARIS, gap)) == "2026-03-30 00:30"  # 02:30 CEST


def test_daily_runs_once_when_the_autumn_change_repeats_its_time() -> None:
    """2026-10-25: Europe/Paris goes from 03:00 CEST back to 02:00 CET, so 02:30 happens twice:
    the backup runs at the first one only, then the next day."""
    cfg = BackupConfig(schedule="daily", time="02:30")
    first = schedule.next_run(ts(PARIS, 2026, 10, 24, 12, 0), PARIS, cfg)
    assert utc(first) == "2026-10-25 00:30"  # 02:30 CEST
    assert first is not None
    second = schedule.next_run(first + 1, PARIS, cfg)
    assert utc(second) == "2026-10-26 01:30"  # 02:30 CET the next day, not 01:30 UTC on the 25th
    # a time of day after the change: the day is 25 h long, the wall clock stays
    late = BackupConfig(schedule="daily", time="04:00")
    a = schedule.next_run(ts(PARIS, 2026, 10, 23, 12, 0), PARIS, late)  # the 24th, 04:00 CEST
    assert a is not None
    b = schedule.next_run(a, PARIS, late)
    assert b is not None and b - a == 25 * 3600


def test_weekly_runs_on_its_day_and_the_test_interval_replaces_the_schedule() -> None:
    cfg = BackupConfig(schedule="weekly", time="04:15", weekday="sun")
    wed = ts(PARIS, 2026, 6, 10, 12, 0)  # a Wednesday
    assert schedule.next_run(wed, PARIS, cfg) == ts(PARIS, 2026, 6, 14, 4, 15)
    sunday_at = ts(PARIS, 2026, 6, 14, 4, 15)
    assert schedule.next_run(sunday_at, PARIS, cfg) == ts(PARIS, 2026, 6, 21, 4, 15)
    assert schedule.next_run(100.0, PARIS, BackupConfig(schedule="off", test_only_interval=2.0)) == 102.0


def test_the_page_summary_warns_about_stale_backups_and_targets_on_the_box(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "gk.toml").write_text("[server]\n")
    now = 1_800_000_000.0
    on_box = schedule.view(data, BackupConfig(), now, None)
    assert on_box["target"] == str(data / "backup")
    assert set(on_box["warnings"]) == {"none", "on_box"}  # never a backup; the default target

    usb = tmp_path / "usb"
    cfg = BackupConfig(target=str(usb))
    assert "missing" in schedule.view(data, cfg, now, None)["warnings"]  # a drive not mounted
    usb.mkdir()
    schedule.record(data, True, "gk-backup-a.tar", usb, 10, 1.0, now=now - 8 * 86400)
    v = schedule.view(data, cfg, now, now + 60)
    assert "stale" in v["warnings"] and "on_box" not in v["warnings"] and "missing" not in v["warnings"]
    assert v["free"] is not None and v["free"] > 0 and v["next"] == now + 60
    # a failure keeps the last good one: still stale
    schedule.record(data, False, "no space left", usb, now=now - 60)
    v = schedule.view(data, cfg, now, None)
    assert v["status"].ok is False and v["status"].detail == "no space left"
    assert v["last_good"] == now - 8 * 86400 and "stale" in v["warnings"]
    schedule.record(data, True, "gk-backup-b.tar", usb, now=now - 60)
    assert "stale" not in schedule.view(data, cfg, now, None)["warnings"]


def test_a_target_that_does_not_exist_fails_the_backup_instead_of_being_made(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "gk.toml").write_text("[server]\n")
    usb = tmp_path / "usb" / "gk"  # the drive is not mounted: its directory is absent
    with pytest.raises(archive.BackupError, match="not plugged in or not mounted"):
        archive.create(data, usb, "box.test.example", make_dest=False)
    assert not usb.exists()


# -- restore and the archive's format version ---------------------------------------------------


def with_info(src: Path, dst: Path, change: dict[str, object], drop: tuple[str, ...] = ()) -> Path:
    """A copy of the archive ``src`` whose info.json has ``change`` applied (the manifest covers
    the data only, so the rest still verifies)."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as tout:
        for member in tin.getmembers():
            f = tin.extractfile(member) if member.isfile() else None
            if member.name == archive.INFO:
                assert f is not None
                info = json.loads(f.read())
                info.update(change)
                for key in drop:
                    info.pop(key, None)
                body = json.dumps(info).encode()
                member.size = len(body)
                f = io.BytesIO(body)
            tout.addfile(member, f)
    return dst


def made(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    (data / "dkim").mkdir(parents=True)
    (data / "gk.toml").write_text("[server]\n")
    (data / "dkim" / "key.pem").write_text("secret")
    return archive.create(data, tmp_path / "out", "box.test.example")


def test_restore_refuses_a_newer_format_and_one_without_a_format(tmp_path: Path) -> None:
    src = made(tmp_path)
    newer = with_info(src, tmp_path / "newer.tar", {"format": archive.FORMAT + 1, "gk_version": "99.0"})
    with pytest.raises(archive.BackupError) as exc:
        archive.restore(newer, tmp_path / "r1")
    msg = str(exc.value)
    assert f"format {archive.FORMAT + 1}" in msg and "GK 99.0" in msg and f"format {archive.FORMAT} at most" in msg
    assert "update GK first" in msg
    assert not (tmp_path / "r1").exists()  # nothing unpacked

    missing = with_info(src, tmp_path / "missing.tar", {}, drop=("format",))
    with pytest.raises(archive.BackupError, match="names no format version"):
        archive.restore(missing, tmp_path / "r2")
    assert not (tmp_path / "r2").exists()

    archive.restore(src, tmp_path / "r3")  # this version's own format restores
    assert (tmp_path / "r3" / "dkim" / "key.pem").read_text() == "secret"


def test_an_older_known_format_still_restores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A GK that writes format 2 and still knows 1 restores a format-1 archive (the version is
    simulated: this GK's constants are raised, the archive is the real one)."""
    src = made(tmp_path)
    monkeypatch.setattr(archive, "FORMAT", 2)
    monkeypatch.setattr(archive, "KNOWN_FORMATS", frozenset({1, 2}))
    info, _ = archive.restore(src, tmp_path / "r")
    assert info["format"] == 1 and (tmp_path / "r" / "dkim" / "key.pem").read_text() == "secret"
    # and format 0 (never written) is refused as unknown
    zero = with_info(src, tmp_path / "zero.tar", {"format": 0})
    with pytest.raises(archive.BackupError, match="format version 0 is not valid"):
        archive.restore(zero, tmp_path / "r0")
