"""When the automatic backup runs, where it goes, and what the last one did.

``next_run(after, zone, cfg)``: the next scheduled time (a UTC timestamp) strictly after
``after``, from ``[backup] schedule/time/weekday`` read as wall-clock time in the box's zone.
Computed on the calendar, not by adding 86400 s, so it stays at the chosen time across daylight
saving changes: a time that does not exist that night (skipped by the spring change) runs once,
an hour later; a time that exists twice (the autumn change) runs once, at its first occurrence.

``Status`` is the last run (``DATA_DIR/backup-status.json``, written durably after each run,
scheduled or ``gk backup create``): when, whether it worked, the archive or the error, and the
last good one. ``view(...)`` is what the Backup page shows: last run, next run, target, its free
space, and the warnings (no good backup for ``STALE_DAYS``, a target on the box itself).

Cost: pure functions plus one small JSON file read per page view.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gk.config import WEEKDAYS, BackupConfig
from gk.store.files import write_durable

STATUS_FILE = "backup-status.json"
STALE_DAYS = 7
UTC = dt.UTC


def default_target(data_dir: Path) -> Path:
    return data_dir / "backup"


def target_of(data_dir: Path, cfg: BackupConfig) -> Path:
    """Where the archives go: ``[backup] target``, else ``DATA_DIR/backup``."""
    return Path(cfg.target) if cfg.target else default_target(data_dir)


def _at(day: dt.date, hour: int, minute: int, zone: dt.tzinfo) -> float:
    """The UTC timestamp of ``day`` ``hour:minute`` on the wall clock of ``zone``. A time the
    spring change skips maps to the same moment an hour later (fold=0 takes the offset from
    before the change); one the autumn change repeats maps to its first occurrence (fold=0)."""
    local = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
    return local.timestamp()


def next_run(after: float, zone: dt.tzinfo, cfg: BackupConfig) -> float | None:
    """The next scheduled backup strictly after the UTC timestamp ``after``; None when off.
    ``test_only_interval`` (tests) replaces the schedule by a fixed period."""
    if cfg.test_only_interval > 0:
        return after + cfg.test_only_interval
    if cfg.schedule == "off":
        return None
    hour, minute = (int(x) for x in cfg.time.split(":"))
    today = dt.datetime.fromtimestamp(after, zone).date()
    for days in range(0, 9):
        day = today + dt.timedelta(days=days)
        if cfg.schedule == "weekly" and day.weekday() != WEEKDAYS.index(cfg.weekday):
            continue
        when = _at(day, hour, minute, zone)
        if when > after:
            return when
    raise AssertionError("no day in the next 8 matched the schedule")  # pragma: no cover


def slot_of(when: float, zone: dt.tzinfo) -> str:
    """The scheduled run at the UTC timestamp ``when`` as its wall-clock slot in ``zone``
    (``2026-06-10T03:30``): what the status file keeps so that a slot is served once, whatever
    the clock does afterwards. Both runs of a time the autumn change repeats are one slot."""
    return dt.datetime.fromtimestamp(when, zone).strftime("%Y-%m-%dT%H:%M")


FUTURE_SLOT_LIMIT = 8 * 86400  # a served slot further ahead than this was kept by a wrong clock


def slot_time(slot: str, zone: dt.tzinfo) -> float:
    """The UTC timestamp of the wall-clock ``slot`` in ``zone`` (0.0 when it is not one)."""
    try:
        local = dt.datetime.strptime(slot, "%Y-%m-%dT%H:%M")
    except ValueError:
        return 0.0
    return _at(local.date(), local.hour, local.minute, zone)


def next_slot(
    after: float, zone: dt.tzinfo, cfg: BackupConfig, served: str = "", served_at: float = 0.0
) -> tuple[float, str] | None:
    """The next scheduled run strictly after ``after`` and strictly after the slot the last
    scheduled run served (``served``, at the UTC timestamp ``served_at``; from ``served`` read in
    ``zone`` when 0), as (UTC timestamp, slot); None when off. Whatever the clock does, a slot
    is never run twice and never one older than the last served: a clock stepped back (by
    minutes or by days) waits for the first slot after the served one. One exception: a served
    slot more than ``FUTURE_SLOT_LIMIT`` ahead of ``after`` was kept while the clock was wrong
    (an RTC set years ahead, then NTP): honouring it would stop the backups for that long, so
    the schedule starts again from ``after``. With ``test_only_interval`` the slot is "" (not
    kept)."""
    if cfg.test_only_interval > 0:
        when = next_run(after, zone, cfg)
        return None if when is None else (when, "")
    floor = served_at or (slot_time(served, zone) if served else 0.0)
    start = after
    if floor and after <= floor <= after + FUTURE_SLOT_LIMIT:
        start = floor  # the served slot and any before it are done
    when = next_run(start, zone, cfg)  # strictly after: the served slot itself is never next
    return None if when is None else (when, slot_of(when, zone))


def zone_of(data_dir: Path) -> dt.tzinfo:
    from gk import localtime

    return localtime.zone(data_dir)


# -- status of the last run --------------------------------------------------------------------


@dataclass
class Status:
    last_run: float = 0.0  # when the last backup (scheduled or by hand) ended
    ok: bool = False
    detail: str = ""  # the archive's name, or the error
    target: str = ""
    size: int = 0
    seconds: float = 0.0
    last_good: float = 0.0  # when the last backup that worked ended
    last_good_archive: str = ""
    slot: str = ""  # the scheduled slot (local "YYYY-MM-DDTHH:MM") the last scheduled run served
    slot_at: float = 0.0  # that slot's UTC timestamp (the slot string alone is read in today's zone)
    space_needed: int = 0  # a run refused for want of space: what it needed and what was free
    space_free: int = 0


def read_status(data_dir: Path) -> Status:
    try:
        raw = json.loads((data_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Status()
    known = Status.__dataclass_fields__
    with contextlib.suppress(TypeError):
        return Status(**{k: v for k, v in raw.items() if k in known}) if isinstance(raw, dict) else Status()
    return Status()


def record(
    data_dir: Path,
    ok: bool,
    detail: str,
    target: Path,
    size: int = 0,
    seconds: float = 0.0,
    now: float | None = None,
    space: tuple[int, int] = (0, 0),
) -> Status:
    """Save the result of a backup that just ended; the new status. ``space``: (needed, free)
    bytes when it failed for want of space."""
    now = time.time() if now is None else now
    st = read_status(data_dir)
    st.last_run, st.ok, st.detail, st.target, st.size, st.seconds = now, ok, detail, str(target), size, seconds
    st.space_needed, st.space_free = space
    if ok:
        st.last_good, st.last_good_archive = now, detail
    _write(data_dir, st)
    return st


def claim_slot(data_dir: Path, slot: str, at: float = 0.0) -> None:
    """Keep, durably and before the run starts, that the scheduled ``slot`` (at the UTC timestamp
    ``at``) is being served: a run that crashes the process is not started again for the same
    slot either, nor for an older one."""
    st = read_status(data_dir)
    st.slot, st.slot_at = slot, at
    _write(data_dir, st)


def _write(data_dir: Path, st: Status) -> None:
    write_durable(data_dir / STATUS_FILE, json.dumps(asdict(st), indent=1).encode(), 0o600)


# -- what the page shows ------------------------------------------------------------------------


def inside(path: Path, data_dir: Path) -> bool:
    """``path`` is the data dir or under it (resolved: a symlink into it counts)."""
    try:
        return path.resolve().is_relative_to(data_dir.resolve())
    except OSError:
        return path.absolute().is_relative_to(data_dir.absolute())


def view(data_dir: Path, cfg: BackupConfig, now: float, next_at: float | None) -> dict[str, Any]:
    """The Backup page's summary (blocking: stats the target; call it in the disk pool).

    ``warnings`` are codes: ``none`` (never a good backup), ``stale`` (the last good one is older
    than ``STALE_DAYS``), ``on_box`` (the target is inside the data dir: a factory reset erases
    it), ``same_disk`` (the target is elsewhere on the box's own disk: lost with it),
    ``missing`` (the target directory does not exist)."""
    from gk.backup import archive

    target = target_of(data_dir, cfg)
    st = read_status(data_dir)
    last_good = st.last_good
    if not last_good:  # from before the status file: the newest archive on the box counts
        found = archive.archives(target) or archive.archives(default_target(data_dir))
        if found:
            last_good = found[0][1].st_mtime
    free: int | None = None
    warnings: list[str] = []
    exists = target.is_dir() or not cfg.target  # the default is made on first use
    if target.is_dir():
        with contextlib.suppress(OSError):
            vfs = os.statvfs(target)
            free = vfs.f_bavail * vfs.f_frsize
    if not last_good:
        warnings.append("none")
    elif now - last_good > STALE_DAYS * 86400:
        warnings.append("stale")
    if not exists:
        warnings.append("missing")
    if inside(target, data_dir):
        warnings.append("on_box")
    elif exists and target.is_dir():
        with contextlib.suppress(OSError):
            if os.stat(target).st_dev == os.stat(data_dir).st_dev:
                warnings.append("same_disk")
    return {
        "status": st,
        "last_good": last_good,
        "target": str(target),
        "free": free,
        "next": next_at,
        "warnings": warnings,
    }


__all__ = [
    "next_run",
    "next_slot",
    "slot_of",
    "slot_time",
    "claim_slot",
    "Status",
    "read_status",
    "record",
    "view",
    "target_of",
    "zone_of",
]
