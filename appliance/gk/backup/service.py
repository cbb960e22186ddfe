"""The automatic backup of ``gk serve``: one greenlet that sleeps until ``[backup]``'s next
scheduled time (``gk.backup.schedule``), then writes an archive into the target directory and
keeps the newest ``keep`` there.

The greenlet only waits and decides; every file read, SQLite snapshot step and write happens in
the disk-I/O pool (``gk.pools.run_io``, one 256 KiB chunk per call, so mail deliveries queue
behind at most one chunk, never behind the whole backup). It wakes at least every
``WAKE_SECONDS`` to compare the wall clock with the next run (a clock set by NTP after boot, a
new time zone), and at once when the schedule is changed on the Backup page (a settings
callback). A run whose time passed more than ``MISSED_GRACE`` ago (the box was off, the clock
jumped) is not caught up: the next one is computed from now. A failure (target missing, disk
full, a damaged database) is logged, recorded in the status file and the security events
(``backup_failed``) and shown on the Backup page; the loop goes on to the next run.

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
                if self._wait_for_next():
                    self.run_now()
            except gevent.GreenletExit:
                raise
            except Exception:  # never the server: log, wait, go on
                log.exception("backup: the schedule loop failed; trying again in %.0fs", WAKE_SECONDS)
                gevent.sleep(WAKE_SECONDS)

    def _wait_for_next(self) -> bool:
        """Sleep until the next scheduled run; True when it is due, False to compute it again
        (the schedule or the zone changed, or the run was missed)."""
        self._wake.clear()
        cfg = self.ctx.config.backup
        if cfg.schedule == "off" and not cfg.test_only_interval:
            due = None  # and zoneinfo stays unimported (~0.7 MiB with sysconfig) until a page needs it
        else:
            zone = schedule.zone_of(self.data_dir)  # the settings cache, as every page showing a time
            due = schedule.next_run(time.time(), zone, cfg)
        self.next_at = due
        if due is None:
            self._wake.wait()
            return False
        while True:
            left = due - time.time()
            if left <= 0:
                if -left > MISSED_GRACE and cfg.test_only_interval == 0:
                    log.warning(
                        "backup: the run of %s was missed (the box was off or its clock changed); next one computed from now",
                        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(due)),
                    )
                    return False
                return True
            if self._wake.wait(min(left, WAKE_SECONDS)):
                return False

    def run_now(self) -> Path | None:
        """One backup into the target, now; the archive, or None when it failed (logged, recorded)."""
        with self._one_at_a_time:
            return self._run()

    def _run(self) -> Path | None:
        from gk.backup import archive

        cfg = self.ctx.config.backup
        target = schedule.target_of(self.data_dir, cfg)
        self.running = True
        started = time.monotonic()
        try:
            path = archive.create(
                self.data_dir,
                target,
                self.ctx.hostname,
                keep=cfg.keep,
                run=pools.run_io,
                make_dest=not cfg.target,
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
            try:
                pools.run_io(schedule.record, self.data_dir, False, detail, target, 0, time.monotonic() - started)
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
