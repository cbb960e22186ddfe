"""The models GK offers: ``catalogue.toml`` shipped in the package (or ``[ai] catalogue``).

An entry pins a repository, a commit, a file, its size and its sha256, so what is downloaded is
exactly what was chosen. Where a published sha256 was found but no commit, an entry may name a
branch as its ``revision`` instead (``pinned_by`` = "hash"): the hash still guarantees the bytes,
but the branch can move, and a file changed upstream then fails the hash check with a message
saying so (``mismatch_hint``) instead of being installed. ``downloadable`` is false for an entry
whose hash (or both commit and revision) is not known yet, and the downloader refuses it.
``fitting`` is what a board of a given RAM can run, and ``default_for`` the wizard's default:
the smallest "good" entry that fits, else the smallest that fits, else none.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

HEX = set("0123456789abcdef")
REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class CatalogueError(Exception):
    """The catalogue file is unreadable or an entry is malformed."""


@dataclass(frozen=True)
class Entry:
    id: str
    name: str
    repo: str
    commit: str
    file: str
    size: int
    approx_mb: int
    sha256: str
    licence: str
    ram_class: int
    ram_mb: int
    chat_format: str
    tool_format: str
    good: bool
    source: str = ""
    revision: str = ""  # a branch, used only when no commit is pinned (the sha256 still is)

    @property
    def downloadable(self) -> bool:
        return len(self.sha256) == 64 and (len(self.commit) == 40 or bool(self.revision))

    @property
    def pinned_by(self) -> str:
        """What fixes the bytes: "commit" (URL and hash), "hash" (a branch URL, a fixed hash), or ""."""
        if not self.downloadable:
            return ""
        return "commit" if len(self.commit) == 40 else "hash"

    @property
    def ref(self) -> str:
        """What the resolve URL names: the pinned commit, else the branch."""
        return self.commit or self.revision

    def url(self, base: str) -> str:
        return f"{base.rstrip('/')}/{self.repo}/resolve/{self.ref}/{self.file}"

    def mismatch_hint(self) -> str:
        """Why a downloaded file may not match, for the error a hash mismatch raises."""
        if self.pinned_by == "hash":
            return (
                f" ({self.repo} is followed at its {self.revision!r} branch, pinned only by this hash: the file there "
                "has probably changed since GK's catalogue was written; update GK, or copy a checked file offline)"
            )
        return ""

    @property
    def size_bytes(self) -> int:
        """The exact size when pinned, else the approximate one (for the free-space check)."""
        return self.size or self.approx_mb * 2**20


def _entry(raw: dict[str, object], where: str) -> Entry:
    fields = Entry.__dataclass_fields__
    missing = [k for k in fields if k not in raw and k not in ("source", "revision")]
    if missing:
        raise CatalogueError(f"{where}: missing {', '.join(missing)}")
    values = {k: raw[k] for k in fields if k in raw}
    try:
        entry = Entry(**values)  # type: ignore[arg-type]
    except TypeError as exc:
        raise CatalogueError(f"{where}: {exc}") from exc
    for key, kind in (("size", int), ("approx_mb", int), ("ram_class", int), ("ram_mb", int), ("good", bool)):
        if not isinstance(getattr(entry, key), kind):
            raise CatalogueError(f"{where}: {key} must be {kind.__name__}")
    for key in ("id", "name", "repo", "commit", "file", "sha256", "licence", "source", "revision"):
        if not isinstance(getattr(entry, key), str):
            raise CatalogueError(f"{where}: {key} must be a string")
    if entry.sha256 and (len(entry.sha256) != 64 or not set(entry.sha256) <= HEX):
        raise CatalogueError(f"{where}: sha256 must be 64 lower-case hex digits or empty")
    if entry.commit and (len(entry.commit) != 40 or not set(entry.commit) <= HEX):
        raise CatalogueError(f"{where}: commit must be 40 lower-case hex digits or empty")
    if entry.revision and (not REVISION.fullmatch(entry.revision) or entry.commit):
        raise CatalogueError(f"{where}: revision must be a plain branch name, and only for an entry without a commit")
    if entry.downloadable and entry.size <= 0:
        raise CatalogueError(f"{where}: a downloadable entry needs its size")
    if "/" in entry.file or "\\" in entry.file or not entry.file.endswith(".gguf") or entry.file.startswith("."):
        raise CatalogueError(f"{where}: file must be a plain .gguf file name")
    return entry


def load(path: str | Path = "") -> list[Entry]:
    """The entries of ``path`` (a TOML file), or of the catalogue shipped with GK."""
    try:
        if path:
            text = Path(path).read_text(encoding="utf-8")
        else:
            text = resources.files("gk.ai").joinpath("catalogue.toml").read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CatalogueError(f"cannot read the model catalogue {path or '(built in)'}: {exc}") from exc
    models = data.get("model", [])
    if not isinstance(models, list):
        raise CatalogueError("the catalogue's [[model]] entries are missing")
    out = [_entry(m, f"catalogue entry {i + 1}") for i, m in enumerate(models) if isinstance(m, dict)]
    ids = [e.id for e in out]
    if len(set(ids)) != len(ids):
        raise CatalogueError("the catalogue names an id twice")
    return out


@lru_cache(maxsize=4)
def cached(path: str = "") -> list[Entry]:
    """``load(path)``, read once per process (the shipped file does not change while GK runs)."""
    return load(path)


def find(entries: list[Entry], name: str) -> Entry | None:
    """The entry with this id or file name (``.gguf`` optional)."""
    for e in entries:
        if name in (e.id, e.file, e.file.removesuffix(".gguf")):
            return e
    return None


def fitting(entries: list[Entry], ram_mb: int) -> list[Entry]:
    """What a board with ``ram_mb`` of memory can run, smallest first (a board's RAM is a bit
    below its class: a "2 GB" board reports ~1.8 GB, so the class is compared with 10 % slack)."""
    order = {e.id: i for i, e in enumerate(entries)}  # equal memory: the catalogue's order
    fit = [e for e in entries if e.ram_mb <= ram_mb and e.ram_class * 1024 * 0.9 <= ram_mb]
    return sorted(fit, key=lambda e: (e.ram_mb, order[e.id]))


def default_for(entries: list[Entry], ram_mb: int) -> Entry | None:
    fit = fitting(entries, ram_mb)
    good = [e for e in fit if e.good]
    pick = good or fit
    return pick[0] if pick else None
