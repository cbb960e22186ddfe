"""UIDVALIDITY and UIDs kept in the Maildir itself, so that losing the index costs a client nothing.

The SQLite index can be lost (a torn write on an SD card, a quarantined file): rebuilt from the
Maildir it must give every folder the same UIDVALIDITY and every message the same UID, or every
client downloads every folder again. So the Maildir holds them:

- each message's UID is in its file name, ``<unique>,S=<size>,U=<uid>:2,<flags>`` (the ``,U=``
  field; flags are the ``:2,`` info as before);
- each folder has ``gk-uidlist``, one line in the style of the header of Dovecot's
  ``dovecot-uidlist``: ``1 V<uidvalidity> N<uid floor>``. The floor is greater than every UID the
  folder gave out that no file carries any more: it is written (durably) before files leave the
  folder, only when they carry a UID at or above it, so most expunges write nothing;
- a folder first seen with many messages already in ``cur/`` without a ``,U=`` (a Maildir copied
  in, another server's) keeps its files as they are: their UIDs go to ``gk-uidmap``, lines of
  ``<uid> <base name without ,U=>/`` (a file name has no ``/``: a line without it was torn), appended and fdatasynced before the index knows them (one
  write instead of a rename per file: 5,000 renames took ~40 ms of a first SELECT, the append
  ~1 ms). A rebuilt index takes a file's UID from its name, else from this map. Lines of files
  gone since stay (a few dozen bytes each); a torn last line is ignored;
- the Maildir root has ``gk-uidvalidity``: the highest UIDVALIDITY ever given to a folder of the
  user, so a folder deleted and re-created within the same second still gets a strictly greater
  one (RFC 3501 2.3.1.1).

Cost: one ``,U=<n>`` per file name, one small file per folder, one write per new folder; ~50
bytes of ``gk-uidmap`` per message of a folder first seen full.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from gk.store.files import close_fd, fsync_dir, write_durable

UIDLIST = "gk-uidlist"
UIDMAP = "gk-uidmap"
HIGHWATER = "gk-uidvalidity"

_UID_FIELD = re.compile(r",U=(\d{1,10})(?=,|$)")


@dataclass(frozen=True, slots=True)
class UidList:
    uidvalidity: int
    floor: int  # greater than every UID given out in this folder that no file carries now


def uid_of(base: str) -> int | None:
    """The UID in a Maildir base name (``…,U=123``), None without one (or an unusable one)."""
    found = _UID_FIELD.findall(base)
    if not found:
        return None
    uid = int(found[-1])
    return uid if 0 < uid < 2**32 else None


def without_uid(base: str) -> str:
    """The base name without its ``,U=`` field: what names one message across its UID changes."""
    return _UID_FIELD.sub("", base)


def with_uid(base: str, uid: int) -> str:
    """``base`` carrying ``uid`` (any previous ``,U=`` replaced)."""
    return f"{without_uid(base)},U={uid}"


def read(folder_dir: Path) -> UidList | None:
    """A folder's ``gk-uidlist``; None when it is missing or unreadable (the folder is new to us)."""
    try:
        # bytes.decode: read_text's text layer looks the codec up, importing encodings.ascii at the
        # process's first open (~10 ms of a first login here)
        text = (folder_dir / UIDLIST).read_bytes().decode("ascii", "replace")
    except (FileNotFoundError, NotADirectoryError):
        return None
    fields = {f[0]: f[1:] for f in text.split() if len(f) > 1}
    try:
        uidvalidity, floor = int(fields["V"]), int(fields.get("N", "1"))
    except (KeyError, ValueError):
        return None
    if not 0 < uidvalidity < 2**32:
        return None
    return UidList(uidvalidity, max(1, floor))


def write(folder_dir: Path, uidvalidity: int, floor: int) -> None:
    write_durable(folder_dir / UIDLIST, f"1 V{uidvalidity} N{floor}\n".encode(), 0o600)


def read_highwater(root: Path) -> int:
    """The highest UIDVALIDITY given to any folder of the user (0 if unknown)."""
    try:
        return int((root / HIGHWATER).read_bytes().decode("ascii").strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def write_highwater(root: Path, uidvalidity: int) -> None:
    write_durable(root / HIGHWATER, f"{uidvalidity}\n".encode(), 0o600)


def mappable(base: str) -> bool:
    """Whether ``base`` (a Maildir base name without ``,U=``) can be a line of ``gk-uidmap``."""
    return "\n" not in base and "\r" not in base and bool(base)


def read_map(folder_dir: Path) -> dict[str, int]:
    """``gk-uidmap``: base name without ``,U=`` → UID (the last line for a base wins); {} if none."""
    try:
        data = (folder_dir / UIDMAP).read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return {}
    out: dict[str, int] = {}
    end = data.rfind(b"\n")  # a line without its newline was torn by a crash: not trusted
    if end < 0:
        return out
    for line in data[:end].decode("utf-8", "surrogateescape").split("\n"):
        uid, sep, base = line.partition(" ")
        if sep and base.endswith("/") and uid.isdigit() and 0 < int(uid) < 2**32 and len(base) > 1:
            out[base[:-1]] = int(uid)
    return out


def append_map(folder_dir: Path, entries: list[tuple[str, int]]) -> None:
    """Add (base without ``,U=``, UID) lines to ``gk-uidmap`` durably (fdatasync; the directory
    fsynced when the file is new). Runs in the I/O pool."""
    if not entries:
        return
    path = folder_dir / UIDMAP
    fresh = not path.exists()
    text = "".join(f"{uid} {base}/\n" for base, uid in entries).encode("utf-8", "surrogateescape")
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            text = b"\n" + text  # after a line torn by a crash (no "/" at its end: ignored)
        view = memoryview(text)
        while view:
            view = view[os.write(fd, view) :]
        os.fdatasync(fd)
    finally:
        close_fd(fd)
    if fresh:
        fsync_dir(folder_dir)
