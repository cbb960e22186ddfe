"""The one writer path for new mail into users' Maildirs, and the one place it is announced.

Three kinds of writers put new messages into a user's mailbox:

- local delivery (SMTP inbound, submission to local users): ``MaildirWriter.deliver``, group-
  committed into the folder's ``new/`` (``committer.py``: one threadpool call and two journal
  commits per batch, before SMTP's ``250``);
- bounces (DSNs from the outbound queue): ``MaildirWriter.deliver_bounce``, the same path;
- APPEND (IMAP) and the webmail's copies into Sent and Drafts: ``UserMailbox.append``,
  written into ``cur/`` with its UID and indexed at once (the client is told the UID).

Each is durable before it returns (file and directory fsynced) and announces its folder once
through ``announce_new``: the one publication of new mail on the event bus (``gk.events``). Delivered files
wait in ``new/`` for the index: the first sync of the folder (the IMAP sessions told by the
announcement, the webmail's next page) moves them to ``cur/`` with their UIDs and indexes them
off the SMTP reply's path.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import gevent

from gk import events
from gk.mail.mailbox import maildir
from gk.mail.mailbox.committer import GroupCommitter
from gk.mail.mailbox.message import RawMessage

log = logging.getLogger("gk.mailbox")

_DIRS_KEPT = 1024  # folder directories MaildirWriter remembers


def announce_new(
    address: str, folder: str, uids: tuple[int, ...] = (), modseq: int = 0, paths: tuple[str, ...] = ()
) -> None:
    """Tell the user's sessions that new mail is in ``folder`` (after it is durable): with its
    ``uids`` when it is indexed already (APPEND), else the ``paths`` of files landed behind the
    index (delivery)."""
    if uids:
        events.publish(events.MessagesAdded(address, folder, uids, modseq))
    else:
        events.publish(events.MaildirChanged(address, folder, paths))


@dataclass(frozen=True, slots=True)
class NewCopy:
    """One message for one user's folder. ``message`` is in memory, or a file already fsynced
    in that folder's ``tmp/`` (``MaildirWriter.tmp_dir``), which is renamed into ``new/``."""

    address: str
    folder: str
    message: RawMessage


class MaildirWriter:
    """Durable writes of new mail into ``mail_root``'s Maildirs (one per process: its group
    committer batches every writer's fsyncs)."""

    def __init__(self, mail_root: Path) -> None:
        self.mail_root = mail_root
        self.committer = GroupCommitter()
        # (address, folder) -> its directory: pathlib joins were ~2 % of the hub's time per
        # delivery (py-spy, bench smtp_inbound); a few hundred small entries at most
        self._dirs: dict[tuple[str, str], Path] = {}

    def folder_dir(self, address: str, folder: str) -> Path:
        """The Maildir directory of ``folder`` (its ``tmp/`` takes a big copy before ``deliver``)."""
        key = (address, folder)
        path = self._dirs.get(key)
        if path is None:
            if len(self._dirs) >= _DIRS_KEPT:
                self._dirs.clear()
            path = self._dirs[key] = maildir.folder_path(self.mail_root, address, folder)
        return path

    def deliver(self, copies: Sequence[NewCopy]) -> list[Path | BaseException]:
        """Write every copy durably into its folder's ``new/``; one result per copy (its path,
        or the error that left nothing of it in ``new/``). Each folder that got mail is announced
        once. In-memory copies share one group commit; file copies are renamed in, concurrently."""
        results: list[Path | BaseException | None] = [None] * len(copies)
        small = [(i, c) for i, c in enumerate(copies) if c.message.data is not None]
        files = [(i, c) for i, c in enumerate(copies) if c.message.data is None]
        jobs = []
        for i, c in files:
            if c.message.path is None:
                results[i] = ValueError("a delivered copy is bytes or a file in the folder's tmp/")
                continue
            jobs.append((i, gevent.spawn(self.committer.publish, c.message.path, self.folder_dir(c.address, c.folder))))
        if small:
            items = [(self.folder_dir(c.address, c.folder), c.message.data or b"") for _, c in small]
            for (i, _), result in zip(small, self.committer.publish_data(items), strict=True):
                results[i] = result
        gevent.joinall([job for _, job in jobs])
        for i, job in jobs:
            if job.successful():
                results[i] = job.value
            else:  # the caller's tmp file never reached new/: nothing of it may stay behind
                path = copies[i].message.path
                if path is not None:
                    path.unlink(missing_ok=True)
                results[i] = job.exception or RuntimeError("delivery failed")
        done: list[Path | BaseException] = [r if r is not None else RuntimeError("not written") for r in results]
        landed: dict[tuple[str, str], list[str]] = {}
        for c, r in zip(copies, done, strict=True):
            if isinstance(r, Path):
                landed.setdefault((c.address, c.folder), []).append(str(r))
        for (address, folder), paths in landed.items():
            announce_new(address, folder, paths=tuple(paths))
        return done

    def deliver_bounce(self, address: str, message: bytes) -> Path:
        """A delivery status notification into ``address``'s INBOX (never queued: a bounce
        never bounces); raises when it could not be written."""
        (result,) = self.deliver([NewCopy(address, "INBOX", RawMessage(data=message))])
        if isinstance(result, BaseException):
            raise result
        return result


__all__ = ["MaildirWriter", "NewCopy", "announce_new"]
