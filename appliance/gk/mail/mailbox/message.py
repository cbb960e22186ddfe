"""``RawMessage``: a whole message as it travels from a protocol into a mailbox.

Small messages stay in memory (SMTP keeps up to 64 KiB of DATA in a buffer, most mail); big
ones live in a file (a spool file, an IMAP literal spooled to disk); an IMAP APPEND literal
may also come as a one-shot stream. One typed value instead of ``Path | bytes`` unions and
``isinstance`` tests in every layer: ask ``in_memory`` / ``data`` / ``path``, or just read it
with ``chunks()`` / ``open()``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO

CHUNK = 64 * 1024


class RawMessage:
    """A message's bytes: ``data`` (in memory), ``path`` (a file) or a stream read once."""

    __slots__ = ("_stream", "data", "path")

    def __init__(self, *, data: bytes | None = None, path: Path | None = None, stream: IO[bytes] | None = None):
        if (data is not None) + (path is not None) + (stream is not None) != 1:
            raise ValueError("a RawMessage is exactly one of data, path or stream")
        self.data = data
        self.path = path
        self._stream = stream

    @classmethod
    def of(cls, source: RawMessage | bytes | Path | IO[bytes]) -> RawMessage:
        """The typed value of what older callers pass: bytes, a file's path, an open binary file."""
        if isinstance(source, RawMessage):
            return source
        if isinstance(source, bytes | bytearray | memoryview):
            return cls(data=bytes(source))
        if isinstance(source, Path):
            return cls(path=source)
        return cls(stream=source)

    @property
    def in_memory(self) -> bool:
        return self.data is not None

    def size(self) -> int | None:
        """Its length in bytes (None for a stream: unknown until read)."""
        if self.data is not None:
            return len(self.data)
        if self.path is not None:
            return os.stat(self.path).st_size
        return None

    def open(self) -> BinaryIO:
        """A binary file to read it from (close it: use ``with``). A stream is returned as it is
        and closing it closes the stream."""
        if self.data is not None:
            return io.BytesIO(self.data)
        if self.path is not None:
            return open(self.path, "rb")
        assert self._stream is not None
        return self._stream  # type: ignore[return-value]

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        """Its bytes in chunks of at most ``size`` (a file is opened and closed; a stream is
        read to its end and left open: its owner closes it)."""
        if self.data is not None:
            yield self.data
            return
        if self.path is not None:
            with open(self.path, "rb") as fh:
                yield from iter(lambda: fh.read(size), b"")
            return
        assert self._stream is not None
        yield from iter(lambda: self._stream.read(size), b"")  # type: ignore[union-attr]

    def __repr__(self) -> str:
        if self.data is not None:
            return f"RawMessage(<{len(self.data)} bytes in memory>)"
        if self.path is not None:
            return f"RawMessage(path={str(self.path)!r})"
        return "RawMessage(<stream>)"
