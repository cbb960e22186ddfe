"""Admin page "Backup" (``/admin/backup``): download a backup of the whole box now, the archives
kept on the box (``gk backup create``, ``DATA_DIR/backup``) with their download links, and how to
restore one (a command: the server must be stopped for it).

"Download a backup now" (a POST: CSRF-checked, admin-only) streams the archive of
``gk.backup.archive`` straight to the browser as it is made: nothing but the database snapshots
(deleted as soon as sent) and the file list is written on the box, so it works on a nearly full
SD card; it first checks there is room for those (``archive.check_scratch_space``: the biggest
snapshot, the list, the margin of a backup run) and otherwise answers 507 with the page saying
how much is needed and free, nothing written. Each
chunk is made in the disk-I/O pool (file reads, SQLite's backup step), never on the hub. A
download cut short has no manifest at its end and ``gk backup restore`` refuses it.
Both downloads are recorded in the security events (``backup_downloaded``).
Cost: nothing until an admin opens the page; a download holds one 256 KiB chunk at a time.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import bottle

from gk import pools
from gk.backup.schedule import STALE_DAYS
from gk.locale import N_
from gk.web import flash, forms, i18n
from gk.web.app import Web

log = logging.getLogger("gk.web")


def _backup_dir(web: Web) -> Path:
    """Where the archives are: the configured target (``[backup] target``), else DATA_DIR/backup."""
    from gk.backup import schedule

    return schedule.target_of(web.data_dir, web.ctx.config.backup)


def _kept(web: Web) -> dict[str, Path]:
    """The archives a download link may name: the target's and those left in DATA_DIR/backup."""
    from gk.backup import archive, schedule

    dirs = {_backup_dir(web), schedule.default_target(web.data_dir)}
    return {p.name: p for d in dirs for p, _ in archive.archives(d)}


def _summary(web: Web) -> dict[str, Any]:
    """The schedule's state for the page (blocking: reads the status file, stats the target)."""
    from gk.backup import archive, schedule
    from gk.backup.service import BackupService

    cfg = web.ctx.config.backup
    svc = web.ctx.services.maybe(BackupService)
    # computed here, not the service's own next_at: right after a save, the service may not have
    # woken yet to compute it (same function, same config, same zone, same slot last served)
    st = schedule.read_status(web.data_dir)
    found = schedule.next_slot(time.time(), schedule.zone_of(web.data_dir), cfg, st.slot, st.slot_at)
    next_at = found[0] if found else None
    out = schedule.view(web.data_dir, cfg, time.time(), next_at)
    out["running"] = bool(svc is not None and svc.running)
    out["archives"] = [
        {"name": p.name, "size_mb": f"{st.st_size / 1e6:.1f}", "when": st.st_mtime}
        for p, st in archive.archives(_backup_dir(web))
    ]
    return out


def page(
    web: Web, errors: dict[str, str] | None = None, form: dict[str, str] | None = None, download_error: str = ""
) -> str:
    from gk import localtime
    from gk.config import WEEKDAYS

    info = pools.run_io(_summary, web)
    lang = web.lang()

    def when(ts: float | None) -> str:
        return i18n.format_datetime(localtime.local(web.data_dir, ts) if ts else None, lang, seconds=False)

    for item in info["archives"]:
        item["when"] = when(item["when"])
    status = info["status"]
    cfg = web.ctx.config.backup
    shown = form or {
        "schedule": cfg.schedule,
        "time": cfg.time,
        "weekday": cfg.weekday,
        "target": cfg.target,
        "keep": str(cfg.keep),
    }
    free = info["free"]
    kw: dict[str, Any] = dict(flash.take(web))
    return web.render(
        "admin/backup.html",
        archives=info["archives"],
        backup_dir=info["target"],
        data_dir=str(web.data_dir),
        last_run=when(status.last_run) if status.last_run else "",
        last_ok=status.ok,
        last_detail=status.detail,
        last_target=status.target,
        space_needed=_size(status.space_needed) if status.space_needed else "",
        space_free=_size(status.space_free),
        last_good=when(info["last_good"]) if info["last_good"] else "",
        next_run=when(info["next"]) if info["next"] else "",
        running=info["running"],
        target=info["target"],
        free=f"{free / 1e9:.1f} GB" if free is not None else "",
        warnings=info["warnings"],
        stale_days=STALE_DAYS,
        form=shown,
        weekdays=WEEKDAYS,
        errors=errors or {},
        download_error=download_error,
        **kw,
    )


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def _check_target(path: str) -> str | None:
    """An error for a target the server cannot write to (None: fine)."""
    p = Path(path)
    if not p.is_dir():
        return N_("No such directory on the box (is the drive plugged in and mounted?). GK does not create it.")
    if not os.access(p, os.W_OK | os.X_OK):
        return N_("GK may not write in this directory: give the gk user write access to it.")
    return None


def back_up_now(web: Web) -> str:
    """POST /admin/backup/now: the running server writes an archive into the target now."""
    from gk.backup.service import BackupService

    admin = web.signed_in()
    svc = web.ctx.services.maybe(BackupService)
    if svc is None:
        raise bottle.HTTPError(503, N_("The backup service is not running."))
    if svc.back_up_now():
        log.info("backup into the target asked for by %s", admin.address)
        notice = web.gettext(
            "A backup is being made into {target}; reload this page to see its result.", target=str(_backup_dir(web))
        )
    else:
        notice = web.gettext("A backup is running already.")
    flash.redirect(web, "/admin/backup#status", notice)


def save_schedule(web: Web) -> str:
    """POST /admin/backup/schedule: the automatic backup's settings into gk.toml's ``[backup]``."""
    from gk import config as gkconfig
    from gk import settings
    from gk.config import BACKUP_SCHEDULES, WEEKDAYS

    admin = web.signed_in()
    form = {k: forms.text(k) for k in ("schedule", "time", "weekday", "target", "keep")}
    errors: dict[str, str] = {}
    if form["schedule"] not in BACKUP_SCHEDULES:
        errors["schedule"] = N_("Choose daily, weekly or off.")
    if not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", form["time"]):
        errors["time"] = N_("Enter a time of day such as 03:30.")
    if form["weekday"] not in WEEKDAYS:
        errors["weekday"] = N_("Choose a day of the week.")
    target = form["target"].rstrip("/") if form["target"] != "/" else "/"
    if target and not target.startswith("/"):
        errors["target"] = N_("Enter a full path starting with /, such as /media/usb/gk-backups, or leave it empty.")
    elif target and (problem := pools.run_io(_check_target, target)):
        errors["target"] = problem
    if not form["keep"].isdigit() or not 1 <= int(form["keep"]) <= 1000:
        errors["keep"] = N_("Enter how many archives to keep, from 1 to 1000.")
    if errors:
        bottle.response.status = 400
        return page(web, errors, form)
    values = {
        "schedule": form["schedule"],
        "time": form["time"].zfill(5),
        "weekday": form["weekday"],
        "target": target,
        "keep": int(form["keep"]),
    }
    try:
        settings.of(web.data_dir).set_backup(values)
    except gkconfig.ConfigError as exc:
        log.warning("backup schedule not saved: %s", exc)
        bottle.response.status = 400
        return page(web, {"schedule": str(exc)}, form)
    web.ctx.accounts.record_event(
        "backup_schedule", "web", web.client_ip(), admin.address, f"{values['schedule']} {values['time']} {target}"
    )
    log.info("backup schedule set by %s: %s", admin.address, values)
    flash.redirect(web, "/admin/backup#schedule", web.gettext("Saved: the automatic backup settings."))


def _in_pool(chunks: Generator[bytes, None, None]) -> Iterator[bytes]:
    """``chunks``, each one made in the disk-I/O pool; the generator is closed however the
    download ends (its scratch files go with it)."""
    try:
        while (chunk := pools.run_io(next, chunks, b"")) != b"":
            yield chunk
    finally:
        pools.run_io(chunks.close)


def download_now(web: Web) -> bottle.HTTPResponse | str:
    from gk.backup import archive, schedule
    from gk.context import hostname_of

    admin = web.signed_in()
    host = hostname_of(web.ctx.config)
    name = archive.archive_name(host)
    scratch = schedule.default_target(web.data_dir)
    try:  # the database snapshots are written there while the archive streams: room for them first
        archive.check_scratch_space(web.data_dir, scratch, run=pools.run_io)
    except archive.NoSpace as exc:
        log.warning("backup download refused to %s: %s", admin.address, exc)
        bottle.response.status = 507
        message = web.gettext(
            "Not enough free space on the box to make the backup: while it is downloaded, copies of its "
            "databases are written in {dir}, about {needed}, and {free} are free there. Nothing was written. "
            "Free some space on the box (delete old backups kept on it), then try again.",
            dir=str(scratch),
            needed=_size(exc.needed),
            free=_size(exc.free),
        )
        return page(web, download_error=message)
    web.ctx.accounts.record_event("backup_downloaded", "web", web.client_ip(), admin.address, name)
    log.info("backup download started by %s: %s", admin.address, name)
    chunks = archive.stream(web.data_dir, schedule.default_target(web.data_dir), host)
    headers = {
        "Content-Type": "application/x-tar",
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    return bottle.HTTPResponse(_in_pool(chunks), status=200, headers=headers)


def download_kept(web: Web, name: str) -> bottle.HTTPResponse:

    path = pools.run_io(_kept, web).get(name)
    if path is None:  # only a name the listing shows: nothing else of the data dir is reachable
        raise bottle.HTTPError(404, N_("Not found"))
    admin = web.signed_in()
    web.ctx.accounts.record_event("backup_downloaded", "web", web.client_ip(), admin.address, name)
    headers = {
        "Content-Type": "application/gzip" if name.endswith(".gz") else "application/x-tar",
        "Content-Disposition": f'attachment; filename="{name}"',
        "Content-Length": str(path.stat().st_size),
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    return bottle.HTTPResponse(_in_pool(_read(path)), status=200, headers=headers)


def _read(path: Path) -> Generator[bytes, None, None]:
    from gk.backup.archive import CHUNK

    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk
