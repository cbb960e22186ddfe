"""Local delivery: one received message into the Maildirs of its local recipients.

For each recipient a copy is made with its own trace headers first (Return-Path, Delivered-To,
then the headers common to all recipients: Authentication-Results and Received), then the
message with any forged ``Authentication-Results`` carrying our authserv-id removed (RFC 8601
§5). A message that stayed in memory (up to 64 KiB: most mail) is rendered into bytes here and
handed to the mailbox's writer (``gk.mail.mailbox.MaildirWriter``: its group committer writes,
syncs and publishes a whole batch of deliveries in one threadpool call). A spooled (big) message
is copied into ``tmp/`` in the threadpool — headers, then the body by the kernel
(``copy_file_range``) — fsynced, and published by the same writer. Only after every copy is in
``new/`` does ``deliver`` return; a failure leaves nothing in ``new/`` for the failed copies and
the caller answers 4xx.

File I/O runs in gevent's native threadpool (a 30 MB copy never blocks the hub); a big copy
streams through the kernel, so memory use is a 64 KiB line buffer whatever the message size;
a small one costs its size once per recipient until its batch is committed.
The writer announces each folder that got mail, once (``gk.mail.mailbox.announce_new``).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gk import pools
from gk.mail.delivery.trace import delivered_to, return_path
from gk.mail.mailbox import GroupCommitter, MaildirWriter, NewCopy, RawMessage, unique_name

log = logging.getLogger("gk.delivery")

_MAX_HEADER_LINE = 65536


@dataclass(frozen=True)
class Target:
    """One local copy: the address as given in RCPT, the user it resolved to, the folder."""

    rcpt: str
    user: str
    folder: str = "INBOX"


def _is_our_ar(line: bytes, authserv_id: bytes) -> bool:
    name, colon, value = line.partition(b":")
    if not colon or name.strip().lower() != b"authentication-results":
        return False
    ident = value.split(b";", 1)[0].strip().split()
    return bool(ident) and ident[0].lower() == authserv_id


def _filter_header_lines(lines, authserv_id: bytes, write) -> None:  # type: ignore[no-untyped-def]
    """Copy header lines up to the blank line, dropping Authentication-Results with our id."""
    skipping = False
    for line in lines:
        if line in (b"\r\n", b"\n"):
            write(line)
            return
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                write(line)
            continue
        skipping = _is_our_ar(line, authserv_id)
        if not skipping:
            write(line)


def _header_end(data: bytes) -> int:
    """Offset just past the blank line ending the header section (len(data) if there is none)."""
    if data.startswith(b"\r\n"):
        return 2
    if data.startswith(b"\n"):
        return 1
    ends = [i + len(sep) for sep in (b"\r\n\r\n", b"\n\n") if (i := data.find(sep)) >= 0]
    return min(ends) if ends else len(data)


def render(top: bytes, message: bytes, authserv_id: str) -> bytes:
    """``top`` + an in-memory message without our forged Authentication-Results (CPU only)."""
    end = _header_end(message)
    head = message[:end]
    if b"authentication-results" not in head.lower():
        return top + message  # the common case: nothing to filter
    out = [top]
    _filter_header_lines(head.splitlines(keepends=True), authserv_id.lower().encode(), out.append)
    out.append(message[end:])
    return b"".join(out)


def copy_with_headers(md: Path, top: bytes, source: RawMessage | Path | bytes, authserv_id: str) -> Path:
    """Write ``top`` + the message into ``md/tmp/``; fsynced. Runs in a thread.

    ``source`` is the message itself (small messages stay in memory) or its spool file.
    """
    if not (md / "tmp").is_dir():
        for sub in ("tmp", "new", "cur"):
            (md / sub).mkdir(parents=True, exist_ok=True)
    tmp = md / "tmp" / unique_name()
    ours = authserv_id.lower().encode()
    message = RawMessage.of(source)
    try:
        if message.data is not None:
            with open(tmp, "xb") as dst:
                dst.write(render(top, message.data, authserv_id))
                dst.flush()
                os.fsync(dst.fileno())
            return tmp
        with message.open() as src, open(tmp, "xb") as dst:
            dst.write(top)
            _filter_header_lines(iter(lambda: src.readline(_MAX_HEADER_LINE), b""), ours, dst.write)
            dst.flush()
            pos = src.tell()
            remaining = os.fstat(src.fileno()).st_size - pos
            try:
                while remaining > 0:
                    n = os.copy_file_range(src.fileno(), dst.fileno(), remaining, pos)
                    if n == 0:
                        break
                    pos += n
                    remaining -= n
            except OSError:
                src.seek(pos)
                shutil.copyfileobj(src, dst, 65536)
                dst.flush()
            os.fsync(dst.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


class LocalDelivery:
    def __init__(self, mail_root: Path, authserv_id: str | Callable[[], str], writer: MaildirWriter | None = None):
        self.mail_root = mail_root
        # the name of the Authentication-Results delivery strips from what a message brings
        # (``AppContext.authserv_id``; a function: read at each delivery)
        self._authserv_id = authserv_id
        self.writer = writer if writer is not None else MaildirWriter(mail_root)

    @property
    def authserv_id(self) -> str:
        return self._authserv_id if isinstance(self._authserv_id, str) else self._authserv_id()

    @property
    def committer(self) -> GroupCommitter:
        """The writer's group committer (its ``batches`` / ``committed`` counters)."""
        return self.writer.committer

    def deliver(
        self, spool: RawMessage | Path | bytes, targets: list[Target], common: bytes, mail_from: str
    ) -> list[Path]:
        """Deliver durably to every target; returns the paths in ``new/``. Raises on failure."""
        message = RawMessage.of(spool)
        copies: list[tuple[Target, bytes]] = []
        seen: set[tuple[str, str]] = set()
        for t in targets:
            if (t.user, t.folder) in seen:
                continue
            seen.add((t.user, t.folder))
            copies.append((t, return_path(mail_from) + delivered_to(t.rcpt) + common))
        if message.data is not None:
            data = message.data
            new = [NewCopy(t.user, t.folder, RawMessage(data=render(top, data, self.authserv_id))) for t, top in copies]
        else:
            new = self._copy_spooled(message, copies)
        results = self.writer.deliver(new)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise OSError(f"delivery of {len(failed)} of {len(results)} copies failed: {failed[0]}")
        return [r for r in results if isinstance(r, Path)]

    def _copy_spooled(self, message: RawMessage, copies: list[tuple[Target, bytes]]) -> list[NewCopy]:
        """Each recipient's copy of a big message, written and fsynced in its folder's ``tmp/``
        (in the threadpool); on a failure none is left behind."""
        new: list[NewCopy] = []
        try:
            for t, top in copies:
                md = self.writer.folder_dir(t.user, t.folder)
                tmp = pools.run_io(copy_with_headers, md, top, message, self.authserv_id)
                new.append(NewCopy(t.user, t.folder, RawMessage(path=tmp)))
        except BaseException:
            for c in new:
                if c.message.path is not None:
                    c.message.path.unlink(missing_ok=True)
            raise
        return new
