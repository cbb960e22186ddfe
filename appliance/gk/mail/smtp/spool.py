"""Where DATA goes while it arrives: memory for small messages, a spool file for big ones.

Most mail is small: a message up to ``threshold`` bytes (64 KiB) stays in one buffer and is
handed to delivery as bytes — no spool file is created, written or removed. Beyond that the
buffer is flushed, ``threshold`` bytes at a time, into ``DATA_DIR/spool/smtp-in/<name>`` by
the disk-I/O pool (``gk.pools``): on ext4 a file create or extend can wait for a journal commit
(every fsync of a concurrent delivery makes one), and that wait must never stall the hub.
Memory per session in DATA: at most ``threshold`` + one read chunk, whatever the message size.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from gk import pools

DEFAULT_THRESHOLD = 64 * 1024


class SpoolWriter:
    """``path``: the spool file's, or a function naming it when it is first needed (a message
    that stays in memory never asks for a name)."""

    def __init__(self, path: Path | Callable[[], Path], threshold: int = DEFAULT_THRESHOLD):
        self._path = path
        self.threshold = threshold
        self.buffer = io.BytesIO()
        self._file: BinaryIO | None = None

    @property
    def path(self) -> Path:
        if not isinstance(self._path, Path):
            self._path = self._path()
        return self._path

    def write(self, data: bytes) -> None:
        self.buffer.write(data)

    @property
    def needs_flush(self) -> bool:
        return self.buffer.tell() >= self.threshold

    def _write_file(self, data: bytes) -> None:
        if self._file is None:
            self._file = open(self.path, "xb")
        self._file.write(data)

    def flush(self) -> None:
        """Move the buffer into the spool file (blocks the calling greenlet, not the hub)."""
        data = self.buffer.getvalue()
        self.buffer = io.BytesIO()
        pools.run_io(self._write_file, data)

    def finish_in_memory(self) -> bytes | None:
        """The message when it never left memory (no file I/O, callable from a coroutine)."""
        return self.buffer.getvalue() if self._file is None else None

    def finish(self) -> Path | bytes:
        """The whole message: bytes when it stayed small, else the closed spool file's path."""
        if self._file is None:
            return self.buffer.getvalue()
        self.flush()
        pools.run_io(self._file.close)
        return self.path

    def discard(self) -> None:
        if self._file is not None:
            pools.run_io(_close_and_remove, self._file, self.path)
            self._file = None
        self.buffer = io.BytesIO()


def _close_and_remove(f: BinaryIO, path: Path) -> None:
    try:
        f.close()  # flushes what is buffered: fails again on a full disk, and still closes
    except OSError:
        pass
    finally:
        _unlink(path)


def remove(message: Path | bytes) -> None:
    """Remove a finished spool file (no-op for in-memory messages); blocks only the greenlet."""
    if isinstance(message, Path):
        pools.run_io(_unlink, message)


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
