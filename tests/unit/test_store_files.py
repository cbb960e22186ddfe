"""``gk.store.files``: durable writes, and the close the mailbox's pool threads use."""

from __future__ import annotations

import os
import posix
from pathlib import Path

from gevent import monkey

from gk.store import files


def test_close_fd_is_the_close_gevent_did_not_patch(tmp_path: Path) -> None:
    """gevent's patched os.close runs an fcntl and an fstat before a regular file's close (each
    a system call that gives the GIL away); the mailbox's reads close with the original."""
    assert files.close_fd is posix.close
    assert files.close_fd is monkey.get_original("os", "close")
    path = tmp_path / "f"
    path.write_bytes(b"x")
    fd = os.open(path, os.O_RDONLY)
    files.close_fd(fd)
    try:
        os.fstat(fd)
    except OSError:
        pass
    else:
        raise AssertionError("the descriptor is still open")


def test_write_durable_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "state"
    files.write_durable(path, b"one")
    files.write_durable(path, b"two", mode=0o640)
    assert path.read_bytes() == b"two"
    assert path.stat().st_mode & 0o777 == 0o640
    assert not path.with_name("state.tmp").exists()
