"""GK's own model downloader (no ``huggingface_hub``): a pinned URL, resumed, checked, or an offline copy.

``pull`` fetches a catalogue entry over HTTPS from its pinned resolve URL into
``DATA_DIR/models/<file>.part``: the free disk is checked first (what is left to fetch plus
``reserve`` bytes), a ``.part`` left by a cut download is resumed with an HTTP ``Range`` request
(its bytes are hashed again first, so the sha256 covers the whole file), the sha256 is computed
while the bytes stream in, and only a file of the pinned size and hash is renamed into place (and
fsynced with its directory). A mismatch deletes the file and raises. Plain HTTP is accepted only
from a loopback address (the tests' local server): a model is code the box runs.

``import_file`` is the offline path: a GGUF copied to the boot partition or a USB stick
(``[ai] offline_dirs``) is copied in with the same check, against its catalogue entry or, for a
file the catalogue does not know, a ``<file>.sha256`` beside it (``sha256sum``'s format). A file
that can be checked against neither is refused.

``fetch`` is what ``gk ai pull ID``, the models page and the wizard's AI step call: a copy of the
entry's file in the offline directories is imported (same hash check) before the network is
tried, so a box without the internet installs the model its owner put on the boot partition.

``progress(done, total)`` is called after each block (the CLI prints it, the web UI polls it);
``should_stop()`` is checked between blocks (a cancelled pull keeps its ``.part`` for a resume).
Blocks are 256 KiB: hashing one takes well under a millisecond, so a pull running in a greenlet
does not stall the hub.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from gk.ai.catalogue import Entry

BLOCK = 256 * 1024
RESERVE = 64 * 2**20  # left free on the disk after a model is in place
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
TIMEOUT = 60.0

Progress = Callable[[int, int], None]


class DownloadError(Exception):
    """A download or import that did not give a verified model file."""


class TooLong(DownloadError):
    """The server sent more bytes than the catalogue's size: not the pinned file."""


class Stopped(DownloadError):
    """The pull was stopped; its ``.part`` file stays for a resume."""


def _nothing(done: int, total: int) -> None:
    pass


def _never() -> bool:
    return False


def check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK):
        return
    raise DownloadError(f"refusing to download a model over {parts.scheme or 'an unknown scheme'}: {url} (HTTPS only)")


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _hash_existing(path: Path, digest: hashlib._Hash) -> int:
    n = 0
    with path.open("rb") as f:
        while block := f.read(1024 * 1024):
            digest.update(block)
            n += len(block)
    return n


def _finish(part: Path, final: Path, digest: hashlib._Hash, expected: str, size: int, got: int, hint: str = "") -> Path:
    if size and got != size:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{final.name}: got {got} bytes, expected {size}: the file was deleted{hint}")
    actual = digest.hexdigest()
    if actual != expected:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"{final.name}: sha256 mismatch (expected {expected}, got {actual}): the file was deleted{hint}"
        )
    part.replace(final)
    _fsync_dir(final.parent)
    return final


def pull(
    entry: Entry,
    models_dir: Path,
    base_url: str,
    *,
    progress: Progress = _nothing,
    should_stop: Callable[[], bool] = _never,
    reserve: int = RESERVE,
    free: Callable[[Path], int] = free_bytes,
) -> Path:
    """Download ``entry`` into ``models_dir``; returns the verified file. Raises DownloadError."""
    if not entry.downloadable:
        raise DownloadError(
            f"{entry.id}: the catalogue has no published sha256 (and commit) for this model yet, so it cannot be "
            "downloaded and verified (copy the file to an offline directory with a .sha256 beside it instead)"
        )
    url = entry.url(base_url)
    check_url(url)
    models_dir.mkdir(parents=True, exist_ok=True)
    final = models_dir / entry.file
    if final.exists():
        return final
    part = models_dir / (entry.file + ".part")
    digest = hashlib.sha256()
    have = _hash_existing(part, digest) if part.exists() else 0
    if have > entry.size:
        part.unlink()
        digest, have = hashlib.sha256(), 0
    needed = entry.size - have + reserve
    available = free(models_dir)
    if needed > available:
        raise DownloadError(
            f"{entry.file}: not enough disk space: {needed // 2**20} MiB needed, {available // 2**20} MiB free"
        )
    if have == entry.size:
        return _finish(part, final, digest, entry.sha256, entry.size, have, entry.mismatch_hint())
    headers = {"User-Agent": "gk-model-downloader", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{entry.file}: the server answered {exc.code} {exc.reason} for {url}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"{entry.file}: cannot reach {url}: {getattr(exc, 'reason', exc)}") from exc
    with resp:
        check_url(resp.geturl())  # a redirect may not leave HTTPS
        if have and resp.status != 206:  # the server ignored the Range: start again
            digest, have = hashlib.sha256(), 0
        mode = "ab" if have else "wb"
        try:
            with part.open(mode) as out:
                got = _copy(resp, out, digest, have, entry.size, progress, should_stop)
                out.flush()
                os.fsync(out.fileno())
        except TooLong as exc:  # not the file the catalogue describes: nothing of it is kept
            part.unlink(missing_ok=True)
            raise DownloadError(f"{entry.file}: {exc}: the file was deleted{entry.mismatch_hint()}") from exc
    return _finish(part, final, digest, entry.sha256, entry.size, got, entry.mismatch_hint())


def _copy(src: IO[Any], out: IO[Any], digest: hashlib._Hash, done: int, total: int, progress: Progress,
          should_stop: Callable[[], bool]) -> int:  # fmt: skip
    progress(done, total)
    while True:
        if should_stop():
            raise Stopped(f"stopped at {done} of {total} bytes (the next pull resumes)")
        try:
            block = src.read(BLOCK)
        except (OSError, ValueError) as exc:
            raise DownloadError(
                f"the download was cut at {done} of {total} bytes ({exc}): pull again to resume"
            ) from exc
        if not block:
            if total and done < total:
                raise DownloadError(f"the download was cut at {done} of {total} bytes: pull again to resume")
            return done
        if total and done + len(block) > total:
            raise TooLong(f"the server sent more than the pinned {total} bytes")
        digest.update(block)
        try:
            out.write(block)
        except OSError as exc:  # ENOSPC: the disk filled up after the check (another writer)
            raise DownloadError(
                f"cannot write the model at {done} of {total} bytes ({exc.strerror or exc}): free some space and pull again"
            ) from exc
        done += len(block)
        progress(done, total)


def expected_hash(path: Path, entries: list[Entry]) -> tuple[str, int]:
    """(sha256, size or 0) a file to import must have: its catalogue entry's, else a sidecar's."""
    for e in entries:
        if e.file == path.name and e.sha256:
            return e.sha256, e.size
    sidecar = path.with_name(path.name + ".sha256")
    try:
        text = sidecar.read_text(encoding="ascii", errors="replace").split()
    except OSError:
        text = []
    if text and len(text[0]) == 64 and all(c in "0123456789abcdef" for c in text[0].lower()):
        return text[0].lower(), 0
    raise DownloadError(
        f"{path.name}: neither the catalogue nor a {sidecar.name} file gives its sha256: refusing an unverified model"
    )


def import_file(
    path: Path,
    models_dir: Path,
    entries: list[Entry],
    *,
    progress: Progress = _nothing,
    reserve: int = RESERVE,
    free: Callable[[Path], int] = free_bytes,
) -> Path:
    """Copy the GGUF at ``path`` (boot partition, USB stick) into ``models_dir``, hash-checked."""
    if path.suffix != ".gguf" or not path.is_file():
        raise DownloadError(f"{path}: not a .gguf file")
    sha, size = expected_hash(path, entries)
    models_dir.mkdir(parents=True, exist_ok=True)
    final = models_dir / path.name
    if final.exists():
        raise DownloadError(f"{path.name} is already installed")
    total = path.stat().st_size
    if total + reserve > free(models_dir):
        raise DownloadError(
            f"{path.name}: not enough disk space: {(total + reserve) // 2**20} MiB needed, "
            f"{free(models_dir) // 2**20} MiB free"
        )
    part = models_dir / (path.name + ".part")
    digest = hashlib.sha256()
    with path.open("rb") as src, part.open("wb") as out:
        got = _copy(src, out, digest, 0, total, progress, _never)
        out.flush()
        os.fsync(out.fileno())
    return _finish(part, final, digest, sha, size, got)


def offline_files(dirs: list[str]) -> list[Path]:
    """The GGUF files in the offline directories and one level below (a USB stick's mount point)."""
    found: list[Path] = []
    for d in dirs:
        root = Path(d)
        for pattern in ("*.gguf", "*/*.gguf"):
            try:
                found.extend(p for p in sorted(root.glob(pattern)) if p.is_file())
            except OSError:
                continue
    return found


def fetch(
    entry: Entry,
    models_dir: Path,
    base_url: str,
    offline_dirs: list[str],
    *,
    progress: Progress = _nothing,
    should_stop: Callable[[], bool] = _never,
) -> Path:
    """Install ``entry``: from a copy of its file in ``offline_dirs`` if there is one (checked
    against the catalogue's hash), else downloaded. A local copy that fails the check is left
    where it is, and the download is tried; if that fails too, both reasons are given."""
    final = models_dir / entry.file
    if final.exists():
        return final
    local_error = ""
    for path in offline_files(offline_dirs):
        if path.name == entry.file:
            try:
                return import_file(path, models_dir, [entry], progress=progress)
            except DownloadError as exc:
                local_error = f" (the copy at {path} was not used: {exc})"
                break
    try:
        return pull(entry, models_dir, base_url, progress=progress, should_stop=should_stop)
    except Stopped:
        raise
    except DownloadError as exc:
        raise DownloadError(f"{exc}{local_error}") from exc
