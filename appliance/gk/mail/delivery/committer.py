"""Group commit of Maildir publications: many concurrent deliveries share directory fsyncs.

A delivery writes and fsyncs its file in ``tmp/`` (in gevent's native threadpool, so
concurrent deliveries' fsyncs overlap and the kernel's journal batches them), then hands it to
the ``GroupCommitter``. One committer greenlet takes every file waiting at that moment, renames
each into its ``new/`` and fsyncs each distinct ``new/`` directory once — in one threadpool
call — then wakes every waiting delivery. While one batch is on disk the next one gathers, so
under load N deliveries cost far fewer than N directory fsyncs; an idle server commits a single
message at once (no added latency, no timers).

Nothing appears in ``new/`` before its file is durable, and no caller returns (and so no SMTP
``250`` is sent) before the rename and the directory fsync of its batch are done.
Cost: one greenlet and a list of pending paths; no buffering of message data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import gevent
import gevent.event

from gk.mail.mailbox import maildir


@dataclass
class _Job:
    tmp: Path
    maildir: Path
    result: gevent.event.AsyncResult = field(default_factory=gevent.event.AsyncResult)


def _commit_batch(jobs: list[tuple[Path, Path]]) -> list[Path | BaseException]:
    """Rename each tmp file into new/ and fsync every touched new/ once (runs in a thread)."""
    out: list[Path | BaseException] = []
    dirs: set[Path] = set()
    for tmp, md in jobs:
        try:
            size = tmp.stat().st_size
            final = md / "new" / f"{tmp.name},S={size}"
            os.rename(tmp, final)
            dirs.add(md / "new")
            out.append(final)
        except OSError as exc:
            out.append(exc)
    failed: set[Path] = set()
    for d in dirs:
        try:
            maildir.fsync_dir(d)
        except OSError:
            failed.add(d)
    if failed:
        out = [OSError(f"fsync of {r.parent} failed") if isinstance(r, Path) and r.parent in failed else r for r in out]
    return out


class GroupCommitter:
    def __init__(self) -> None:
        self._pending: list[_Job] = []
        self._wake = gevent.event.Event()
        self._worker: gevent.Greenlet | None = None
        self.batches = 0
        self.committed = 0

    def publish(self, tmp: Path, md: Path) -> Path:
        """Move a durable tmp file into ``md/new/``; returns once its directory entry is on disk."""
        job = _Job(tmp, md)
        self._pending.append(job)
        if self._worker is None or self._worker.dead:
            self._worker = gevent.spawn(self._run)
        self._wake.set()
        return job.result.get()

    def _run(self) -> None:
        pool = gevent.get_hub().threadpool
        while True:
            self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    results = pool.apply(_commit_batch, ([(j.tmp, j.maildir) for j in batch],))
                except BaseException as exc:
                    for job in batch:
                        job.result.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
                    continue
                self.batches += 1
                for job, res in zip(batch, results, strict=True):
                    if isinstance(res, BaseException):
                        job.result.set_exception(res)
                    else:
                        self.committed += 1
                        job.result.set(res)
