"""Group commit of Maildir deliveries: one threadpool call and two journal commits per batch.

Deliveries hand their Maildir file to the ``GroupCommitter``: either the finished bytes (every
message that stayed in memory, i.e. up to 64 KiB — most mail) or a tmp file the caller already
wrote and fsynced (big messages, copied by the kernel). One committer greenlet takes every job
waiting at that moment and makes the whole batch durable in ONE call into gevent's native
threadpool (the hub never waits on the disk), in this order:

1. write each in-memory message into its folder's ``tmp/`` (no fsync per file);
2. ``syncfs(2)`` on the Maildir filesystem: the data of every file of the batch is on disk
   (one writeback + one journal commit for the batch, instead of one fsync per file). A batch
   of ONE in-memory message is ``fdatasync``-ed instead: as cheap for one file, and an idle
   server then never waits on other programs' dirty pages;
3. rename each file into ``new/`` (``<name>,S=<size>``) — only now, so a crash at any moment
   never leaves a partial file in ``new/``: the rename is made durable after the data;
4. make the renames durable: ``fsync`` of the ``new/`` directory when the batch touched one
   folder, else one more ``syncfs`` (a second directory fsync would cost a device cache flush
   of its own on ext4).

Only then are the waiting deliveries woken — and only then does SMTP say ``250``. While one
batch is on disk the next one gathers (leader/follower, no timer): an idle server commits a
single message at once, a busy one amortizes two journal commits over every message that
arrived meanwhile. (Two batches in flight at once were measured too: no faster, more CPU.)

Why syncfs and not an fsync per file: measured here (ext4), N files fdatasync-ed one after the
other cost N device flushes even when one journal commit covered them all, and concurrent
fsyncs need a native thread per file (GIL hand-offs: ~80 futex calls and ~1.5 ms of system CPU
per message under load, against ~19 and ~0.4 ms with this scheme). The price: syncfs also
writes back other programs' dirty pages on the same filesystem (on the board GK is the only
writer; on a shared machine a batch can wait for a neighbour's writes). ``syncfs`` reports
writeback errors since Linux 5.8 for errors after the fd was opened, so the fd is opened before
the batch is written. Without syncfs (non-Linux) each file gets an ``fdatasync``. Files left in
``tmp/`` by a crash are removed at start (``gk.server``).

Cost: one greenlet, a list of pending jobs and the bytes of one batch's messages (each at most
the in-memory threshold, 64 KiB); no per-message thread hand-off.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass, field
from pathlib import Path

import gevent
import gevent.event

from gk import pools
from gk.mail.mailbox import maildir
from gk.store.files import close_fd

_libc = ctypes.CDLL(None, use_errno=True)  # the C library already loaded (no ldconfig lookup)
_syncfs = getattr(_libc, "syncfs", None)
if _syncfs is not None:
    _syncfs.argtypes = [ctypes.c_int]
    _syncfs.restype = ctypes.c_int


@dataclass
class _Job:
    maildir: Path
    data: bytes | None = None  # the whole file, written by the batch
    tmp: Path | None = None  # or a tmp file the caller wrote and fsynced already
    result: Path | BaseException | None = None


@dataclass
class _Batch:
    jobs: list[_Job]
    done: gevent.event.Event = field(default_factory=gevent.event.Event)


def syncfs(fd: int) -> None:
    """Flush every dirty page and commit the journal of the filesystem holding ``fd``."""
    if _syncfs is None:
        os.sync()
        return
    if _syncfs(fd) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"syncfs: {os.strerror(err)}")


def _write_tmp(md: Path, data: bytes, sync: bool) -> Path:
    tmp = md / "tmp" / maildir.unique_name()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if sync:
            os.fdatasync(fd)
    except BaseException:
        close_fd(fd)
        tmp.unlink(missing_ok=True)
        raise
    close_fd(fd)
    return tmp


def _sync_all(fds: dict[int, int]) -> OSError | None:
    for fd in fds.values():
        try:
            syncfs(fd)
        except OSError as exc:
            return exc
    return None


def _fail(job: _Job, exc: BaseException) -> None:
    job.result = exc
    if job.data is not None and job.tmp is not None:
        job.tmp.unlink(missing_ok=True)


def commit_batch(jobs: list[_Job]) -> None:
    """Write, sync, rename and sync a batch (runs in a native thread); sets each job's result."""
    # one file alone is synced by itself (an idle server never flushes other programs' dirty
    # pages); two or more by one syncfs (serial fdatasyncs would cost a device flush each)
    per_file = _syncfs is None or sum(j.data is not None for j in jobs) == 1
    fds: dict[int, int] = {}  # st_dev -> an open directory fd on that filesystem
    known: set[Path] = set()  # Maildirs whose tmp/ exists and whose filesystem has an fd
    try:
        for job in jobs:
            md = job.maildir
            try:
                if md not in known:
                    tmp_dir = md / "tmp"
                    try:
                        dev = os.stat(tmp_dir).st_dev
                    except FileNotFoundError:
                        maildir.ensure_maildir(md)
                        dev = os.stat(tmp_dir).st_dev
                    if dev not in fds:  # opened before the writes: syncfs reports errors seen after open
                        fds[dev] = os.open(tmp_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                    known.add(md)
                if job.data is not None:
                    job.tmp = _write_tmp(md, job.data, per_file)
            except OSError as exc:
                _fail(job, exc)
        live = [j for j in jobs if j.result is None]
        if not per_file and any(j.data is not None for j in live):
            err = _sync_all(fds)
            if err is not None:
                for job in live:
                    _fail(job, err)
                return
        dirs: set[Path] = set()
        for job in live:
            if job.result is not None:
                continue
            assert job.tmp is not None
            try:
                size = len(job.data) if job.data is not None else os.stat(job.tmp).st_size
                final = job.maildir / "new" / f"{job.tmp.name},S={size}"
                os.rename(job.tmp, final)
                dirs.add(final.parent)
                job.result = final
            except OSError as exc:
                _fail(job, exc)
        renamed = [j for j in live if isinstance(j.result, Path)]
        try:
            if len(dirs) == 1:
                maildir.fsync_dir(next(iter(dirs)))
            elif dirs:
                err = _sync_all(fds) if _syncfs is not None else None
                if err is not None:
                    raise err
                if _syncfs is None:
                    for d in dirs:
                        maildir.fsync_dir(d)
        except OSError as exc:
            # the renames may or may not be on disk: the caller answers 4xx, the sender retries
            for job in renamed:
                job.result = OSError(f"sync of {job.result} failed: {exc}")
    finally:
        for fd in fds.values():
            close_fd(fd)


class GroupCommitter:
    def __init__(self) -> None:
        self._pending: list[_Batch] = []
        self._wake = gevent.event.Event()
        self._worker: gevent.Greenlet | None = None
        self.batches = 0
        self.committed = 0

    def publish_data(self, items: list[tuple[Path, bytes]]) -> list[Path | BaseException]:
        """Write each ``(maildir, file bytes)`` durably into its ``new/``; one result per item."""
        return self._submit([_Job(md, data=data) for md, data in items])

    def publish(self, tmp: Path, md: Path) -> Path:
        """Move a durable tmp file into ``md/new/``; returns once its directory entry is on disk."""
        (result,) = self._submit([_Job(md, tmp=tmp)])
        if isinstance(result, BaseException):
            raise result
        return result

    def _submit(self, jobs: list[_Job]) -> list[Path | BaseException]:
        batch = _Batch(jobs)
        self._pending.append(batch)
        if self._worker is None or self._worker.dead:
            self._worker = gevent.spawn(self._run)
        self._wake.set()
        batch.done.wait()
        return [j.result if j.result is not None else RuntimeError("not committed") for j in jobs]

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            while self._pending:
                batches, self._pending = self._pending, []
                jobs = [j for b in batches for j in b.jobs]
                try:
                    pools.run_io(commit_batch, jobs)
                except BaseException as exc:
                    for job in jobs:
                        if job.result is None:
                            job.result = exc if isinstance(exc, Exception) else RuntimeError(str(exc))
                self.batches += 1
                self.committed += sum(isinstance(j.result, Path) for j in jobs)
                for b in batches:
                    b.done.set()
