"""Test messages shared by unit and integration tests, and how a test delivers one behind the
server's back."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol


class _HasDataDir(Protocol):
    data_dir: Path


def drop_in_maildir(srv: _HasDataDir, address: str, raw: str, seen: bool = False) -> None:
    """Deliver like an MDA: a file written to tmp/ then renamed into new/ (or, ``seen``, into cur/
    with the S flag); the store syncs from it."""
    md = srv.data_dir / "mail" / address / "Maildir"
    for sub in ("tmp", "new", "cur"):
        (md / sub).mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns()}.test.{len(raw)}"
    (md / "tmp" / name).write_bytes(raw.encode())
    (md / "tmp" / name).rename(md / "cur" / f"{name}:2,S" if seen else md / "new" / name)


# a message/rfc822 inside a message/rfc822: section 1 is the middle message, 1.1 the inner one,
# 1.1.1 its text
NESTED_TWICE = (
    b"From: outer@x.example\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"From: middle@x.example\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"From: inner@x.example\r\n"
    b"Subject: deepest\r\n"
    b"\r\n"
    b"innermost text\r\n"
)

# a multipart whose boundary parameter is folded onto a second line
FOLDED = (
    b"From: a@b.example\r\n"
    b"Mime-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="two\r\n words"\r\n'
    b"\r\n"
    b"--two words\r\n"
    b"Content-Type: text/x-thing; charset=us-ascii\r\n"
    b"\r\n"
    b"hi there\r\n"
    b"\r\n"
    b"--two words--\r\n"
)
