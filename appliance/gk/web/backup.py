"""Admin page "Backup" (``/admin/backup``): download a backup of the whole box now, the archives
kept on the box (``gk backup create``, ``DATA_DIR/backup``) with their download links, and how to
restore one (a command: the server must be stopped for it).

"Download a backup now" (a POST: CSRF-checked, admin-only) streams the archive of
``gk.backup.archive`` straight to the browser as it is made: nothing but the database snapshots
(deleted as soon as sent) is written on the box, so it works on a nearly full SD card. Each
chunk is made in the disk-I/O pool (file reads, SQLite's backup step), never on the hub. A
download cut short has no manifest at its end and ``gk backup restore`` refuses it.
Both downloads are recorded in the security events (``backup_downloaded``).
Cost: nothing until an admin opens the page; a download holds one 256 KiB chunk at a time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Iterator
from pathlib import Path

import bottle

from gk import pools
from gk.locale import N_
from gk.web.app import Web

log = logging.getLogger("gk.web")


def _backup_dir(web: Web) -> Path:
    return web.data_dir / "backup"


def page(web: Web) -> str:
    from gk.backup import archive

    found = [
        {"name": p.name, "size_mb": f"{st.st_size / 1e6:.1f}", "when": time.gmtime(st.st_mtime)}
        for p, st in archive.archives(_backup_dir(web))
    ]
    for item in found:
        item["when"] = time.strftime("%Y-%m-%d %H:%M UTC", item["when"])  # type: ignore[arg-type]
    return web.render("admin/backup.html", archives=found, backup_dir=str(_backup_dir(web)), data_dir=str(web.data_dir))


def _in_pool(chunks: Generator[bytes, None, None]) -> Iterator[bytes]:
    """``chunks``, each one made in the disk-I/O pool; the generator is closed however the
    download ends (its scratch files go with it)."""
    try:
        while (chunk := pools.run_io(next, chunks, b"")) != b"":
            yield chunk
    finally:
        pools.run_io(chunks.close)


def download_now(web: Web) -> bottle.HTTPResponse:
    from gk.backup import archive
    from gk.context import hostname_of

    admin = web.signed_in()
    host = hostname_of(web.ctx.config)
    name = archive.archive_name(host)
    web.ctx.accounts.record_event("backup_downloaded", "web", web.client_ip(), admin.address, name)
    log.info("backup download started by %s: %s", admin.address, name)
    chunks = archive.stream(web.data_dir, _backup_dir(web), host)
    headers = {
        "Content-Type": "application/x-tar",
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    return bottle.HTTPResponse(_in_pool(chunks), status=200, headers=headers)


def download_kept(web: Web, name: str) -> bottle.HTTPResponse:
    from gk.backup import archive

    kept = {p.name: p for p, _ in archive.archives(_backup_dir(web))}
    path = kept.get(name)
    if path is None:  # only a name the listing shows: nothing else of the data dir is reachable
        raise bottle.HTTPError(404, N_("Not found"))
    admin = web.signed_in()
    web.ctx.accounts.record_event("backup_downloaded", "web", web.client_ip(), admin.address, name)
    headers = {
        "Content-Type": "application/x-tar",
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
