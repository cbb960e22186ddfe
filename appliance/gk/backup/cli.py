"""``gk backup create|restore|list``.

``create [--to DIR] [--with-models] [--gzip]`` writes one archive (``gk.backup.archive``) while ``gk
serve`` runs, into ``[backup] target`` (``DATA_DIR/backup/`` by default), keeps the newest
``[backup] keep`` there and records the result where the Backup page shows it
(``gk.backup.schedule``). ``gk serve`` makes the same backups on ``[backup] schedule``.
``restore ARCHIVE [--data-dir DIR] [--force]`` checks every file against the archive's manifest
and unpacks it as the data dir, with the server stopped; a data dir that is not empty is moved
aside with ``--force``, never deleted. ``list`` shows the archives in the backup directory.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from gk import clikit
from gk.backup import archive


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="backup_cmd", required=True)
    common = clikit.data_dir_option()
    cr = sub.add_parser("create", parents=[common], help="write a backup archive now (gk serve may run)")
    cr.add_argument(
        "--to", type=Path, default=None, help="directory to write it to (default [backup] target, else DATA_DIR/backup)"
    )
    cr.add_argument("--with-models", action="store_true", help="include the AI models (big; downloadable again)")
    cr.add_argument(
        "--gzip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="gzip the archive (.tar.gz; default [backup] compress)",
    )
    re = sub.add_parser("restore", parents=[common], help="verify an archive and unpack it as the data dir")
    re.add_argument("archive", type=Path)
    re.add_argument("--force", action="store_true", help="replace a data dir that is not empty (moved aside)")
    sub.add_parser("list", parents=[common], help="the archives in the backup directory")


def handle(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir)
    try:
        if args.backup_cmd == "create":
            return create(args, data_dir)
        if args.backup_cmd == "restore":
            return restore(args, data_dir)
        return list_archives(args, data_dir)
    except archive.BackupError as exc:
        return clikit.fail(str(exc))


def create(args: argparse.Namespace, data_dir: Path) -> int:
    from gk.backup import schedule
    from gk.context import hostname_of

    if not (data_dir / "gk.toml").exists() and not (data_dir / "accounts.sqlite3").exists():
        return clikit.fail(f"{data_dir}: no GK data here (no gk.toml, no accounts); pass --data-dir")
    cfg = clikit.load(args)
    dest = args.to or schedule.target_of(data_dir, cfg.backup)
    configured = args.to is None
    started = time.monotonic()
    try:
        path = archive.create(
            data_dir,
            dest,
            hostname_of(cfg),
            args.with_models,
            keep=cfg.backup.keep,
            make_dest=not (configured and cfg.backup.target),
            compress=cfg.backup.compress == "gzip" if args.gzip is None else args.gzip,
        )
    except (archive.BackupError, OSError) as exc:
        if configured:
            space = (exc.needed, exc.free) if isinstance(exc, archive.NoSpace) else (0, 0)
            schedule.record(data_dir, False, str(exc), dest, 0, time.monotonic() - started, space=space)
        raise archive.BackupError(str(exc)) from exc
    size = path.stat().st_size
    seconds = time.monotonic() - started
    if configured:  # the Backup page's "last backup"; one written elsewhere (--to) is the owner's business
        schedule.record(data_dir, True, path.name, dest, size, seconds)
    store = clikit.accounts(args)
    try:
        store.record_event("backup_made", "cli", "", "", path.name)
    finally:
        store.db.close()
    print(f"{path}\t{size / 1e6:.1f} MB\t{seconds:.1f}s")
    print("it holds every password hash, key and message of this box: keep it somewhere safe")
    return 0


def restore(args: argparse.Namespace, data_dir: Path) -> int:
    info, moved = archive.restore(args.archive, data_dir, args.force)
    print(
        f"restored {args.archive} (GK {info.get('gk_version')}, {info.get('host')}, {info.get('created')}) into {data_dir}"
    )
    if moved is not None:
        print(f"the previous data dir is kept as {moved}: remove it once the box works")
    return 0


def list_archives(args: argparse.Namespace, data_dir: Path) -> int:
    from gk.backup import schedule

    cfg = clikit.load(args)
    where = schedule.target_of(data_dir, cfg.backup)
    found = archive.archives(where)
    if not found:
        print(f"no backups in {where}; make one with `gk backup create`")
    for path, st in found:
        when = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(st.st_mtime))
        print(f"{path.name}\t{st.st_size / 1e6:.1f} MB\t{when}")
    return 0
