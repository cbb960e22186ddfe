"""Files and images shared in the chat: ``DATA_DIR/chat-files/`` plus their index in
``DATA_DIR/chat-files.sqlite3`` (its own small database, so the chat store's schema is not
touched).

An upload (the web chat's form, or an IRC client through ``draft/FILEHOST``) is stored under a
random id, size-limited (``chat.max_upload_bytes``), its type decided here from its first bytes
and never from what the client claims. It is readable by its uploader, and by every member of
each conversation it was shared in: a share is recorded when its uploader posts a message that
carries its URL (``record_shares``, subscribed to the chat's ``MessagePosted``), so a file
uploaded by IRC's FILEHOST (which names no room) follows the message it was posted in.

Serving rules (``gk.web.chatfiles``): the Content-Type comes from ``ALLOWED`` (images inline,
everything else ``Content-Disposition: attachment``), ``X-Content-Type-Options: nosniff``, a
sandboxing CSP. SVG is not an image here (it can carry script): it is served as a download.

Durability: the file is written to ``tmp/``, fsynced, renamed into place and its directory
fsynced (in the disk-I/O pool) before its row is committed (``synchronous=FULL``): an id given
to a client always names a whole file.
"""

from __future__ import annotations

import os
import re
import secrets
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import gevent

from gk import pools
from gk.chat.core import ChatService, Event, MessagePosted
from gk.store.db import Database, open_database

if TYPE_CHECKING:
    from gk.context import AppContext

MIGRATIONS = [
    """
    CREATE TABLE files (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        name TEXT NOT NULL,
        ctype TEXT NOT NULL,
        size INTEGER NOT NULL,
        time INTEGER NOT NULL
    );
    CREATE INDEX files_owner ON files(owner);
    CREATE TABLE shares (
        file_id TEXT NOT NULL REFERENCES files(id) ON DELETE CASCADE,
        target TEXT NOT NULL,
        PRIMARY KEY (file_id, target)
    ) WITHOUT ROWID;
    """,
]

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
# what a file may be served as; anything else is application/octet-stream
ALLOWED = (*IMAGE_TYPES, "application/pdf", "text/plain", "audio/mpeg", "audio/ogg", "video/mp4", "video/webm")
OCTET = "application/octet-stream"
CHUNK = 64 * 1024
ID_RE = re.compile(r"^[A-Za-z0-9_-]{16,32}$")
# the path of a shared file in a message (absolute or relative URL): /chat/files/<id>/<name>
URL_RE = re.compile(r"/chat/files/([A-Za-z0-9_-]{16,32})(?:/[^\s<>\"']*)?")


def filehost_url(ctx: AppContext) -> str:
    """The upload endpoint IRC clients are given (ISUPPORT ``draft/FILEHOST``): the web
    listener's HTTPS URL on the box's host name (HTTP when HTTPS is off; '' when neither runs)."""
    http = ctx.config.http
    if http.https_port:
        port = "" if http.https_port == 443 else f":{http.https_port}"
        return f"https://{ctx.hostname}{port}/chat/files/upload"
    if http.port:
        port = "" if http.port == 80 else f":{http.port}"
        return f"http://{ctx.hostname}{port}/chat/files/upload"
    return ""


class FileTooLarge(ValueError):
    def __init__(self, limit: int):
        super().__init__(f"files are limited to {limit // (1024 * 1024)} MB")
        self.limit = limit


@dataclass(frozen=True)
class SharedFile:
    id: str
    owner: str  # chat account (local part)
    name: str  # a safe display/download name
    ctype: str  # one of ALLOWED, or OCTET
    size: int
    time: int  # ms

    @property
    def is_image(self) -> bool:
        return self.ctype in IMAGE_TYPES

    @property
    def path(self) -> str:
        """The URL path (relative to the web listener) of this file."""
        return f"/chat/files/{self.id}/{self.name}"


def sniff(head: bytes, name: str) -> str:
    """The type a file is served as, from its first bytes (the name only tells text apart)."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3"):
        return "audio/mpeg"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head[4:8] == b"ftyp":
        return "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    if name.lower().endswith((".txt", ".log", ".md", ".csv")):
        try:
            head.decode("utf-8")
            return "text/plain"
        except UnicodeDecodeError:
            pass
    return OCTET


def safe_name(name: str) -> str:
    """A file name fit for a URL path segment and a header: no directories, no controls."""
    name = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1])
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '"<>?#%;:*|')
    name = name.strip(" .")[:120]
    return name.replace(" ", "_") or "file"


def _write(tmp: Path, final: Path, chunks: list[bytes]) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as f:
        for c in chunks:
            f.write(c)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileStore:
    def __init__(self, data_dir: Path, max_bytes: int):
        self.root = Path(data_dir) / "chat-files"
        self.max_bytes = max_bytes
        self.root.mkdir(parents=True, exist_ok=True)
        self.db: Database = open_database(Path(data_dir) / "chat-files.sqlite3", MIGRATIONS)
        self.db.commit_runner = pools.run_io

    def close(self) -> None:
        self.db.close()

    def _file(self, fid: str) -> Path:
        return self.root / fid[:2] / fid

    def save(self, owner: str, name: str, stream: BinaryIO, length: int | None = None) -> SharedFile:
        """Store an upload read from ``stream`` (at most ``length`` bytes when known).
        Raises ``FileTooLarge`` as soon as it is over the limit (before reading it all)."""
        if length is not None and length > self.max_bytes:
            raise FileTooLarge(self.max_bytes)
        chunks: list[bytes] = []
        size = 0
        left = length
        while left is None or left > 0:
            data = stream.read(CHUNK if left is None else min(CHUNK, left))
            if not data:
                break
            size += len(data)
            if left is not None:
                left -= len(data)
            if size > self.max_bytes:
                raise FileTooLarge(self.max_bytes)
            chunks.append(data)
        fid = secrets.token_urlsafe(16)
        name = safe_name(name)
        ctype = sniff(b"".join(chunks)[:64] if chunks else b"", name)
        pools.run_io(_write, self.root / "tmp" / fid, self._file(fid), chunks)
        f = SharedFile(fid, owner, name, ctype, size, int(time.time() * 1000))
        with self.db.transaction() as c:
            c.execute(
                "INSERT INTO files(id, owner, name, ctype, size, time) VALUES (?,?,?,?,?,?)",
                (f.id, f.owner, f.name, f.ctype, f.size, f.time),
            )
        return f

    def get(self, fid: str) -> SharedFile | None:
        if not ID_RE.match(fid):
            return None
        row = self.db.one("SELECT * FROM files WHERE id = ?", (fid,))
        if row is None:
            return None
        return SharedFile(row["id"], row["owner"], row["name"], row["ctype"], row["size"], row["time"])

    def open(self, f: SharedFile) -> BinaryIO:
        return open(self._file(f.id), "rb")

    def share(self, fid: str, target: str) -> None:
        with self.db.transaction() as c:
            c.execute("INSERT OR IGNORE INTO shares(file_id, target) VALUES (?, ?)", (fid, target))

    def shared_in(self, fid: str) -> list[str]:
        return [r[0] for r in self.db.query("SELECT target FROM shares WHERE file_id = ?", (fid,))]

    def record_shares(self, sender: str, target: str, text: str) -> list[SharedFile]:
        """The files of ``sender`` whose URL ``text`` carries are now shared in ``target``;
        someone else's file named in a message gains no reader (they must share it themselves)."""
        shared = []
        for fid in set(URL_RE.findall(text)):
            f = self.get(fid)
            if f is not None and f.owner == sender:
                self.share(fid, target)
                shared.append(f)
        return shared

    def follow(self, chat: ChatService) -> None:
        """Record shares from every posted message (IRC clients post FILEHOST URLs as text).
        The subscriber only spawns: a chat subscriber must not wait on the disk."""

        def on_event(ev: Event) -> None:
            if isinstance(ev, MessagePosted) and "/chat/files/" in ev.message.text:
                m = ev.message
                gevent.spawn(self.record_shares, m.sender, m.target, m.text)

        chat.subscribe(on_event)

    def may_read(self, f: SharedFile, account: str, chat: ChatService) -> bool:
        """Its uploader, and the members of every conversation it was shared in."""
        if f.owner == account:
            return True
        return any(account in chat.audience(t) for t in self.shared_in(f.id))

    def files_in(self, text: str) -> Iterable[SharedFile]:
        """The stored files a message's text links to, in order, each once."""
        seen: set[str] = set()
        for fid in URL_RE.findall(text):
            if fid in seen:
                continue
            seen.add(fid)
            f = self.get(fid)
            if f is not None:
                yield f


__all__ = [
    "FileStore",
    "FileTooLarge",
    "SharedFile",
    "ALLOWED",
    "IMAGE_TYPES",
    "OCTET",
    "sniff",
    "safe_name",
    "filehost_url",
]
