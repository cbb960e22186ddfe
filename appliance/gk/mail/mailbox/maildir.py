"""Maildir primitives: layout, unique names, durable delivery (tmp → new, fsync before ack).

Layout: ``DATA_DIR/mail/<address>/Maildir/`` is INBOX; other folders are Maildir++
subfolders ``.Name`` (``.Sent``, ``.Drafts``, ``.Trash``, ``.Junk``, ``.Archive``; a child
``A/B`` is ``.A.B``). A file is written in ``tmp/``, fsynced, renamed into ``new/`` and the
directory fsynced — only then may SMTP say ``250``. Files left in ``tmp/`` by a crash are
removed at start (``clean_tmp``).
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from pathlib import Path

from gk.store.files import fsync_dir

_counter = itertools.count()
_HOST = socket.gethostname().replace("/", "\\057").replace(":", "\\072")


def user_root(mail_root: Path, address: str) -> Path:
    return mail_root / address / "Maildir"


def folder_path(mail_root: Path, address: str, folder: str) -> Path:
    root = user_root(mail_root, address)
    if folder.upper() == "INBOX":
        return root
    return root / ("." + folder.replace("/", "."))


def ensure_maildir(path: Path) -> Path:
    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


def unique_name() -> str:
    now = time.time()
    sec = int(now)
    usec = int((now - sec) * 1_000_000)
    # zero-padded microseconds: names sort in creation order (ls, tools and tests read them so)
    return f"{sec}.M{usec:06d}P{os.getpid()}Q{next(_counter)}.{_HOST}"


def write_tmp(maildir: Path, chunks, *, sync: bool = True) -> Path:  # type: ignore[no-untyped-def]
    """Write ``chunks`` (an iterable of bytes) to a new file in ``tmp/``; fsync it."""
    ensure_maildir(maildir)
    tmp = maildir / "tmp" / unique_name()
    with open(tmp, "xb") as f:
        for chunk in chunks:
            f.write(chunk)
        f.flush()
        if sync:
            os.fsync(f.fileno())
    return tmp


def publish_tmp(maildir: Path, tmp: Path, *, sync_dir: bool = True) -> Path:
    """Move a finished tmp file into ``new/`` (with ``,S=<size>``); fsync the directory."""
    size = tmp.stat().st_size
    final = maildir / "new" / f"{tmp.name},S={size}"
    os.rename(tmp, final)
    if sync_dir:
        fsync_dir(maildir / "new")
    return final


def deliver(maildir: Path, chunks) -> Path:  # type: ignore[no-untyped-def]
    """Write and publish one message durably; returns its path in ``new/``."""
    tmp = write_tmp(maildir, chunks)
    try:
        return publish_tmp(maildir, tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def clean_tmp(maildir: Path, older_than: float = 0.0) -> int:
    """Remove files a crash left in ``tmp/`` (never acknowledged, so never promised)."""
    removed = 0
    tmp = maildir / "tmp"
    if not tmp.is_dir():
        return 0
    limit = time.time() - older_than
    for entry in os.scandir(tmp):
        try:
            if entry.is_file() and entry.stat().st_mtime <= limit:
                os.unlink(entry.path)
                removed += 1
        except FileNotFoundError:
            pass
    return removed


def all_maildirs(mail_root: Path):  # type: ignore[no-untyped-def]
    """Every Maildir (INBOX and subfolders) of every user under ``mail_root``."""
    if not mail_root.is_dir():
        return
    for user in mail_root.iterdir():
        root = user / "Maildir"
        if not root.is_dir():
            continue
        yield root
        for sub in root.iterdir():
            if sub.name.startswith(".") and sub.is_dir() and (sub / "cur").is_dir():
                yield sub
