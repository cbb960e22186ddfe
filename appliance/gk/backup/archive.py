"""The backup archive: written as a stream while ``gk serve`` runs, verified and unpacked by restore.

Layout (a plain POSIX tar, PAX headers for long names):

- ``gk-backup/info.json`` first: format, GK version, host, time, whether ``models/`` is in, the
  databases this GK owns and that list's generation (``gk.backup.schemas``: restore refuses a
  database a newer GK added);
- ``data/<path>`` for each directory, file and symlink of the data dir, in two passes: every
  SQLite database first, then everything else. A database is a snapshot made by SQLite's online
  backup API (``sqlite3.Connection.backup``, one step: one read transaction, so a consistent
  state even while the server writes; never a copy of a WAL database's files) into a scratch
  file that is deleted once streamed. The Maildir files come after the mail indexes: a message
  delivered during the backup is a file the index does not know yet, and one expunged during it
  is an index row without its file — the store's ``sync`` at the next start reconciles both
  (UIDs and flags are in the file names). A file renamed while it is copied (a flag change)
  is looked up again under its new name; one gone for good (expunged) is simply absent.
- ``gk-backup/manifest.jsonl`` last: one line ``[path, size, sha256]`` per file, in archive
  order, then a summary line (file count, bytes, each database's ``user_version``). An
  archive cut short (kill -9, a full disk, a dropped download) has no manifest, and restore
  refuses it.

Left out: ``backup/`` itself, ``models/`` (unless asked), the Maildirs' ``tmp/`` contents (the
directories are kept), SQLite's ``-wal``/``-shm``/``-journal`` files (the snapshot holds their
content), ``serve.lock``, ``index.open`` markers and half-written ``*.tmp`` files.

Memory stays flat: files go through in ``CHUNK`` pieces, the manifest goes to a scratch file as
it grows, and restore compares it line by line with what it unpacked (same order).
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import io
import json
import os
import random
import re
import shutil
import sqlite3
import stat
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from gk import __version__
from gk.backup import schemas
from gk.store.files import SERVE_LOCK, fsync_dir

FORMAT = 1  # the archive format this GK writes; bump it when a change would mislead an older restore
KNOWN_FORMATS = frozenset({1})  # the formats this GK restores (every older one it still understands)
INFO = "gk-backup/info.json"
MANIFEST = "gk-backup/manifest.jsonl"
DATA = "data/"
CHUNK = 256 * 1024
BLOCK = 512
RECORD = 20 * BLOCK
PREFIX = "gk-backup-"
SUFFIX = ".tar"
GZ_SUFFIX = ".tar.gz"  # [backup] compress = "gzip"
SUFFIXES = (SUFFIX, GZ_SUFFIX)
GZIP_LEVEL = 1  # docs/performance.md "Compressed archives": level 1 gets most of the gain
PARTIAL = ".partial"
SQLITE_HEADER = b"SQLite format 3\x00"
SQLITE_NAMES = (".sqlite3", ".sqlite", ".db")
SKIP_NAMES = {SERVE_LOCK, "index.open"}
SKIP_SUFFIXES = ("-wal", "-shm", "-journal", ".tmp", PARTIAL)
TOP_SKIPPED = {"backup"}  # the archives themselves


T = TypeVar("T")


class BackupError(Exception):
    """A backup or restore refused; the message names the file and what to do."""


class NoSpace(BackupError):
    """The target has too little free space for the archive (checked before the run, or the disk
    filled while it was written): ``needed`` and ``free`` in bytes, for the Backup page."""

    def __init__(self, message: str, target: Path, needed: int = 0, free: int = 0):
        super().__init__(message)
        self.target, self.needed, self.free = target, needed, free


# -- what goes in ----------------------------------------------------------------------------


def _is_sqlite(path: Path) -> bool:
    if not path.name.endswith(SQLITE_NAMES):
        return False
    try:
        with open(path, "rb") as f:
            return f.read(16) == SQLITE_HEADER
    except OSError:
        return False


def _walk(
    data_dir: Path, skip_top: set[str], excluded: frozenset[Path] = frozenset()
) -> Iterator[tuple[str, os.DirEntry[str] | None]]:
    """(relative path, entry) of each directory (entry None), file and symlink to back up,
    directories before their contents; the directories in ``excluded`` (resolved) and what is
    under them are left out. Big directories (a Maildir's ``cur/``) are streamed from
    ``scandir``, never listed whole."""
    stack = [""]
    while stack:
        rel = stack.pop()
        here = data_dir / rel if rel else data_dir
        maildir = rel and (here / "cur").is_dir() and (here / "new").is_dir()
        subdirs = []
        try:
            it = os.scandir(here)
        except (FileNotFoundError, NotADirectoryError):
            continue  # removed since its parent was listed (a folder deleted meanwhile)
        with it:
            for entry in it:
                child = f"{rel}/{entry.name}" if rel else entry.name
                if not rel and entry.name in skip_top:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if excluded and Path(entry.path).resolve() in excluded:
                        continue
                    if maildir and entry.name == "tmp":
                        yield child, None  # the directory, not its half-delivered files
                    else:
                        subdirs.append(child)
                elif entry.name in SKIP_NAMES or entry.name.endswith(SKIP_SUFFIXES):
                    continue
                else:
                    yield child, entry
        for child in sorted(subdirs, reverse=True):
            yield child, None
            stack.append(child)


@dataclass
class Summary:
    files: int = 0
    bytes: int = 0


class _Writer:
    """Tar members as byte chunks, each file's sha256 into the manifest scratch file."""

    def __init__(self, manifest: IO[str]):
        self.manifest = manifest
        self.summary = Summary()
        self.offset = 0

    def _out(self, data: bytes) -> bytes:
        self.offset += len(data)
        return data

    def header(self, info: tarfile.TarInfo) -> bytes:
        return self._out(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def directory(self, name: str, st: os.stat_result) -> Iterator[bytes]:
        info = tarfile.TarInfo(name + "/")
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, stat.S_IMODE(st.st_mode), int(st.st_mtime)
        yield self.header(info)

    def symlink(self, name: str, target: str, st: os.stat_result) -> Iterator[bytes]:
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.mtime = tarfile.SYMTYPE, target, int(st.st_mtime)
        yield self.header(info)

    def file(self, name: str, f: IO[bytes], st: os.stat_result, record: bool = True) -> Iterator[bytes]:
        """The member ``name`` with the first ``st.st_size`` bytes of ``f`` (a file only ever
        appended to, as ``gk-uidmap``, may grow meanwhile: its size at the stat is what goes in)."""
        size = st.st_size
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, stat.S_IMODE(st.st_mode), int(st.st_mtime)
        yield self.header(info)
        digest = hashlib.sha256()
        left = size
        while left:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                raise BackupError(f"{f.name}: shrank while it was copied (was {size} bytes); run the backup again")
            left -= len(chunk)
            digest.update(chunk)
            yield self._out(chunk)
        if size % BLOCK:
            yield self._out(b"\0" * (BLOCK - size % BLOCK))
        if record:
            self.manifest.write(json.dumps([name, size, digest.hexdigest()]) + "\n")
            self.summary.files += 1
            self.summary.bytes += size

    def end(self) -> Iterator[bytes]:
        closing = 2 * BLOCK
        pad = -(self.offset + closing) % RECORD
        yield self._out(b"\0" * (closing + pad))


def _snapshot(src: Path, scratch: Path) -> tuple[Path, int]:
    """A consistent copy of the SQLite database ``src`` in ``scratch`` (SQLite's online backup,
    one step) and its ``user_version``."""
    fd, name = tempfile.mkstemp(prefix=".gk-backup-", suffix=".sqlite3", dir=scratch)
    os.close(fd)
    tmp = Path(name)
    try:
        source = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=60)
        try:
            target = sqlite3.connect(tmp)
            try:
                source.backup(target)  # pages=-1: every page in one step, one read transaction
                version = int(target.execute("PRAGMA user_version").fetchone()[0])
            finally:
                target.close()
        finally:
            source.close()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, version


def _open_moved(path: Path) -> IO[bytes] | None:
    """A Maildir message renamed since it was listed (a flag change, new/ to cur/): the file of
    the same unique name; None if it is gone (expunged)."""
    base = re.split(r"[:,]", path.name, maxsplit=1)[0]
    for folder in (path.parent, path.parent.parent / "cur"):
        with contextlib.suppress(OSError), os.scandir(folder) as it:
            for entry in it:
                if re.split(r"[:,]", entry.name, maxsplit=1)[0] == base:
                    with contextlib.suppress(FileNotFoundError):
                        return open(entry.path, "rb")
    return None


def stream(
    data_dir: Path,
    scratch: Path,
    host: str,
    with_models: bool = False,
    exclude: tuple[Path, ...] = (),
) -> Generator[bytes, None, None]:
    """The archive of ``data_dir``, chunk by chunk. ``scratch`` holds the database snapshots and
    the manifest while they are written (deleted as soon as streamed)."""
    scratch.mkdir(parents=True, exist_ok=True)
    skip_top = set(TOP_SKIPPED) | (set() if with_models else {"models"})
    excluded = frozenset(p.resolve() for p in (*exclude, scratch))
    manifest_fd, manifest_name = tempfile.mkstemp(prefix=".gk-backup-manifest-", suffix=".jsonl", dir=scratch)
    manifest_path = Path(manifest_name)
    versions: dict[str, int] = {}
    try:
        with os.fdopen(manifest_fd, "w", encoding="utf-8") as manifest:
            w = _Writer(manifest)
            info = {
                "format": FORMAT,
                "gk_version": __version__,
                "host": host,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "with_models": with_models,
                "databases": {"generation": schemas.GENERATION, "owned": schemas.owned()},
            }
            body = json.dumps(info, indent=2).encode()
            yield from _bytes_member(w, INFO, body)
            databases: set[str] = set()
            # pass 1: every database, before the Maildirs its rows describe
            for rel, entry in _walk(data_dir, skip_top, excluded):
                if entry is None or not entry.name.endswith(SQLITE_NAMES) or not entry.is_file(follow_symlinks=False):
                    continue
                if not _is_sqlite(Path(entry.path)):
                    continue
                snap, version = _snapshot(Path(entry.path), scratch)
                try:
                    versions[rel] = version
                    databases.add(rel)
                    with open(snap, "rb") as snapshot:
                        snap_st = os.fstat(snapshot.fileno())
                        src_st = entry.stat(follow_symlinks=False)
                        yield from w.file(DATA + rel, snapshot, _with_mode(snap_st, src_st))
                finally:
                    snap.unlink(missing_ok=True)
            # pass 2: directories, files, symlinks
            moved: set[str] = set()  # files renamed during the copy, under their new names
            st: os.stat_result | None
            for rel, entry in _walk(data_dir, skip_top, excluded):
                path = os.path.join(data_dir, rel)
                if entry is None:
                    with contextlib.suppress(FileNotFoundError):
                        yield from w.directory(DATA + rel, os.stat(path))
                    continue
                if rel in databases:
                    continue
                if DATA + rel in moved:
                    continue  # already in, found under this name when its old one vanished
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    st = None
                if st is not None and stat.S_ISLNK(st.st_mode):
                    yield from w.symlink(DATA + rel, os.readlink(path), st)
                    continue
                if st is not None and not stat.S_ISREG(st.st_mode):
                    continue
                f: IO[bytes] | None
                try:
                    f = open(path, "rb")
                except FileNotFoundError:
                    f = _open_moved(Path(path))
                    if f is None:
                        continue  # expunged while the backup ran
                with f:
                    name = DATA + rel
                    if f.name != path:
                        name = DATA + os.path.relpath(f.name, data_dir)
                        moved.add(name)
                    yield from w.file(name, f, os.fstat(f.fileno()))
            manifest.write(
                json.dumps({"end": True, "files": w.summary.files, "bytes": w.summary.bytes, "schemas": versions})
                + "\n"
            )
        with open(manifest_path, "rb") as m:
            yield from w.file(MANIFEST, m, os.fstat(m.fileno()), record=False)
        yield from w.end()
    finally:
        manifest_path.unlink(missing_ok=True)


def _with_mode(st: os.stat_result, like: os.stat_result) -> os.stat_result:
    """``st`` (a snapshot's size) with the mode and mtime of the database it copies."""
    values = list(st)
    values[stat.ST_MODE] = like.st_mode
    values[stat.ST_MTIME] = like.st_mtime
    return os.stat_result(values)


def _bytes_member(w: _Writer, name: str, data: bytes) -> Iterator[bytes]:

    f = io.BytesIO(data)
    st = os.stat_result((stat.S_IFREG | 0o600, 0, 0, 1, 0, 0, len(data), 0, int(time.time()), 0))
    yield from w.file(name, f, st, record=False)


# -- create, list ----------------------------------------------------------------------------


def archive_name(host: str, when: float | None = None, compress: bool = False) -> str:
    safe = re.sub(r"[^A-Za-z0-9.-]+", "_", host) or "gk"
    return f"{PREFIX}{safe}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(when))}{GZ_SUFFIX if compress else SUFFIX}"


def _write_step(chunks: Generator[bytes, None, None], f: IO[bytes]) -> bool:
    """Make and write the next pieces of the archive, about ``CHUNK`` bytes of them (a tar header
    is 512 bytes: one pool call per piece would cost more in hand-offs than the copying); False
    at the end."""
    written = 0
    while written < CHUNK:
        chunk = next(chunks, b"")
        if not chunk:
            return False
        f.write(chunk)
        written += len(chunk)
    return True


def _direct(fn: Callable[..., T], *args: object) -> T:
    return fn(*args)


def create(
    data_dir: Path,
    dest: Path,
    host: str,
    with_models: bool = False,
    keep: int = 0,
    run: Callable[..., Any] = _direct,
    make_dest: bool = True,
    compress: bool = False,
) -> Path:
    """Write the archive into ``dest`` under a temporary name, fsync it, rename it: a file named
    ``gk-backup-*.tar`` is always complete. Then keep the newest ``keep`` there (0: all).

    ``run(fn, *args)`` runs each blocking step (``gk serve`` passes ``gk.pools.run_io``: one chunk
    made and written per call, so the disk pool is shared with mail, never held for minutes).
    ``make_dest`` False: ``dest`` must exist already (a USB drive's directory: an unmounted drive
    must fail the backup, not fill the SD card below its mount point). ``compress``: gzip the
    archive as it is written (``.tar.gz``), in the same pool calls: the stream stays a stream."""
    if make_dest:
        run(dest.mkdir, 0o700, True, True)
    elif not run(dest.is_dir):
        raise BackupError(f"{dest}: no such directory (a drive not plugged in or not mounted?); GK does not create it")
    est = Estimate(data_dir, with_models, exclude=(dest,), compress=compress)
    while run(est.step):
        pass
    run(check_space, dest, est.needed(), est.ratio if compress else None)
    final = run(_free_name, dest, host, compress)
    partial = dest / f".{final.name}{PARTIAL}"
    chunks = stream(data_dir, dest, host, with_models, exclude=(dest,))
    try:
        f = run(open, partial, "wb")
        out: IO[bytes] = run(_gzip, f) if compress else f
        try:
            while run(_write_step, chunks, out):
                pass
            run(_finish, out, f)
        finally:
            run(_close, out, f, chunks)
        run(os.chmod, partial, 0o600)
        run(os.rename, partial, final)
        run(fsync_dir, dest)
    except BaseException as exc:
        partial.unlink(missing_ok=True)
        if _disk_full(exc):
            kept = len(run(archives, dest))
            raise NoSpace(
                f"{dest}: the disk filled up while the archive was written (about {_mib(est.needed())} "
                f"needed); the unfinished archive was deleted and the {kept} older archive(s) there are kept. "
                "Free some space there or choose a bigger target",
                dest,
                est.needed(),
                run(free_space, dest) or 0,
            ) from exc
        raise
    if keep > 0:
        run(prune, dest, keep)
    return final


# -- free space ------------------------------------------------------------------------------

SPACE_MARGIN = 0.05  # of the estimate, on top of it
SPACE_SLACK = 64 * 1024 * 1024  # and this much more: the box's own writes go on meanwhile
TAR_ENTRY = 3 * BLOCK  # a member's header, a PAX header for a long name, its last block's padding
MANIFEST_LINE = 120  # path, size, sha256 in JSON
ESTIMATE_STEP = 2000  # entries stat()ed per call of ``Estimate.step`` (one disk-pool call)


GZ_SAMPLES = 128  # byte positions drawn over all the data: each one's window is compressed (4 MiB)
GZ_WINDOW = 32 * 1024  # bytes compressed around each: deflate's own window
GZ_SAMPLES_PER_STEP = 16  # windows read and compressed per ``Estimate.step`` call (one pool call)
GZ_Z = 2.0  # the ratio counted: the sample's mean + GZ_Z standard errors + GZ_RATIO_SLACK
GZ_RATIO_SLACK = 0.02
GZ_HEADER_RATIO = 0.1  # tar headers and their padding (mostly NULs) deflate to ~0.035: counted at 0.1
GZ_MAX_RATIO = 1.001  # deflate's worst case (stored blocks): incompressible data grows by ~0.01 %


class _Sampler:
    """``k`` byte positions drawn uniformly and independently over every byte of the files
    added (with replacement: a database that is 90 % of the data gets ~90 % of the draws),
    without knowing the total in advance and with ``k`` entries of memory. A file of ``size``
    bytes, once ``total`` bytes were seen with it, takes each position with probability
    ``size/total``; the usual case (no position moves) costs one random number."""

    def __init__(self, k: int, rng: random.Random):
        self.k, self.rng, self.total = k, rng, 0
        self.picks: list[tuple[str, int, int] | None] = [None] * k  # (path, size, position)

    def add(self, path: str, size: int) -> None:
        if size <= 0:
            return
        self.total += size
        p = size / self.total
        if p < 1.0 and self.rng.random() < (1.0 - p) ** self.k:
            return  # no position moves to this file
        while True:  # at least one moves: draw each, again until one does (the conditional law)
            moved = [i for i in range(self.k) if p >= 1.0 or self.rng.random() < p]
            if moved:
                break
        for i in moved:
            self.picks[i] = (path, size, self.rng.randrange(size))


def _window_ratio(path: str, size: int, position: int) -> float | None:
    """How well the ``GZ_WINDOW`` bytes of ``path`` around ``position`` deflate at
    ``GZIP_LEVEL``, alone (no dictionary from the files before: pessimistic for small mail);
    None when the file is gone or shrank meanwhile."""
    start = max(0, min(position - GZ_WINDOW // 2, size - GZ_WINDOW))
    try:
        with open(path, "rb") as f:
            f.seek(start)
            raw = f.read(GZ_WINDOW)
    except OSError:
        return None
    if not raw:
        return None
    z = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -15)
    return (len(z.compress(raw)) + len(z.flush())) / len(raw)


class Estimate:
    """The size of the archive ``stream`` would write now, from the stat sizes of what it copies
    (a database counts with its ``-wal``: the snapshot holds its pages; the biggest snapshot
    counts twice, as it sits in the target as a scratch file while it is copied), plus the tar
    headers and the manifest. Walked ``ESTIMATE_STEP`` entries per ``step()`` call, so a big
    Maildir does not hold the disk pool.

    ``compress`` (gzip): the file bytes count at ``ratio``, an upper bound of how well they
    deflate, measured on ``GZ_SAMPLES`` windows of ``GZ_WINDOW`` bytes drawn uniformly over
    every byte of the data (so each kind of content weighs what it holds: text mail, base64
    attachments, already-compressed images, database pages), each deflated on its own at the
    archive's level: the sample's mean ratio plus ``GZ_Z`` standard errors plus
    ``GZ_RATIO_SLACK``, never above ``GZ_MAX_RATIO``. The scratch snapshot stays uncompressed.
    Why not the uncompressed size, the safe side: gzip is chosen for a small target (a USB
    stick), and there a check counting 3× the archive refuses every run that would have fitted
    — no backup at all — while an estimate a little short costs one run that fills the disk,
    which is deleted and reported (the older archives are kept)."""

    def __init__(
        self,
        data_dir: Path,
        with_models: bool = False,
        exclude: tuple[Path, ...] = (),
        compress: bool = False,
        rng: random.Random | None = None,
    ):
        skip_top = set(TOP_SKIPPED) | (set() if with_models else {"models"})
        self._entries = _walk(data_dir, skip_top, frozenset(p.resolve() for p in exclude))
        self.bytes = 0
        self.entries = 0
        self.biggest_db = 0
        self.compress = compress
        self.ratio = 1.0  # of the file bytes in the archive (compress: the bound measured)
        self.sample_ratio = 1.0  # the sample's own mean (compress), for the record
        self._sampler = _Sampler(GZ_SAMPLES, rng or random.Random()) if compress else None
        self._walked = False
        self._ratios: list[float] = []
        self._next_pick = 0

    def step(self) -> bool:
        """Stat the next entries (then, with ``compress``, deflate the next sample windows);
        False once all is counted."""
        if self._walked:
            return self._sample_step()
        for _ in range(ESTIMATE_STEP):
            item = next(self._entries, None)
            if item is None:
                self._walked = True
                return self._sampler is not None and self._sample_step()
            rel, entry = item
            self.entries += 1
            if entry is None:
                continue
            try:
                size = entry.stat(follow_symlinks=False).st_size if entry.is_file(follow_symlinks=False) else 0
            except OSError:
                continue  # gone meanwhile
            if self._sampler is not None:
                self._sampler.add(entry.path, size)
            if entry.name.endswith(SQLITE_NAMES):
                with contextlib.suppress(OSError):
                    size += os.stat(entry.path + "-wal").st_size
                self.biggest_db = max(self.biggest_db, size)
            self.bytes += size
        return True

    def _sample_step(self) -> bool:
        assert self._sampler is not None
        picks = self._sampler.picks
        for pick in picks[self._next_pick : self._next_pick + GZ_SAMPLES_PER_STEP]:
            if pick is not None and (r := _window_ratio(*pick)) is not None:
                self._ratios.append(r)
        self._next_pick += GZ_SAMPLES_PER_STEP
        if self._next_pick < len(picks):
            return True
        self.ratio = self._bound()
        return False

    def _bound(self) -> float:
        n = len(self._ratios)
        if n < 2:
            return GZ_MAX_RATIO  # nothing measured: the uncompressed size
        mean = sum(self._ratios) / n
        sd = (sum((r - mean) ** 2 for r in self._ratios) / (n - 1)) ** 0.5
        self.sample_ratio = mean
        return min(GZ_MAX_RATIO, mean + GZ_Z * sd / n**0.5 + GZ_RATIO_SLACK)

    def archive_size(self) -> int:
        headers = self.entries * TAR_ENTRY + RECORD
        if self.compress:
            headers = int(headers * GZ_HEADER_RATIO)
        return int(self.bytes * self.ratio) + headers + self.entries * MANIFEST_LINE

    def needed(self) -> int:
        """The free space a run needs in its target: the archive, the biggest database snapshot
        beside it, and the margin."""
        size = self.archive_size() + self.biggest_db
        return size + int(size * SPACE_MARGIN) + SPACE_SLACK

    def scratch_needed(self) -> int:
        """The free space a streamed archive (the web download: the archive itself goes to the
        browser) needs where its scratch files go: the biggest database snapshot, the manifest
        as it grows, and the same margin."""
        size = self.biggest_db + self.entries * MANIFEST_LINE
        return size + int(size * SPACE_MARGIN) + SPACE_SLACK


def free_space(path: Path) -> int | None:
    """Bytes an unprivileged writer may still use on ``path``'s filesystem (None: unknown)."""
    try:
        vfs = os.statvfs(path)
    except OSError:
        return None
    return vfs.f_bavail * vfs.f_frsize


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MiB"


def check_space(dest: Path, needed: int, ratio: float | None = None) -> None:
    """Refuse to start a backup ``dest`` has no room for (NoSpace). ``ratio``: gzip's, as
    estimated (``Estimate.ratio``), for the message."""
    free = free_space(dest)
    if free is not None and free < needed:
        what = "the data to copy" if ratio is None else f"the data to copy, gzipped to about {ratio:.0%} of its size"
        raise NoSpace(
            f"{dest}: not enough free space for the backup: it needs about {_mib(needed)} "
            f"({what}, plus a margin), {_mib(free)} are free. Nothing was written; free some "
            "space there or choose a bigger target",
            dest,
            needed,
            free,
        )


def check_scratch_space(
    data_dir: Path, scratch: Path, with_models: bool = False, run: Callable[..., Any] = _direct
) -> None:
    """Refuse to start a streamed archive of ``data_dir`` (``stream``: the web download) whose
    scratch files (``scratch``: the database snapshots and the manifest) have no room there
    (NoSpace, before anything is written). Only these count, not the archive: it goes to the
    browser, and a download is how an owner gets a backup off a box whose disk is nearly full.
    ``run``: as ``create``'s (the walk is ``Estimate.step`` calls)."""
    est = Estimate(data_dir, with_models, exclude=(scratch,))
    while run(est.step):
        pass
    needed = est.scratch_needed()
    free = run(free_space, scratch if run(scratch.is_dir) else data_dir)
    if free is not None and free < needed:
        raise NoSpace(
            f"{scratch}: not enough free space for the backup's scratch files: it needs about {_mib(needed)} "
            f"(the biggest database's snapshot and the file list, plus a margin), {_mib(free)} are free. "
            "Nothing was written; free some space on the box",
            scratch,
            needed,
            free,
        )


def _disk_full(exc: BaseException) -> bool:
    """``exc`` is, or follows, a full disk (the close() after a failed write raises again)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen = seen.__context__
    return False


def _free_name(dest: Path, host: str, compress: bool = False) -> Path:
    suffix = GZ_SUFFIX if compress else SUFFIX
    stem = archive_name(host)[: -len(SUFFIX)]
    final = dest / f"{stem}{suffix}"
    n = 1
    while final.exists():  # two in the same second
        final = dest / f"{stem}-{n}{suffix}"
        n += 1
    return final


def _gzip(f: IO[bytes]) -> IO[bytes]:
    """A gzip stream over ``f`` (level ``GZIP_LEVEL``; no name or time in its header)."""
    return gzip.GzipFile(filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=f, mtime=0)  # type: ignore[return-value]


def _close(out: IO[bytes], f: IO[bytes], chunks: Generator[bytes, None, None]) -> None:
    """Close the file (and the gzip stream ``out`` over it) and the archive's generator (its
    scratch files go). After the caller was killed mid-chunk, that chunk's thread may still be
    in the generator: then it is left to end on its own (ValueError, "generator already
    executing")."""
    with contextlib.suppress(ValueError):
        chunks.close()
    try:
        if out is not f:
            out.close()  # after a failed write it fails again: the file is closed all the same
    finally:
        f.close()


def _finish(out: IO[bytes], f: IO[bytes]) -> None:
    if out is not f:
        out.close()  # the gzip trailer; ``f`` stays open
    f.flush()
    os.fsync(f.fileno())


def archives(dest: Path) -> list[tuple[Path, os.stat_result]]:
    """The complete archives in ``dest``, newest first."""
    found = []
    if dest.is_dir():
        for p in dest.iterdir():
            if p.name.startswith(PREFIX) and p.name.endswith(SUFFIXES) and p.is_file():
                found.append((p, p.stat()))
    found.sort(key=lambda t: (t[1].st_mtime, t[0].name), reverse=True)
    return found


def prune(dest: Path, keep: int) -> list[Path]:
    removed = []
    for p, _ in archives(dest)[keep:]:
        p.unlink(missing_ok=True)
        removed.append(p)
    # a backup killed before its rename left its .partial and scratch files: gone after a day
    for p in dest.glob(f".{PREFIX}*"):
        with contextlib.suppress(OSError):
            if p.stat().st_mtime < time.time() - 86400:
                p.unlink()
    return removed


# -- restore ---------------------------------------------------------------------------------


def _safe_rel(name: str, archive: Path) -> str:
    rel = name[len(DATA) :].rstrip("/")
    parts = Path(rel).parts
    if not rel or rel.startswith("/") or ".." in parts:
        raise BackupError(f"{archive}: member {name!r} points outside the data dir; this is not a GK backup")
    return rel


def check_format(archive: Path, info: object) -> None:
    """Refuse an archive whose ``info.json`` names no format, or one this GK does not know (a
    newer GK's: restoring it blindly could drop what this version cannot read)."""
    if not isinstance(info, dict) or "format" not in info:
        raise BackupError(
            f"{archive}: its {INFO} names no format version; it is damaged or not a GK backup, use another one"
        )
    fmt = info["format"]
    made_by = info.get("gk_version") or "an unknown version"
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt < 1:
        raise BackupError(f"{archive}: its format version {fmt!r} is not valid; it is damaged, use another backup")
    if fmt > max(KNOWN_FORMATS):
        raise BackupError(
            f"{archive}: made by GK {made_by} in backup format {fmt}, newer than this GK {__version__} "
            f"understands (format {max(KNOWN_FORMATS)} at most): update GK first, then restore"
        )
    if fmt not in KNOWN_FORMATS:
        raise BackupError(
            f"{archive}: backup format {fmt} (GK {made_by}) is no longer understood by GK {__version__}; "
            "restore it with an older GK, then update"
        )


def unpack(archive: Path, staging: Path) -> dict[str, object]:
    """Unpack ``archive`` into the new directory ``staging``, checking every file against the
    manifest; the archive's info. Raises BackupError naming the first problem."""
    staging.mkdir(mode=0o700)
    computed_fd, computed_name = tempfile.mkstemp(prefix=".gk-restore-", suffix=".jsonl", dir=staging.parent)
    computed_path = Path(computed_name)
    info: dict[str, object] | None = None
    manifest: Path | None = None  # the archive's manifest, copied beside the staging dir
    dirs: list[tuple[Path, tarfile.TarInfo]] = []
    try:
        # "r|*": a .tar or a .tar.gz, read as a stream either way
        with os.fdopen(computed_fd, "w", encoding="utf-8") as computed, tarfile.open(archive, "r|*") as tar:
            while (member := tar.next()) is not None:
                tar.members.clear()  # type: ignore[attr-defined]  # TarFile keeps every member it read: memory would grow with the archive
                if info is None:
                    if member.name != INFO:
                        raise BackupError(f"{archive}: not a GK backup (no {INFO} at its start)")
                    f = tar.extractfile(member)
                    info = json.loads(f.read()) if f else {}
                    check_format(archive, info)
                    continue
                if member.name == MANIFEST:
                    f = tar.extractfile(member)
                    manifest = computed_path.with_name(computed_path.name + ".manifest")
                    with open(manifest, "wb") as out:
                        shutil.copyfileobj(f or io.BytesIO(), out, CHUNK)
                    continue
                if manifest is not None or not member.name.startswith(DATA):
                    raise BackupError(f"{archive}: unexpected member {member.name!r}; this is not a GK backup")
                rel = _safe_rel(member.name, archive)
                target = staging / rel
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    dirs.append((target, member))
                elif member.issym():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(member.linkname, target)
                elif member.isfile():
                    if rel.endswith(SQLITE_NAMES):
                        check_known(archive, rel, info or {})  # before a byte of it is written
                    target.parent.mkdir(parents=True, exist_ok=True)
                    src = tar.extractfile(member)
                    assert src is not None
                    digest = hashlib.sha256()
                    size = 0
                    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "wb") as out:
                        while chunk := src.read(CHUNK):
                            digest.update(chunk)
                            size += len(chunk)
                            out.write(chunk)
                    os.chmod(target, member.mode & 0o7777)
                    os.utime(target, (member.mtime, member.mtime))
                    computed.write(json.dumps([member.name, size, digest.hexdigest()]) + "\n")
                    if rel.endswith(SQLITE_NAMES):
                        check_schema(archive, rel, target)
                else:
                    raise BackupError(f"{archive}: member {member.name!r} is neither a file nor a directory")
        if info is None:
            raise BackupError(f"{archive}: empty, not a GK backup")
        if manifest is None:
            raise BackupError(
                f"{archive}: no manifest at its end: the archive is cut short (a backup or a download "
                "that did not finish); use another one"
            )
        _compare(archive, manifest, computed_path)
        for target, member in reversed(dirs):  # modes last: a read-only directory was still filled
            os.chmod(target, member.mode & 0o7777)
            os.utime(target, (member.mtime, member.mtime))
        return info
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, (tarfile.TarError, EOFError)) and exc.filename:
            raise BackupError(f"{exc.filename}: {exc.strerror}") from exc
        raise BackupError(f"{archive}: damaged or cut short ({exc}); use another backup") from exc
    finally:
        computed_path.unlink(missing_ok=True)
        computed_path.with_name(computed_path.name + ".manifest").unlink(missing_ok=True)


def schema_version(path: Path) -> int:
    """``PRAGMA user_version`` of the SQLite database ``path``, opened read-only (``immutable``:
    no ``-wal``/``-shm`` is made or read beside it)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def check_known(archive: Path, rel: str, info: dict[str, object]) -> None:
    """Refuse the archive when its database ``rel`` is one a newer GK added and this one does
    not know (``schemas.newer_owner``): restored, it would sit unread and that feature's data
    would be lost without a word."""
    made_by = schemas.newer_owner(rel, info)
    if made_by is not None:
        raise BackupError(
            f"{archive}: its database {rel} is not one this GK {__version__} knows: the archive was made "
            f"by a newer GK ({made_by}, database list {_generation(info)}; this GK's is {schemas.GENERATION}) "
            "that added it. Nothing was replaced; update GK first, then restore"
        )


def _generation(info: dict[str, object]) -> object:
    dbs = info.get("databases")
    return dbs.get("generation") if isinstance(dbs, dict) else None


def check_schema(archive: Path, rel: str, path: Path) -> None:
    """Refuse the archive when its database ``rel`` (unpacked at ``path``, in the staging
    directory: nothing of the box is replaced yet) has a schema newer than this GK knows: it
    would not start on it (``SchemaTooNew``). The databases come first in the archive, so this
    refuses before the Maildirs are unpacked."""
    known = schemas.supported(rel)
    if known is None:
        return
    try:
        version = schema_version(path)
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{archive}: its database {rel} cannot be read ({exc}); use another backup") from exc
    if version > known:
        raise BackupError(
            f"{archive}: its database {rel} has schema version {version}, newer than this GK "
            f"{__version__} supports ({known}): the archive was made by a newer GK. Nothing was "
            "replaced; update GK first, then restore"
        )


def _compare(archive: Path, manifest: Path, computed_path: Path) -> None:
    """The manifest against what was unpacked (``computed_path``: the same lines, made while
    unpacking, in archive order), line by line: memory stays flat however many files."""
    with open(manifest, encoding="utf-8") as expected, open(computed_path, encoding="utf-8") as computed:
        summary = None
        for expected_line in expected:
            entry = json.loads(expected_line)
            if isinstance(entry, dict):
                summary = entry
                break
            name, size, sha = entry
            got_line = computed.readline()
            if not got_line:
                raise BackupError(f"{archive}: {name} is listed in the manifest but missing from the archive")
            got_name, got_size, got_sha = json.loads(got_line)
            if got_name != name:
                raise BackupError(f"{archive}: {got_name} is in the archive where the manifest lists {name}")
            if got_size != size or got_sha != sha:
                raise BackupError(
                    f"{archive}: {name} is damaged ({got_size} bytes, sha256 {got_sha[:12]}…; "
                    f"the manifest says {size} bytes, {sha[:12]}…); use another backup"
                )
        if summary is None or not summary.get("end") or expected.readline():
            raise BackupError(f"{archive}: its manifest is cut short or damaged; use another backup")
        extra = computed.readline()
        if extra:
            raise BackupError(f"{archive}: {json.loads(extra)[0]} is in the archive but not in its manifest")


def _chown_like(root: Path, like: Path) -> None:
    """As root: the restored tree belongs to the owner of the data dir it replaces (the
    service's user), not to root."""
    if os.geteuid() != 0:
        return
    st = like.stat()
    if st.st_uid == 0:
        return
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            os.lchown(os.path.join(dirpath, name), st.st_uid, st.st_gid)
    os.chown(root, st.st_uid, st.st_gid)


def restore(archive: Path, data_dir: Path, force: bool = False) -> tuple[dict[str, object], Path | None]:
    """Unpack ``archive`` as ``data_dir`` after verifying it; (the archive's info, where the old
    data dir was moved with ``force``, else None). Refuses while ``gk serve`` holds ``data_dir``."""
    from gk.store.files import serve_lock_held

    if not archive.is_file():
        raise BackupError(f"{archive}: no such file; `gk backup list` shows the archives on this box")
    data_dir = data_dir.absolute()
    if data_dir.exists():
        pid = serve_lock_held(data_dir)
        if pid is not None:
            who = f"gk serve (pid {pid})" if pid else "gk serve"
            raise BackupError(f"{data_dir}: {who} is running on it; stop it first (`systemctl stop gk`), then restore")
        if any(data_dir.iterdir()) and not force:
            raise BackupError(
                f"{data_dir}: not empty; restore into an empty directory (--data-dir), or pass --force "
                "to move this one aside (it is kept, renamed)"
            )
    if archive.absolute().is_relative_to(data_dir):
        raise BackupError(
            f"{archive}: inside the data dir it would replace; copy it elsewhere first (e.g. /root or a USB drive)"
        )
    parent = data_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = parent / f".{data_dir.name}.restoring-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    try:
        info = unpack(archive, staging)
        os.sync()
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    moved: Path | None = None
    if data_dir.exists():
        _chown_like(staging, data_dir)
        if any(data_dir.iterdir()):
            moved = parent / f"{data_dir.name}.before-restore-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
            os.rename(data_dir, moved)
        else:
            data_dir.rmdir()
    os.rename(staging, data_dir)
    fsync_dir(parent)
    return info, moved
