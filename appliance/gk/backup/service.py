"""The automatic backup of ``gk serve``: one greenlet that sleeps until ``[backup]``'s next
scheduled time (``gk.backup.schedule``), then writes an archive into the target directory and
keeps the newest ``keep`` there.

The greenlet only waits and decides; every file read, SQLite snapshot step and write happens in
the disk-I/O pool (``gk.pools.run_io``, one 256 KiB chunk per call, so mail deliveries queue
behind at most one chunk, never behind the whole backup). It wakes at least every
``WAKE_SECONDS`` to compare the wall clock with the next run (a clock set by NTP after boot, a
new time zone), and at once when the schedule is changed on the Backup page (a settings
callback). A run whose time passed more than ``MISSED_GRACE`` ago (the box was off, the clock
jumped) is not caught up: the next one is computed from now. Each scheduled run keeps its slot
(the local date and time it serves, and its UTC time) in the status file before it starts, and
the next run is always a later slot: a clock stepped back after a run, by minutes or by days
(NTP correcting a clock that ran fast, an RTC read at boot), runs neither that slot again nor
an older one; a clock stepped forward runs at most the one slot it lands within the grace of.
A served slot more than ``schedule.FUTURE_SLOT_LIMIT`` ahead of the clock was kept by a wrong
clock and is disregarded (logged): else a box whose clock once read 2030 would not back up
until 2030. Before writing, the run checks the
target's free space against the archive's estimated size (``archive.Estimate``). A failure
(target missing, disk full, a damaged database) is logged, recorded in the status file and the
security events (``backup_failed``) and shown on the Backup page; the loop goes on to the next
run.

Cost: one sleeping greenlet and a timer every minute (see docs/performance.md "Backups").
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import gevent
import gevent.event
import gevent.lock

from gk import pools, settings
from gk.backup import schedule  # archive (tarfile, tempfile: ~0.5 MiB) is imported when a backup runs

if TYPE_CHECKING:
    from gk.context import AppContext

log = logging.getLogger("gk.backup")

WAKE_SECONDS = 60.0
MISSED_GRACE = 3600.0


class BackupService:
    name = "backup"

    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        self.data_dir = ctx.data_dir
        self.next_at: float | None = None
        self.running = False
        self.runs = 0  # backups this process made (tests, diagnosis)
        self.clock = time.time  # the wall clock (tests step it back and forth)
        self._wake = gevent.event.Event()
        self._loop_greenlet: gevent.Greenlet | None = None
        self._asked: gevent.Greenlet | None = None  # "Back up now" from the page
        self._one_at_a_time = gevent.lock.BoundedSemaphore()
        self._unsubscribe = settings.of(self.data_dir).subscribe(self._changed, {settings.BACKUP, settings.TIMEZONE})

    def start(self) -> BackupService:
        self._loop_greenlet = gevent.spawn(self._loop)
        return self

    def stop(self, grace: float) -> None:
        self._unsubscribe()
        for g in (self._asked, self._loop_greenlet):
            if g is not None:
                g.kill(block=True, timeout=max(grace, 1.0))

    def back_up_now(self) -> bool:
        """Start a backup into the target now, in the background (the page's button); False when
        one is running already."""
        if self.running or (self._asked is not None and not self._asked.dead):
            return False
        self._asked = gevent.spawn(self.run_now)
        return True

    def _changed(self, change: settings.Change) -> None:
        self._wake.set()

    # -- the loop -----------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            try:
                slot = self._wait_for_next()
                if slot is not None:
                    self.run_now(slot)
            except gevent.GreenletExit:
                raise
            except Exception:  # never the server: log, wait, go on
                log.exception("backup: the schedule loop failed; trying again in %.0fs", WAKE_SECONDS)
                gevent.sleep(WAKE_SECONDS)

    def _wait_for_next(self) -> str | None:
        """Sleep until the next scheduled run; its slot when it is due (``schedule.slot_of``; ""
        with ``test_only_interval``), None to compute it again (the schedule or the zone
        changed, or the run was missed). The slot the last scheduled run served (kept in the
        status file) is skipped: a clock stepped back after a run does not run it twice."""
        self._wake.clear()
        cfg = self.ctx.config.backup
        found: tuple[float, str] | None = None
        if cfg.schedule != "off" or cfg.test_only_interval:  # else zoneinfo stays unimported (~0.7 MiB)
            zone = schedule.zone_of(self.data_dir)  # the settings cache, as every page showing a time
            st = pools.run_io(schedule.read_status, self.data_dir)
            now = self.clock()
            found = schedule.next_slot(now, zone, cfg, st.slot, st.slot_at)
            served_at = st.slot_at or schedule.slot_time(st.slot, zone)
            if served_at > now + schedule.FUTURE_SLOT_LIMIT and cfg.test_only_interval == 0:
                log.warning(
                    "backup: the last scheduled run served %s, days ahead of the clock (it was wrong then, or is now); "
                    "the schedule starts again from now",
                    st.slot,
                )
        self.next_at = found[0] if found else None
        if found is None:
            self._wake.wait()
            return None
        due, slot = found
        computed_at = self.clock()
        while True:
            now = self.clock()
            if now < computed_at - WAKE_SECONDS:
                return None  # the clock stepped back: compute from the new time (the served slot stays skipped)
            left = due - now
            if left <= 0:
                if -left > MISSED_GRACE and cfg.test_only_interval == 0:
                    log.warning(
                        "backup: the run of %s was missed (the box was off or its clock changed); next one computed from now",
                        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(due)),
                    )
                    return None
                return slot
            if self._wake.wait(min(left, WAKE_SECONDS)):
                return None

    def run_now(self, slot: str = "") -> Path | None:
        """One backup into the target, now; the archive, or None when it failed (logged,
        recorded). ``slot``: the scheduled slot it serves (kept before it starts)."""
        with self._one_at_a_time:
            return self._run(slot)

    def _run(self, slot: str = "") -> Path | None:
        from gk.backup import archive

        cfg = self.ctx.config.backup
        target = schedule.target_of(self.data_dir, cfg)
        self.running = True
        started = time.monotonic()
        try:
            if slot:
                try:
                    at = schedule.slot_time(slot, schedule.zone_of(self.data_dir))
                    pools.run_io(schedule.claim_slot, self.data_dir, slot, at)
                except OSError as e:  # a full data dir: back up all the same (a USB target may have room)
                    log.warning("backup: could not keep the slot %s it serves: %s", slot, e)
            path = archive.create(
                self.data_dir,
                target,
                self.ctx.hostname,
                keep=cfg.keep,
                run=pools.run_io,
                make_dest=not cfg.target,
                compress=cfg.compress == "gzip",
            )
            size = pools.run_io(lambda: path.stat().st_size)
            seconds = time.monotonic() - started
            pools.run_io(schedule.record, self.data_dir, True, path.name, target, size, seconds)
            self.ctx.accounts.record_event("backup_made", "schedule", "", "", path.name)
            log.info("backup: %s written (%.1f MB, %.1fs)", path, size / 1e6, seconds)
            self.runs += 1
            return path
        except gevent.GreenletExit:
            raise
        except Exception as exc:
            if isinstance(exc, archive.BackupError | OSError):
                detail = str(exc)
                log.error("backup: the automatic backup to %s failed: %s", target, detail)
            else:
                detail = f"{type(exc).__name__}: {exc}"
                log.exception("backup: the automatic backup to %s failed", target)
            space = (exc.needed, exc.free) if isinstance(exc, archive.NoSpace) else (0, 0)
            try:
                pools.run_io(
                    schedule.record, self.data_dir, False, detail, target, 0, time.monotonic() - started, None, space
                )
            except OSError as e:
                log.error("backup: could not record the failure either: %s", e)
            self.ctx.accounts.record_event("backup_failed", "schedule", "", "", detail[:300])
            return None
        finally:
            self.running = False


def start(ctx: AppContext) -> BackupService:
    """Always started (a sleeping greenlet when the schedule is off): turning it on from the
    Backup page needs no restart."""
    return BackupService(ctx).start()
