"""Durable file writes for small state files (keys, certificates, secrets, config).

``write_durable`` writes to ``<name>.tmp`` with the given mode, fsyncs it, renames it over the
target and fsyncs the directory: after it returns the new content survives a power cut, and
a crash at any point leaves either the old file or the new one, never a half-written one.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from posix import close as close_fd

SERVE_LOCK = "serve.lock"  # gk serve holds an exclusive flock on it while it runs

# ``close_fd``: os.close as it is before gevent patches it. gevent's own (for descriptors a hub
# may watch) costs an fcntl and an fstat first — two more system calls, each giving the GIL
# away and waiting to get it back — on every file a pool thread reads (issue 11: a cold
# BODYSTRUCTURE's file read). For regular files and directories only.
__all__ = ["SERVE_LOCK", "close_fd", "fsync_dir", "write_durable"]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        close_fd(fd)


def write_durable(path: Path, data: bytes, mode: int = 0o600, owner: tuple[int, int] | None = None) -> None:
    """``owner``: (uid, gid) the new file gets (root replacing a file another user reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # O_CREAT's mode is masked by the umask; an existing tmp keeps its own
        if owner is not None:
            os.chown(tmp, *owner)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def hold_serve_lock(data_dir: Path) -> int | None:
    """Take ``DATA_DIR/serve.lock`` for this process (``gk serve``): the open descriptor, kept
    until the process ends (the kernel drops the lock then, even after kill -9), or None when
    another process holds it. Commands that must not run beside a server (``gk backup restore``)
    ask ``serve_lock_held``."""
    fd = os.open(data_dir / SERVE_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        close_fd(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def serve_lock_held(data_dir: Path) -> int | None:
    """The pid of the ``gk serve`` holding ``data_dir`` (0 if it wrote none), or None: not running."""
    try:
        fd = os.open(data_dir / SERVE_LOCK, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        return int(text) if text.isdigit() else 0
    finally:
        close_fd(fd)
    return None
